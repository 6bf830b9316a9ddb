"""The client's CPU for the store's template of benchmarks/run.py's 16-chunk job (480 x 480 px of the decimated
tile, 120 px chunks, x4, bicubic), mean of N after 2 warm-ups, and its parts: xarray's to_zarr (its encoding, its
arrays, its discarded dask store) and the overview levels' arrays (``overviews.create_levels``). The template is
written on the client while the workers compute, on the same cores.

    .venv/bin/python benchmarks/template_parts.py 20
"""
import collections
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import run as R  # noqa: E402
import xarray as xr  # noqa: E402
import xarray.backends.zarr as XZ  # noqa: E402
import xarray.namedarray.daskmanager as DM  # noqa: E402

import s2sr_cloud  # noqa: E402
from s2sr_cloud.io import overviews as O  # noqa: E402
from s2sr_cloud.io import store  # noqa: E402

CPU: dict[str, float] = collections.defaultdict(float)

for _obj, _name, _label in ((xr.Dataset, "to_zarr", "to_zarr"), (XZ.ZarrStore, "encode", "  its encoding"),
                            (XZ.ZarrStore, "set_variables", "  its arrays"),
                            (DM.DaskManager, "store", "  its dask store"), (O, "create_levels", "create_levels"),
                            (store, "write_template", "the template")):
    R.time_calls(_obj, _name, CPU, clock=R.process_cpu_s, label=_label)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with R.served_tile() as catalog:
        g = R.window_geometry(R.TILE, 300, 300, 480, 480)
        ds = s2sr_cloud.load(s2sr_cloud.search(catalog), geometry=g, chunk=120)
        out = s2sr_cloud.super_resolve(ds, 4, "bicubic", chunk=120)
        bands = list(out.attrs["bands"])
        ych, xch = out[bands[0]].data.chunks[1:]
        levels = O.block_levels(ych, xch, (*bands, store.DETAIL))
        for i in range(n + 2):
            if i == 2:
                CPU.clear()
            d = Path(tempfile.mkdtemp()) / "o.zarr"
            store.write_template(out, str(d), "uint16", dict(out.attrs), levels)
            shutil.rmtree(d.parent)
        for k, v in CPU.items():
            print(f"{k:20s} {v / n * 1e3:7.1f} ms CPU")


if __name__ == "__main__":
    main()
