"""Two Zarr stores hold the same arrays with equal values (NaN equal to NaN), group by group:

    .venv/bin/python benchmarks/store_equal.py a.zarr b.zarr
"""
import sys

import numpy as np
import zarr


def arrays(group, prefix: str = ""):
    for key, node in group.members():
        if isinstance(node, zarr.Group):
            yield from arrays(node, prefix + key + "/")
        else:
            yield prefix + key, node


if __name__ == "__main__":
    a, b = (dict(arrays(zarr.open_group(p, mode="r", use_consolidated=False))) for p in sys.argv[1:3])
    if a.keys() != b.keys():
        sys.exit(f"different arrays: {sorted(set(a) ^ set(b))}")
    differ = [k for k in a if not np.array_equal(a[k][...], b[k][...], equal_nan=a[k].dtype.kind == "f")]
    print(f"{len(a)} arrays, {len(differ)} differ {differ[:5]}")
    sys.exit(1 if differ else 0)
