"""pipeline_efficiency of the quick area as ``benchmarks/run.py`` measures it, N times: the bare forward on 2
threads, then the pipeline end to end on 2 workers, one pair per line. Alternate two codes by ``PYTHONPATH``
(the machine drifts by up to 20% within a minute):

    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/quick_pair.py 1
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402

if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(R.range_server(R.TILE))
        catalog = stack.enter_context(R.serve_items(R.tile_items(R.TILE, base)))
        geom = R.window_geometry(R.TILE, 60, 840, 240, 240)
        x = R.load_array(catalog, geom)
        for _ in range(n):
            tb = R.bare_forward(x, 4, None, 2, "cpu")
            e = R.end_to_end(catalog, geom, 4, "default", None, 2)
            print(f"bare {tb:.2f} e2e {e['seconds']:.2f} eff {tb / e['seconds']:.3f} rss {e['rss_gib']:.2f}",
                  flush=True)
