"""The whole decimated 29RKH tile end to end as ``benchmarks/run.py`` runs it (x4, ``--ensemble 1``, default
chunking, 2 single-threaded workers): seconds and peak worker RSS. Alternate two codes by ``PYTHONPATH``:

    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/tile_e2e.py
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402

if __name__ == "__main__":
    import s2sr_cloud

    print("code", s2sr_cloud.__file__, flush=True)
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(R.range_server(R.TILE))
        catalog = stack.enter_context(R.serve_items(R.tile_items(R.TILE, base)))
        e = R.end_to_end(catalog, None, 4, "default", 1, 2)
        print(f"RESULT tile e2e {e['seconds']:.1f} s rss {e['rss_gib']:.2f} chunks {e['chunks']}", flush=True)
