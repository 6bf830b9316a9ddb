"""Multiscale levels (overviews) of every band in the store: 2x, 4x, ... block means down to about 256 px.

Layout (the GeoZarr / multiscales convention: one child group per level, same variable names, each level a
self-describing dataset with its own x/y coordinates and CRS)::

    OUT.zarr/                     full resolution (the bands, detail, statistics, bookkeeping)
    OUT.zarr/overviews/2/B01 ...  2x2 block means of the full-resolution bands and detail
    OUT.zarr/overviews/4/B01 ...  4x4 block means
    ...                           until the largest side is <= 256 px

and the root attribute ``multiscales`` lists the levels (``path``, ``scale``, ``shape``, resampling ``mean``).
Open one with ``xr.open_zarr(OUT, group="overviews/4")``.

Block means keep the product's spectral consistency: a level's pixel is the mean of the full-resolution pixels
it covers, so at the level whose pixel equals an input pixel (4x for ``--scale 4``) it reproduces the input up to
the store's DN rounding. NaN (nodata) pixels are left out of the mean; a block with no valid pixel is NaN. Every
level is the float64 sum and the count of the full-resolution values it covers, as stored: for the uint16 bands
the DN themselves (exact integer sums), so a level pixel is the mean DN rounded once to the DN grid (and where a
footprint's DN sum is exact, as the product's consistency makes it, the input-resolution level reproduces the
input DN exactly); float32 variables (detail) get float32 means. Each level's sums are made from the level below
(``level_sums``): the store is read once, and a worker holds a few blocks at a time however many levels there are.
Sides that are not a multiple of the factor get a last, partial block (the mean of the pixels it has), and the
level's x/y coordinates are the block centres on the full-resolution grid's origin.

Made by the chunks' write tasks where the chunk grid allows (``BlockLevels``): level f is made by the task that
writes a block when every block but the last starts on a multiple of f. Its chunks are then the blocks' own
(block / f), so no two tasks write one chunk. The coarser levels are made at the finish from the sums and counts
of the coarsest task level, which the tasks keep in ``_overview_sums`` until then (deleted by the finish). The
result is the same as from the whole store: the same 2 x 2 sums of the same values, in the same order. Otherwise
(a store begun by an older version, an append, a repair) every level is rebuilt by the finish from the stored
full resolution (``store.finish``, before the ``complete`` mark), so a resumed or appended store's levels always
match its bands.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_SIDE = 256
# Full-resolution bytes (float32, every variable) up to which the levels are computed in this process, on threads:
# for a small store the scheduling of a distributed cluster cost more than the work (960 x 960 px, 13 variables:
# 2.7 s on a 2-worker LocalCluster, 1.9 s on threads). Larger stores use the cluster (the default scheduler): the
# client may be far from the store, and the work is the cluster's to spread.
LOCAL_BYTES = 2**26


SUMS_GROUP = "_overview_sums"  # at the root: the coarsest task level's sums and counts, until the finish
TASKS_ATTR = "overview_tasks"  # root attribute while the store is incomplete: ``BlockLevels.to_attrs()``


@dataclass(frozen=True)
class BlockLevels:
    """The levels the chunks' write tasks make from their own blocks (issue 12: made from the whole store at the
    finish, they took 13 s of a 156 s decimated-tile run, serial after the last chunk). ``factors``: the levels
    made in the tasks (2, 4, ... while every block but the last starts on a multiple); ``block``: the full-resolution
    block (y, x) of every block but the last; ``sums``: coarser levels follow at the finish, from the sums and
    counts of level ``factors[-1]``, which the tasks keep in ``SUMS_GROUP``; ``names``: the variables with levels
    (the bands and the detail layer, not a composite's obs_count)."""

    factors: tuple[int, ...]
    block: tuple[int, int]
    sums: bool
    names: tuple[str, ...]

    def chunks(self, f: int) -> tuple[int, int, int]:
        """A task level's chunks: one per block."""
        return 1, -(-self.block[0] // f), -(-self.block[1] // f)

    def to_attrs(self) -> dict[str, Any]:
        return {"factors": list(self.factors), "block": list(self.block), "sums": self.sums, "names": list(self.names)}

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any] | None) -> BlockLevels | None:
        if not attrs:
            return None
        return cls(tuple(int(f) for f in attrs["factors"]), (int(attrs["block"][0]), int(attrs["block"][1])),
                   bool(attrs["sums"]), tuple(str(n) for n in attrs["names"]))


