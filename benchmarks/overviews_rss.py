"""Memory and time of the overviews step (``io/overviews.py``) at tile scale: makes once a bicubic x4 store of the
whole decimated 29RKH tile from ../shared/data (4392 x 4392 px, 13 variables; kept in /tmp), then rebuilds its
overviews on a fresh LocalCluster of one single-threaded worker and prints that worker's peak RSS (VmHWM), the
managed memory at its sampled peak and the time. Usage:

    .venv/bin/python benchmarks/overviews_rss.py
"""
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rss_diag as D  # noqa: E402
import run as R  # noqa: E402

import s2sr_cloud  # noqa: E402
from s2sr_cloud.io import store  # noqa: E402
from s2sr_cloud.io.overviews import write_overviews  # noqa: E402

STORE = Path(tempfile.gettempdir()) / "s2sr-bench-tile-bicubic.zarr"

if __name__ == "__main__":
    if not (STORE / "zarr.json").exists():
        with contextlib.ExitStack() as stack:
            base = stack.enter_context(R.range_server(R.TILE))
            catalog = stack.enter_context(R.serve_items(R.tile_items(R.TILE, base)))
            with R.cluster(2) as client:
                ds = s2sr_cloud.load(s2sr_cloud.search(catalog))
                s2sr_cloud.write(s2sr_cloud.super_resolve(ds, 4, "bicubic"), str(STORE), client=client)
    names = [*store.read_attrs(str(STORE))["bands"], "detail"]
    with R.cluster(1) as client:
        client.run(D.sampler)
        t = time.perf_counter()
        write_overviews(str(STORE), names, store.zarr_format_of(str(STORE)))
        s = time.perf_counter() - t
        d = list(client.run(D.read).values())[0]
        print({"overviews_s": round(s, 1), "worker_hwm_gib": round(max(client.run(R.peak_rss_gib).values()), 3),
               "managed_at_peak_mb": round(d.get("managed_at_peak", 0) / 1e6, 1)})
