"""Transparent huge pages for torch (``THP_MEM_ALLOC_ENABLE``, set by ``import s2sr_cloud``): the chunk function on
the quick area (240 px, x4, --ensemble 1, one thread), each setting in fresh processes, alternating, twice.
Prints per run the total, network and post-processing seconds and the process's user and system CPU seconds.
Needs ../shared/data (the decimated 29RKH tile). Usage:

    .venv/bin/python benchmarks/thp_check.py
"""
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CODE = """
import json, resource, sys
sys.path.insert(0, {here!r})
import numpy as np
import run as R
x = np.load({path!r})
cp = R.chunk_parts(x, 4, 1, "cpu")
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"total": round(cp["total"], 2), "network": round(cp["network"], 2),
                  "post": round(cp["total"] - cp["network"], 2), "user_s": round(ru.ru_utime, 1),
                  "sys_s": round(ru.ru_stime, 1)}}))
"""

if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    import numpy as np

    import run as R

    with contextlib.ExitStack() as stack:
        base = stack.enter_context(R.range_server(R.TILE))
        catalog = stack.enter_context(R.serve_items(R.tile_items(R.TILE, base)))
        x = R.load_array(catalog, R.window_geometry(R.TILE, 60, 840, 240, 240))
    path = Path(tempfile.mkdtemp()) / "x.npy"
    np.save(path, x)
    for setting in ("0", "1", "0", "1"):
        env = os.environ | {"THP_MEM_ALLOC_ENABLE": setting}
        out = subprocess.run([sys.executable, "-c", CODE.format(here=str(HERE), path=str(path))], env=env,
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        print(f"THP_MEM_ALLOC_ENABLE={setting}", json.loads(out), flush=True)
