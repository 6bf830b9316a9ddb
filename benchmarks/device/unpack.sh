# Sourced by the device scripts (run_round11*.sh): from the repository root, unpack the cp312 bundle the GPU image
# lacks (.whl/site312.tar.xz, build_bundle.sh), put a rustac launcher on PATH, point at the carried tile (.tile),
# and define el (elapsed-time echo) and left N (seconds left of N).
S=$(date +%s); el() { echo "[$(( $(date +%s) - S )) s] $*"; }
left() { echo $(( ${1} - ($(date +%s) - S) )); }
mkdir -p /tmp/site /tmp/bin && tar -xJf .whl/site312.tar.xz -C /tmp/site
printf '#!%s\nimport sys\nfrom rustac import main\nsys.argv[0] = "rustac"\nsys.exit(main())\n' "$(command -v python3)" > /tmp/bin/rustac
chmod +x /tmp/bin/rustac
export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/bin:$PATH PYTHONUNBUFFERED=1 S2SR_SHARED=$PWD/.tile
