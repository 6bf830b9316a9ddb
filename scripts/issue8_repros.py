"""Re-run the hostile-user repros of issue 8 against the real CLI and print, for each, the exit code and the first
line of stderr (the issue's note quotes this output). Uses the embedded sample served by rustac; S3 cases use a
moto_server on loopback. Run from the repository root: ``.venv/bin/python scripts/issue8_repros.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXE = [sys.executable, "-m", "s2sr_cloud.cli"]
Q = ["--model", "bicubic", "--bands", "B02,B03,B04", "--no-progress", "--chunk", "120"]


def s2sr(*args: str, cwd: str | None = None, env: dict | None = None) -> tuple[int, str]:
    r = subprocess.run([*EXE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    first = next((ln for ln in r.stderr.splitlines() if ln.strip()), "")
    return r.returncode, first


def show(name: str, rc: int, line: str, extra: str = "") -> None:
    print(f"| {name} | {rc} | `{line[:230]}` | {extra} |", flush=True)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="issue8-"))
    print("| repro | exit | first line of stderr | state afterwards |")
    print("|---|---|---|---|")
    victim = tmp / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("precious")
    rc, ln = s2sr("run", *Q, "--out", str(victim))
    show("non-Zarr folder as --out", rc, ln, f"thesis.txt kept: {(victim / 'thesis.txt').exists()}")
    rc, ln = s2sr("run", *Q, "--out", str(victim), "--overwrite")
    show("same with --overwrite", rc, ln, f"thesis.txt kept: {(victim / 'thesis.txt').exists()}")
    work = tmp / "cwd"
    work.mkdir()
    (work / "notes.md").write_text("x")
    rc, ln = s2sr("run", *Q, "--out", ".", cwd=str(work))
    show("--out .", rc, ln, f"files kept: {sorted(os.listdir(work))}")
    rc, ln = s2sr("run", *Q, "--out", str(work / "notes.md"), "--overwrite")
    show("--overwrite on a regular file", rc, ln, f"kept: {(work / 'notes.md').exists()}")
    store = tmp / "s.zarr"
    s2sr("run", *Q, "--out", str(store))
    created = json.loads((store / "zarr.json").read_text())["attributes"]["created"]
    rc, ln = s2sr("run", "--scale", "3", "--out", str(store), "--overwrite", "--no-progress")
    still = json.loads((store / "zarr.json").read_text())["attributes"]
    show("--overwrite with an invalid model/scale", rc, ln,
         f"old store complete and unchanged: {still['s2sr_status'] == 'complete' and still['created'] == created}")
    rc, ln = s2sr("run", *Q, "--out", str(store), "--limit", "5")
    show("changed --limit on a complete store", rc, ln)
    (tmp / "t.zarr").mkdir()
    (tmp / "t.zarr" / "zarr.json").write_text('{"zarr_format": 3, "node_ty')
    rc, ln = s2sr("run", *Q, "--out", str(tmp / "t.zarr"))
    show("truncated zarr.json", rc, ln)
    (tmp / "afile").write_text("x")
    rc, ln = s2sr("run", *Q, "--out", str(tmp / "afile" / "x.zarr"))
    show("--out file/x.zarr", rc, ln)
    for out in ("s3://", "http://example.com/x.zarr"):
        rc, ln = s2sr("run", *Q, "--out", out)
        show(f"--out {out}", rc, ln)
    cases = {
        "YAML integer key": "1: x\nout: o.zarr\n",
        "YAML bbox as a dict": "out: o.zarr\nbbox: {a: 1}\n",
        "YAML bbox as strings": "out: o.zarr\nbbox: [a, b, c, d]\n",
        "YAML bbox as an int": "out: o.zarr\nbbox: 5\n",
        "YAML max_cloud: lots": "out: o.zarr\nmax_cloud: lots\n",
        "YAML chunk: big": "out: o.zarr\nchunk: big\n",
        "YAML bands: 5": "out: o.zarr\nbands: 5\n",
        "YAML out: 12": "out: 12\n",
    }
    for name, text in cases.items():
        f = tmp / "job.yaml"
        f.write_text(text)
        show(name, *s2sr("run", "--config", str(f)))
    f.write_bytes(b"out: \xff\xfe.zarr\n")
    show("YAML not UTF-8", *s2sr("run", "--config", str(f)))
    for name, obj in {"GeoJSON top-level list": [{"type": "Polygon"}],
                      "GeoJSON Feature without geometry": {"type": "Feature", "geometry": None, "properties": {}},
                      "GeoJSON Point": {"type": "Point", "coordinates": [-11, 25.1]}}.items():
        g = tmp / "a.geojson"
        g.write_text(json.dumps(obj))
        show(name, *s2sr("run", *Q, "--geometry", str(g), "--out", str(tmp / "g.zarr")))
    for name, flags in {"--scheduler 'not a url'": ["--scheduler", "not a url"],
                        "--chunk 99999999999999999999": ["--chunk", "99999999999999999999"],
                        "--chunk 16 (sample factors 1/2/6)": ["--chunk", "16", "--dry-run"],
                        "--limit 0": ["--limit", "0"],
                        "antimeridian bbox": ["--bbox", "170,-10,-170,10"],
                        "world bbox (dry run)": ["--bbox", "-180,-90,180,90", "--dry-run"],
                        "--bbox -11.2,... without '='": ["--bbox", "-11.1,25.05,-10.95,25.2", "--dry-run"],
                        "invalid --quicklook path": ["--quicklook", str(tmp / "afile" / "q.png")],
                        "--scale 3 with the default model": ["--scale", "3"]}.items():
        args = [a for a in Q if a not in ("--chunk", "120")] if "--chunk" in flags else Q
        if name.startswith("--scale 3"):
            args = ["--no-progress"]
        show(name, *s2sr("run", *args, *flags, "--out", str(tmp / "f.zarr")))
    show("catalog URL with credentials, unreachable", *s2sr("run", *Q, "--catalog", "http://bob:hunter2@127.0.0.1:9/x",
                                                            "--out", str(tmp / "c.zarr")))
    print(f"\n(scratch folder {tmp}; finished {time.strftime('%H:%M:%S')})")


if __name__ == "__main__":
    main()