def block_levels(ychunks: tuple[int, ...], xchunks: tuple[int, ...], names: tuple[str, ...]) -> BlockLevels | None:
    """The levels of ``names`` that write tasks over blocks of these full-resolution chunks can make (None: none
    can)."""
    factors = level_factors(sum(ychunks), sum(xchunks))
    inside = tuple(f for f in factors if all(len(c) == 1 or c[0] % f == 0 for c in (ychunks, xchunks)))
    if not inside:
        return None
    return BlockLevels(inside, (ychunks[0], xchunks[0]), sums=len(inside) < len(factors), names=tuple(names))


def stored_fill(arr: Any) -> int | None:
    """The no-data DN of a uint16 store array, None for float arrays (NaN)."""
    return int(arr.attrs.get("_FillValue", arr.metadata.fill_value)) if arr.dtype == np.uint16 else None


LEVEL_STRIP_PX = 2**20  # full-resolution pixels per strip of a block's levels (float64 temporaries ~40 B / px)


def block_level_writes(name: str, values: np.ndarray, fill: int | None, t: int, y0: int, x0: int,
                       levels: BlockLevels) -> list[tuple[str, tuple, np.ndarray]]:
    """In a chunk's write task: the task levels of one variable's block ``values`` (y, x) as stored (DN with
    ``fill``, or float32 with NaN) at full-resolution (y0, x0), each from the one below, and the coarsest one's sums
    when coarser levels follow, as (array path, region, values) writes (``store.write_block`` makes every write of
    a chunk in one round trip). Made in strips of rows (a multiple of the coarsest factor: every 2 x 2 pair stays
    inside a strip, so the values are the whole block's): a 7320 px block's float64 level sums were 0.8 GB per
    variable at once, per write thread."""
    h, w = values.shape[-2:]
    g = levels.factors[-1]
    step = max(g, LEVEL_STRIP_PX // max(1, w) // g * g)
    means = [np.empty(level_shape(h, w, f), np.float32 if fill is None else np.uint16) for f in levels.factors]
    last = np.empty((2, *level_shape(h, w, g))) if levels.sums else None
    for r0 in range(0, h, step):
        sums = _first_sums(values[None, r0:r0 + step], fill)
        for i, f in enumerate(levels.factors):
            if i:
                sums = _next_sums(sums)
            means[i][r0 // f:r0 // f + sums.shape[-2]] = _mean(sums, fill)[0]
        if last is not None:
            last[:, r0 // g:r0 // g + sums.shape[-2]] = sums[0]
    regions = [(t, slice(y0 // f, y0 // f + m.shape[0]), slice(x0 // f, x0 // f + m.shape[1]))
               for f, m in zip(levels.factors, means, strict=True)]
    if last is not None:
        regions.append((t, slice(None), slice(y0 // g, y0 // g + last.shape[-2]),
                        slice(x0 // g, x0 // g + last.shape[-1])))
    return list(zip(level_paths(name, levels), regions, [*means, *([last] if last is not None else [])],
                    strict=True))


def level_paths(name: str, levels: BlockLevels) -> list[str]:
    """The arrays ``block_level_writes`` writes for variable ``name``."""
    from . import store

    return [f"{store.OVERVIEWS}/{f}/{name}" for f in levels.factors] + ([f"{SUMS_GROUP}/{name}"] if levels.sums
                                                                          else [])


def level_shape(ny: int, nx: int, f: int) -> tuple[int, int]:
    """The (y, x) size of the level of factor ``f`` (a partial last block counts)."""
    return -(-ny // f), -(-nx // f)


def level_factors(ny: int, nx: int, min_side: int = MIN_SIDE) -> list[int]:
    """2, 4, 8, ... while the previous level's largest side is above ``min_side``."""
    out, f = [], 1
    while max(level_shape(ny, nx, f)) > min_side:
        f *= 2
        out.append(f)
    return out


def _pair_sums(block: np.ndarray, dtype: Any) -> np.ndarray:
    """2 x 2 sums over the last two axes of one block, in ``dtype``; an odd end (the array's last block) is
    padded with 0."""
    *lead, h, w = block.shape
    if h % 2 or w % 2:
        block = np.pad(block, [(0, 0)] * len(lead) + [(0, h % 2), (0, w % 2)])
    # two strided adds: 5x faster than a sum over the two pair axes of a reshape (0.13 -> 0.025 s, 3360 px block)
    rows = np.add(block[..., 0::2, :], block[..., 1::2, :], dtype=dtype)
    return np.add(rows[..., 0::2], rows[..., 1::2])


def _first_sums(block: np.ndarray, fill: int | None = None) -> np.ndarray:
    """(time, h, w) full-resolution block, no data = NaN (floats) or ``fill`` (the store's raw uint16 DN) ->
    (time, 2, ceil(h / 2), ceil(w / 2)) float64: the 2 x 2 sums of the valid values and their counts (exact for
    DN: integers far below 2^53)."""
    ok = ~np.isnan(block) if fill is None else block != fill
    return np.stack([_pair_sums(np.where(ok, block, 0), np.float64), _pair_sums(ok, np.float64)], axis=1)


def _next_sums(block: np.ndarray) -> np.ndarray:
    return _pair_sums(block, np.float64)


def _mean(block: np.ndarray, fill: int | None = None) -> np.ndarray:
    """(time, 2, h, w) sums and counts -> (time, h, w) means where something was valid: float32 (NaN elsewhere),
    or with ``fill`` the mean DN rounded to the nearest integer (half to even, as xarray's CF encoding rounds) as
    uint16 (``fill`` elsewhere)."""
    s, k = block[:, 0], block[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        if fill is None:
            return np.where(k > 0, s / k, np.nan).astype(np.float32)
        return np.where(k > 0, np.rint(s / k), fill).astype(np.uint16)


def _halve(a: Any, fill: int | None = None) -> Any:
    """A dask array (time, y, x) of values (``_first_sums``) or (time, 2, y, x) of sums and counts
    (``_next_sums``) -> the next level's (time, 2, ceil(y / 2), ceil(x / 2)) sums and counts. Every chunk but the
    last must be even for the 2 x 2 pairs to stay inside a chunk: chunks that are not (or are under 256 px, so the
    levels do not shrink into tiny tasks) are first regrouped into 512 px chunks."""
    import dask.array as da

    rechunk = {}
    for ax in (a.ndim - 2, a.ndim - 1):
        c = a.chunks[ax]
        if any(n % 2 for n in c[:-1]) or (len(c) > 1 and c[0] < 256):
            rechunk[ax] = min(512, a.shape[ax])
    if rechunk:
        a = a.rechunk(rechunk)
    halved = tuple(tuple((n + 1) // 2 for n in a.chunks[ax]) for ax in (a.ndim - 2, a.ndim - 1))
    if a.ndim == 3:  # the full resolution: a (sum, count) axis appears
        return da.map_blocks(_first_sums, a, fill, chunks=(a.chunks[0], (2,), *halved), new_axis=1,
                             dtype=np.float64)
    return da.map_blocks(_next_sums, a, chunks=(a.chunks[0], a.chunks[1], *halved), dtype=np.float64)


def level_sums(v: Any, n_levels: int, fill: int | None = None) -> list[Any]:
    """Per level l = 1 .. n_levels, a (time, 2, ny / 2^l, nx / 2^l) float64 dask array: the sum and the count of
    the valid (non-NaN) values of the (time, y, x) dask array ``v`` over each 2^l x 2^l block, partial blocks at
    the ends. Each level is made from the one below, so every full-resolution block is read once and is consumed
    by level 2 alone: a worker holds a few blocks, whatever the number of levels (building each level from the
    full resolution held the blocks until every level had used them: 4.1 GB at once on one worker for a 4392 px x4
    store). One task per block and level does the whole step (a dask graph of a few layers per level). ``fill``:
    ``v`` holds raw DN with this no-data value instead of NaN. ``v`` may instead be the (time, 2, y, x) sums and
    counts of a level: the levels above it follow."""
    out = [_halve(v, fill)]
    for _ in range(n_levels - 1):
        out.append(_halve(out[-1]))
    return out


def _centres(c: np.ndarray, f: int, n: int) -> np.ndarray:
    step = float(c[1] - c[0]) if len(c) > 1 else 1.0
    edge = float(c[0]) - step / 2
    return edge + (np.arange(n) + 0.5) * step * f


def _make_like(root: Any, groups: dict[str, Any], jobs: list[tuple[Any, ...]]) -> list[Any]:
    """Make the ``groups`` (path: metadata) and each job's array (path, metadata, data: written when not None)
    under the group ``root``, all concurrently in one call to zarr's event loop (``zarr.create_hierarchy``, zarr's
    public API): each node is one metadata document, a round trip on S3. Making each level's arrays with
    ``create_array`` (a check for an existing node and its parents' documents rewritten, per array) took
    0.24-0.36 CPU-s of the template of a 16-chunk store, on the client while the workers compute; now 0.12-0.14
    (``benchmarks/template_parts.py``, round 18). Returns the jobs' arrays."""
    import asyncio

    import zarr
    from zarr.api import asynchronous
    from zarr.core.sync import sync

    prefix = root.path.strip("/")

    def full(path: str) -> str:
        return f"{prefix}/{path}" if prefix else path

    nodes = {full(p): m for p, m in groups.items()} | {full(j[0]): j[1] for j in jobs}

    async def make_all() -> list[Any]:
        made = {path: node async for path, node in asynchronous.create_hierarchy(store=root.store, nodes=nodes)}
        arrays = [made[full(j[0])] for j in jobs]
        await asyncio.gather(*(a.setitem(Ellipsis, j[2]) for a, j in zip(arrays, jobs, strict=True)
                               if j[2] is not None))
        return [zarr.Array(a) for a in arrays]

    return sync(make_all()) if nodes else []


def _group_metadata(fmt: int, attrs: dict[str, Any] | None = None) -> Any:
    from zarr.core.group import GroupMetadata

    return GroupMetadata(attributes=attrs or {}, zarr_format=fmt)


def _like(src: Any, shape: tuple[int, ...], chunks: tuple[int, ...], fmt: int, attrs: dict[str, Any] | None = None
          ) -> Any:
    """The metadata of an array stored as the array ``src`` is (dtype, fill value, dimension names, and the
    attributes holding xarray's CF encoding: scale_factor, add_offset, _FillValue, units, grid_mapping, ...) with
    the store's checksummed compressors, ``shape``, ``chunks`` and the extra ``attrs``."""
    import dataclasses

    from . import store

    meta, attributes = src.metadata, dict(src.attrs) | (attrs or {})
    if fmt == 2:
        return dataclasses.replace(meta, shape=shape, chunks=chunks, attributes=attributes,
                                   compressor=store.compressors(2)[0])
    from zarr.abc.codec import BytesBytesCodec
    from zarr.core.chunk_grids import RegularChunkGrid

    codecs = (*(c for c in meta.codecs if not isinstance(c, BytesBytesCodec)), *store.compressors(3))
    return dataclasses.replace(meta, shape=shape, chunk_grid=RegularChunkGrid(chunk_shape=chunks),
                               attributes=attributes, codecs=codecs)


def _new_metadata(shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any, fill: Any, fmt: int) -> Any:
    """The metadata zarr's ``create_array`` gives an array of these (with the store's compressors), made in
    memory."""
    import zarr

    from . import store

    return zarr.create_array(zarr.storage.MemoryStore(), shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                             compressors=store.compressors(fmt), zarr_format=fmt).metadata


def _levels_here(src: Any, targets: list[Any], fill: int | None) -> None:
    """A small store's levels of one variable, in this process: the whole array read once, each level's sums made
    from the one below (the same ``_first_sums`` / ``_next_sums`` / ``_mean`` as the dask path). ``src``: the
    (time, y, x) full resolution, or the (time, 2, y, x) sums and counts of the level below the first target."""
    sums = _first_sums(src[...], fill) if src.ndim == 3 else _next_sums(src[...])
    for i, target in enumerate(targets):
        if i:
            sums = _next_sums(sums)
        target[...] = _mean(sums, fill)


def _existing(url: str, opts: dict[str, Any] | None, root: Any, names: list[str], nt: int, ny: int, nx: int,
              factors: list[int]) -> dict[str, list[Any]] | None:
    """The levels' arrays already in the store when they are exactly the ones these full-resolution arrays make
    (``create_levels`` at the template, or a resumed run's), else None. Every level's arrays are opened, and their
    time coordinates read, concurrently in one call to zarr's event loop (one at a time, the 51-66 metadata reads
    took 0.095 s of a 0.31 s finish on 16 chunks: each a round trip, on S3 a GET)."""
    import asyncio

    import zarr
    from zarr.core.sync import sync

    from . import store

    try:
        top = root[store.OVERVIEWS]
        if sorted(top.group_keys()) != sorted(str(f) for f in factors):
            return None
        paths = [f"{store.OVERVIEWS}/{f}/{n}" for f in factors for n in ("y", "x", "time", *names)]
        arrays = store._open_arrays(url, opts, paths)

        async def times() -> list[np.ndarray]:
            return list(await asyncio.gather(*(arrays[f"{store.OVERVIEWS}/{f}/time"].getitem(Ellipsis)
                                               for f in factors)))

        level_times = sync(times())
        time = root["time"][...]
    except KeyError:
        return None
    out: dict[str, list[Any]] = {n: [] for n in names}
    for f, t in zip(factors, level_times, strict=True):
        ly, lx = level_shape(ny, nx, f)
        level = f"{store.OVERVIEWS}/{f}"
        if ((arrays[f"{level}/y"].shape, arrays[f"{level}/x"].shape) != ((ly,), (lx,))
                or not np.array_equal(t, time)):
            return None
        for n in names:
            out[n].append(zarr.Array(arrays[f"{level}/{n}"]))
            if out[n][-1].shape != (nt, ly, lx):
                return None
    return out


def _levels(url: str, names: list[str], zarr_format: int, reuse: bool, tasks: BlockLevels | None = None
            ) -> tuple[Any, dict[str, Any], list[int], dict[str, list[Any]], bool]:
    """(the store's root group, the full-resolution arrays of ``names`` it holds, the level factors, per name the
    levels' arrays, whether they were kept). The arrays are made with zarr from the full-resolution arrays' own
    metadata (the same dtype, fill value, CF attributes and dimension names: ``xr.open_zarr(url,
    group="overviews/4")`` decodes them as it decodes the bands), with the x/y of the block centres and the full
    resolution's time and CRS; ``reuse``: keep the store's levels when they are exactly these. ``tasks``: the
    task levels are chunked by block, and their sums' arrays are made (``SUMS_GROUP``)."""
    import zarr

    from . import store

    opts = store.storage_options(url) or None
    root = zarr.open_group(store._store(url, opts), mode="r+", use_consolidated=False)
    present = set(root.array_keys())
    srcs = {n: root[n] for n in names if n in present}
    names = list(srcs)
    factors = level_factors(*srcs[names[0]].shape[1:]) if names else []
    if not factors:
        if store.OVERVIEWS in root:
            del root[store.OVERVIEWS]
        return root, srcs, factors, {}, False
    nt, ny, nx = srcs[names[0]].shape
    if reuse and (kept := _existing(url, opts, root, names, nt, ny, nx, factors)) is not None:
        return root, srcs, factors, kept, True
    if store.OVERVIEWS in root:
        del root[store.OVERVIEWS]  # the previous run's levels (an appended store's grew along time)
    copied = [c for c in ["time", *sorted({a.attrs.get("grid_mapping") for a in srcs.values()} & present)]
              if c in present]  # as they are
    ys, xs = root["y"], root["x"]
    y, x = ys[...], xs[...]
    nodes: dict[str, Any] = {store.OVERVIEWS: _group_metadata(zarr_format)}  # made with the arrays, at once
    jobs: list[Any] = []  # (path, metadata, data)
    slots: dict[str, list[int]] = {n: [] for n in names}  # each band's levels: their places in ``jobs``
    for f in factors:
        ly, lx = level_shape(ny, nx, f)
        level = f"{store.OVERVIEWS}/{f}"
        nodes[level] = _group_metadata(zarr_format, {
            "overview_factor": f, "resampling": "mean",
            "description": f"{f}x{f} block means of the full-resolution variables (NaN left out)"})
        for c in copied:
            a = root[c]
            jobs.append((f"{level}/{c}", _like(a, a.shape, a.chunks, zarr_format), a[...]))
        jobs.append((f"{level}/y", _like(ys, (ly,), (ly,), zarr_format), _centres(y, f, ly)))
        jobs.append((f"{level}/x", _like(xs, (lx,), (lx,), zarr_format), _centres(x, f, lx)))
        chunks = tasks.chunks(f) if tasks and f in tasks.factors else (1, min(512, ly), min(512, lx))
        for n in names:
            slots[n].append(len(jobs))
            jobs.append((f"{level}/{n}", _like(srcs[n], (nt, ly, lx), chunks, zarr_format, {"overview_factor": f}),
                         None))
    if SUMS_GROUP in root:
        del root[SUMS_GROUP]
    if tasks and tasks.sums:  # float64 (sum, count) of the coarsest task level, per block
        g = tasks.factors[-1]
        nodes[SUMS_GROUP] = _group_metadata(zarr_format, {
            "description": f"sums and counts of the {g}x{g} level per block, for the coarser levels; removed when "
                           "the store is complete"})
        meta = _new_metadata((nt, 2, *level_shape(ny, nx, g)), (1, 2, *tasks.chunks(g)[1:]), np.float64, 0.0,
                             zarr_format)
        jobs.extend((f"{SUMS_GROUP}/{n}", meta, None) for n in names)
    made = _make_like(root, nodes, jobs)
    return root, srcs, factors, {n: [made[i] for i in slots[n]] for n in names}, False


def create_levels(url: str, names: list[str], zarr_format: int, tasks: BlockLevels | None = None) -> None:
    """Make the levels' (empty) arrays of a new store, with its template: the write tasks fill ``tasks``' levels,
    ``write_overviews`` the rest (their 47 arrays took 0.25 s of a 0.9 s finish on a 960 px store; the template
    is written while the workers compute)."""
    _levels(url, names, zarr_format, reuse=False, tasks=tasks)


def write_overviews(url: str, names: list[str], zarr_format: int) -> dict[str, Any]:
    """Write the levels of ``names`` that the write tasks did not (``BlockLevels``: the coarser ones, from the
    tasks' sums), or, when the tasks made none or the levels' arrays are not the template's, (re)write every level
    from the full resolution; returns the root attributes that describe them (``multiscales``). A resumed or
    repaired store's levels match its bands: its done chunks were written with their levels, or every chunk of
    every level is rewritten. Making the levels' arrays through xarray took 0.9 s of a 2.1 s finish on a 960 px
    store, more than the levels' arithmetic (benchmarks/RESULTS.md, round 7)."""
    import dask.array as da

    from . import store

    root, srcs, factors, targets, kept = _levels(url, names, zarr_format, reuse=True)
    tasks = BlockLevels.from_attrs(root.attrs.get(TASKS_ATTR)) if kept else None
    names = list(srcs)
    if tasks and not set(names) <= set(tasks.names):
        tasks = None  # a variable whose levels no task made
    if tasks and tasks.sums and not all(f"{SUMS_GROUP}/{n}" in root for n in names):
        tasks = None  # (a finish interrupted after it removed the sums: the whole pyramid again)
    if SUMS_GROUP in root and not tasks:
        del root[SUMS_GROUP]
    if not targets:
        return {"multiscales": None}
    nt, ny, nx = srcs[names[0]].shape
    # the stored values as they are (uint16 DN with their fill value, float32 with NaN): the levels are block
    # means of the DN, rounded once to the DN grid, with no decoding to float and encoding back
    fills = {n: stored_fill(a) for n, a in srcs.items()}
    datasets = [{"path": ".", "scale": 1, "shape": [ny, nx]}] + [
        {"path": f"{store.OVERVIEWS}/{f}", "scale": f, "shape": list(level_shape(ny, nx, f))} for f in factors]
    if tasks and not tasks.sums:
        return _multiscales(names, datasets)
    done = len(tasks.factors) if tasks else 0  # levels the write tasks made
    # the base each variable's remaining levels are made from: the full resolution, or the task sums
    bases = {n: root[f"{SUMS_GROUP}/{n}"] if done else srcs[n] for n in names}
    base_bytes = sum(int(np.prod(b.shape)) * (8 if done else 4) for b in bases.values())
    if base_bytes <= LOCAL_BYTES:  # in this process, one variable per thread (numpy and the codecs release the GIL)
        with ThreadPoolExecutor(min(4, len(names))) as pool:
            list(pool.map(lambda n: _levels_here(bases[n], targets[n][done:], fills[n]), names))
    else:
        sources, dests = [], []
        for n in names:
            sums = level_sums(da.from_zarr(bases[n]), len(factors) - done, fills[n])
            dtype = np.float32 if fills[n] is None else np.uint16
            for level, target in zip(sums, targets[n][done:], strict=True):
                sources.append(level.map_blocks(_mean, fills[n], drop_axis=1, dtype=dtype).rechunk(target.chunks))
                dests.append(target)
        # ONE store of every level and band: dask optimises the sources together, so a level's sums (used by its
        # mean and by the next level) stay one task per block. A store per level fused each level's chain from the
        # full resolution into its own tasks: every level recomputed the levels below it (5 levels of a 4392 px
        # store: each full-resolution block summed 5 times, benchmarks/tile_tasks.py).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            da.store(sources, dests, lock=False, compute=True)
    if SUMS_GROUP in root:
        del root[SUMS_GROUP]
    return _multiscales(names, datasets)


def _multiscales(names: list[str], datasets: list[dict[str, Any]]) -> dict[str, Any]:
    return {"multiscales": [{
        "name": "overviews", "type": "mean", "variables": names, "datasets": datasets,
        "metadata": {"method": "block mean over f x f full-resolution pixels, NaN left out; see s2sr_cloud/io/"
                     "overviews.py", "min_side": MIN_SIDE}}]}
