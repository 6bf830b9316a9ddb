"""Where a chunk's write task spends its time (issue 12: on the GPU the writes are most of a tile's run): a
realistic uint16 DN block, 13 layers of 2208 px (a 552 px x4 chunk, as the decimated tile's), tiled from a store's
layers, each part timed alone on one thread (best of 3): zstd (the store's codec), CRC32, the overview levels; and
the first level's 2 x 2 sums in float64 (as written) against integer sums (the same values).

    make demo && .venv/bin/python benchmarks/write_parts.py demo.zarr
"""
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import zarr
from numcodecs import Zstd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from s2sr_cloud.io import overviews as O  # noqa: E402
from s2sr_cloud.io import store as S  # noqa: E402

FILL = S.FILL_DN


def best(f, n: int = 3) -> float:
    out = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        out = min(out, time.perf_counter() - t0)
    return out


def int_first_sums(block: np.ndarray, fill: int) -> np.ndarray:
    ok = block != fill
    s = O._pair_sums(np.where(ok, block, 0), np.uint32)
    return np.stack([s, O._pair_sums(ok, np.uint8)], axis=1).astype(np.float64)


def main() -> None:
    g = zarr.open_group(sys.argv[1], mode="r")
    names = S.layer_names(list(g.attrs["bands"]), g)
    blk = np.stack([np.tile(np.asarray(g[n][0]), (3, 3))[:2208, :2208] for n in names])
    print(f"block {blk.shape} {blk.dtype}, {blk.nbytes / 1e6:.0f} MB")
    z = Zstd(level=3, checksum=True)
    size = sum(len(z.encode(np.ascontiguousarray(b))) for b in blk)
    print(f"zstd level 3: {best(lambda: [z.encode(np.ascontiguousarray(b)) for b in blk]):.3f} s "
          f"(ratio {blk.nbytes / size:.2f})")
    print(f"crc32: {best(lambda: [zlib.crc32(b) for b in blk]):.3f} s")

    def levels() -> None:
        for b in blk:
            s = O._first_sums(b[None], FILL)
            for i in range(6):
                s = O._next_sums(s) if i else s
                O._mean(s, FILL)
    print(f"overview levels (6): {best(levels):.3f} s")
    assert all(np.array_equal(O._first_sums(b[None], FILL), int_first_sums(b[None], FILL)) for b in blk[:3])
    print(f"first level sums, float64 as written: {best(lambda: [O._first_sums(b[None], FILL) for b in blk]):.3f} s;"
          f" in integers (equal): {best(lambda: [int_first_sums(b[None], FILL) for b in blk]):.3f} s")


if __name__ == "__main__":
    main()
