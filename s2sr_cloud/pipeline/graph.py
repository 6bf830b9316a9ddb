"""The one place that builds dask graphs: map_overlap-style super-resolution and the per-block statistics.

Layout: the input is stacked to (time, band, y, x) with one chunk per (time, y-block, x-block) holding all bands.
``overlap`` adds the halo (none beyond the area's outer edge: the chunk function is told which sides are edges);
the SR layer is a map_blocks over the overlapped blocks that trims the halo itself, because the output is
``scale`` times larger than the input and dask's own trim would cut the wrong amount (shared NOTES.md). Only the
SR layer carries the GPU resource annotation, so reading and writing tasks stay unrestricted.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine
from dask.core import flatten
from dask.highlevelgraph import HighLevelGraph

from .._process import release_memory
from ..bands import FACTOR_ATTR
from ..io.load import COUNT
from ..io.store import DETAIL, DONE, STORE_QUANTUM, SUMS
from ..model.predictors import BicubicPredictor, TorchPredictor
from ..ops.block import BlockSpec, decode_dn, super_resolve_block_sums
from ..config import env_number
from ..errors import ConfigError
from ..ops.halo import ChunkError, check_chunks, plan_chunks, required_halo
from ..ops.stats import COMPARISONS, NSUM

# Bytes a worker holds per output pixel of a chunk, at the peak (the network of the last bands): the chunk function's
# uint16 DN result (13 x 2 B), the detail layer's float32 sum of squares (4 B), and one band's float32 prediction
# (4 B: the window a little larger than the chunk). Everything else is a strip's (the consistency and detail
# layers, the statistics, the network's output head, the self-ensemble) or the input's, counted in
# CHUNK_FIXED_GIB. On CPU a write task super-resolves its chunk itself (``FusedSR``): no finished block is held
# beside the next. Measured on CPU (benchmarks/RESULTS.md, round 12): the chunk function alone adds 0.96 GiB to
# its process at 384 px (x10, default ensemble) and 2.24 GiB at 744 px (x10, --ensemble 1): 33.7 B per output
# pixel + 0.50 GiB.
BYTES_PER_OUTPUT_PX = 26 + 4 + 4
CHUNK_FIXED_GIB = 0.5  # the network's input-resolution features, strips and allocator, about the same at any scale
# Input pixels per chunk side at most, whatever the budget: on CPU the chunk function ran 9% slower per output
# pixel at 972 px than at 798 (x4, --ensemble 1, alternating: benchmarks/chunk_memory.py), past the halo's gain.
MAX_CHUNK_INPUT_PX = 798
DOWNSTREAM_PRIORITY = 1  # dask priority of the tasks that consume SR results (write.py uses it too)
WORKER_BUDGET_GIB = 2.2  # per-worker memory for one chunk's data, on top of the process (torch, dask, GDAL)


# The SR outputs whose layers ``super_resolve`` sliced: the layers' array names, in order -> the name, chunks and
# meta of the output as the SR tasks return it (uint16 DN when quantised; not the array: its graph may hold a
# persisted input's data). So ``write_output`` takes each block whole, as stored: slicing it into 13 layers and
# stacking them back cost 2 x 13 tasks and a copy of the block per chunk, and decoding DN to be encoded again two
# more copies. The last few are kept; changed, subset or persisted layers are other arrays.
_LAYER_SOURCES: OrderedDict[tuple[str, ...], tuple[str, tuple, np.ndarray, "FusedSR | None"]] = OrderedDict()
_LAYER_SOURCES_KEPT = 8


@dataclass(frozen=True)
class FusedSR:
    """What a write task needs to super-resolve its chunk itself (``sr_block``): the overlapped input (its graph
    layer's name and chunks) and the SR task's arguments. A write that runs the SR in the same task holds no
    finished block between tasks: a worker queued its next SR task before the finished block's write arrived and
    held that block meanwhile (26 B per output pixel at the peak, ``benchmarks/rss_diag.py``)."""

    padded: str
    chunks: tuple
    meta: np.ndarray
    predictor: BicubicPredictor | TorchPredictor
    spec: BlockSpec
    threads: int | None

    def blocks(self, arrays: list) -> da.Array:
        """The overlapped input blocks (time, band, y, x), rebuilt from the layers' graph."""
        return da.Array(arrays[0].dask.cull_layers([self.padded]), self.padded, self.chunks, meta=self.meta)

    def run(self, block: np.ndarray, t: int, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """The SR task of chunk (t, i, j) on its overlapped block: (output as stored, statistics sums)."""
        ny, nx = len(self.chunks[2]), len(self.chunks[3])
        info = {0: {"chunk-location": (t, 0, i, j), "num-chunks": (len(self.chunks[0]), 1, ny, nx)}}
        return _sr_pair(block, self.predictor, self.spec, self.threads, info)


def _source(arrays: list) -> tuple[str, tuple, np.ndarray, FusedSR | None] | None:
    entry = _LAYER_SOURCES.get(tuple(getattr(a, "name", "") for a in arrays))
    if entry is None or not all(entry[0] in getattr(a.dask, "layers", {}) for a in arrays):
        return None
    return entry


def fused_source(arrays: list) -> FusedSR | None:
    """For the layers of an SR output as ``layer_source`` finds them, all of them and in order, computed on CPU
    workers (no GPU resource): how a write task super-resolves its chunk itself. None otherwise (GPU SR tasks keep
    their own task on the GPU's workers; the write stays off them)."""
    entry = _source(arrays)
    fused = entry[3] if entry is not None else None
    return fused if fused is not None and fused.padded in arrays[0].dask.layers else None


def layer_source(arrays: list) -> da.Array | None:
    """The 4-D (time, layer, y, x) SR output whose layers ``arrays`` are, all of them and in order, as the SR tasks
    return it (uint16 DN of the store's encoding when quantised, else float32), rebuilt from their own graph (so
    it must still hold the output: not persisted); else None."""
    entry = _source(arrays)
    if entry is None:
        return None
    name, chunks, meta, _ = entry
    return da.Array(arrays[0].dask.cull_layers([name]), name, chunks, meta=meta)


def worker_budget_bytes() -> int:
    """``S2SR_CHUNK_MEMORY_GIB`` (default 2.2): the memory one chunk's data may take on a worker. The default
    keeps a dask worker's peak under 3 GiB and the default chunks large enough that the halo costs <= 1.25x the
    network pixels on a whole tile (benchmarks/run.py's halo_overhead_x4, 798 px: 1.22; x10, 732 px: 1.24)."""
    return int(env_number("S2SR_CHUNK_MEMORY_GIB", WORKER_BUDGET_GIB, float) * 2**30)


def default_chunk(scale: int) -> int:
    """Input pixels per chunk side from the per-worker memory budget: the largest square chunk whose output
    (12 bands + detail, at ``scale``) fits ``worker_budget_bytes`` beside ``CHUNK_FIXED_GIB``, at most
    ``MAX_CHUNK_INPUT_PX``; a multiple of 6 (the 60 m grid). At the default budget: 798 px at x4 (the cap), 732 at
    x10."""
    free = max(0.0, worker_budget_bytes() - CHUNK_FIXED_GIB * 2**30)
    out_side = math.sqrt(free / BYTES_PER_OUTPUT_PX)
    return max(48, min(MAX_CHUNK_INPUT_PX, int(out_side / scale)) // 6 * 6)


def _stack_bands(*blocks: np.ndarray) -> np.ndarray:
    """(t, h, w) band blocks -> one (t, bands, h, w) block."""
    return np.stack(blocks, axis=1)


def block_pads(halo: int, block_info: dict | None) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) grid pixels of context an overlapped block holds: the halo, or 0 on a side
    that is the edge of the whole area (``overlap`` adds nothing there: the chunk function handles it)."""
    if not block_info:
        return (halo,) * 4
    (_, _, iy, ix), (_, _, ny, nx) = block_info[0]["chunk-location"], block_info[0]["num-chunks"]
    return (halo if iy else 0, halo if iy < ny - 1 else 0, halo if ix else 0, halo if ix < nx - 1 else 0)


def _sr_pair(block: np.ndarray, predictor: BicubicPredictor | TorchPredictor, spec: BlockSpec,
             threads: int | None = None, block_info: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One SR task: the output block and its statistics sums, (T, K * (C + 1) * NSUM, 1, 1) for the K
    comparisons. An empty block (no valid input pixel) does not reach the predictor (``ops.block``)."""
    from ..model.predictors import torch_threads

    torch_threads(threads)
    # uint16 DN when the output is quantised (half the bytes to hold between tasks and to copy from the device;
    # the write stores them as they are): ``decode_dn`` decodes them for whoever reads the layers as reflectance
    y, sums = super_resolve_block_sums(block, predictor, spec, block_pads(spec.halo, block_info), dn=True)
    release_memory()  # the chunk function's temporaries' pages back to the OS (s2sr_cloud._process)
    return y, sums.reshape(sums.shape[0], -1, 1, 1)


def _replicate(a: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(np.repeat(a, k, axis=-2), k, axis=-1)


def _first(pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return pair[0]


def _second(pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return pair[1]


def _cluster_threads() -> int | None:
    """Worker threads of the current distributed client, if there is one."""
    try:
        from distributed import default_client

        return sum(default_client().nthreads().values()) or None
    except (ImportError, ValueError):
        return None


def _cluster_has_gpu() -> bool:
    """Whether the current distributed client, if there is one, has a worker advertising a GPU resource."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        return False
    from .cluster import has_gpu_workers

    return has_gpu_workers(client)


def task_threads(n_blocks: int, total_threads: int | None) -> int | None:
    """Torch threads per SR task when there are fewer chunks than worker threads (e.g. the one-chunk demo):
    the idle threads' share; None (the default, one per task) otherwise."""
    if total_threads and n_blocks < total_threads:
        return max(1, total_threads // n_blocks)
    return None


def _merge_private_inputs(x: da.Array) -> da.Array:
    """``x`` with each block's task and the tasks only it consumes (its bands' reads) merged into one task, by
    dask's own ``GraphNode.fuse``: a chunk's 12 band reads (and its SCL read) and their stack become one task. On
    16 chunks: 354 -> 162 tasks per job and 17-25% less CPU in the client's process, where a local cluster's
    scheduler runs (benchmarks/RESULTS.md, round 17). Shared inputs (each band's open reader, the load's grid) stay
    tasks of their own. ``x`` unchanged where the graph is not made of dask's task objects (``dask._task_spec``,
    dask >= 2025)."""
    try:
        from dask._task_spec import GraphNode, Task
    except ImportError:  # pragma: no cover - older task specs: one task per band read, as before
        return x
    dsk = dict(x.__dask_graph__())
    if not all(isinstance(t, GraphNode) for t in dsk.values()):
        return x
    consumers: dict = {}
    for task in dsk.values():
        for dep in task.dependencies:
            consumers[dep] = consumers.get(dep, 0) + 1
    blocks = set(flatten(x.__dask_keys__()))
    for key in blocks:
        task = dsk[key]
        own = [dsk[d] for d in task.dependencies
               if consumers.get(d) == 1 and d not in blocks and isinstance(dsk.get(d), Task)
               and not dsk[d].block_fusion]
        if own:
            dsk[key] = GraphNode.fuse(task, *own, key=key)
            for t in own:
                del dsk[t.key]
    graph = HighLevelGraph.from_collections(x.name, dsk, dependencies=())
    return da.Array(graph, x.name, x.chunks, meta=x._meta)


def disable_fusion_for_resources() -> None:
    """Task fusion silently drops resource annotations (shared NOTES.md); it must be off BEFORE graphs are built."""
    dask.config.set({"optimization.fuse.active": False})


def chunk_grid(shape: tuple[int, int], factors: tuple[int, ...], halo: int, chunk: int | None, scale: int,
               recorded: tuple[tuple[int, ...], tuple[int, ...]] | None = None
               ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The input chunk grid (y chunks, x chunks) of an area: ``recorded`` (a store's own ``chunk_input``, which
    a resumed or appended store keeps, whatever this version would plan) when given, else ``plan_chunks`` of
    ``chunk`` (default: ``default_chunk(scale)``). A grid that cannot hold the halo is a ConfigError."""
    align = math.lcm(*factors)
    try:
        if recorded is not None:
            grid = (tuple(int(v) for v in recorded[0]), tuple(int(v) for v in recorded[1]))
            for n, sizes in zip(shape, grid, strict=True):
                check_chunks(n, sizes, align, halo)
            return grid
        side = chunk or default_chunk(scale)
        return plan_chunks(shape[0], side, align, halo), plan_chunks(shape[1], side, align, halo)
    except ChunkError as err:
        raise ConfigError(str(err)) from None


def super_resolve(ds: xr.Dataset, scale: int = 4, predictor: BicubicPredictor | TorchPredictor | None = None, *,
                  chunk: int | None = None, quantize: bool = True, gpu: bool | None = None,
                  grid: tuple[tuple[int, ...], tuple[int, ...]] | None = None) -> xr.Dataset:
    """Lazy super-resolution of every (time, y, x) band variable of ``ds``. ``grid``: an explicit input chunk
    grid (a store's recorded ``chunk_input``, to continue it), instead of planning one from ``chunk``. ``gpu``:
    restrict the SR tasks to workers advertising a ``GPU`` resource, one task per unit; None: when the current
    client has such workers (unrestricted, each thread of a GPU worker ran an SR task at once on its one GPU).

    Returns a Dataset with the bands at ``scale`` x resolution, a ``detail`` layer and ``chunk_sums`` (the
    per-block statistics sums, computed in the same pass as the bands). ``quantize`` rounds outputs to the uint16
    store grid with per-footprint sums preserved, so the stored product stays exactly consistent."""
    predictor = predictor or BicubicPredictor()
    bands = [v for v in ds.data_vars if ds[v].dims == ("time", "y", "x") and v != COUNT]
    factors = tuple(int(ds[b].attrs.get(FACTOR_ATTR, 1)) for b in bands)
    spec_halo = required_halo(predictor.reach(factors, scale), factors, detail=True)
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    ychunks, xchunks = chunk_grid((ny, nx), factors, spec_halo, chunk, scale, grid)
    if gpu is None:
        gpu = _cluster_has_gpu()
    # method="tasks": p2p rechunking (the default under a distributed Client) cannot run on other schedulers; a
    # no-op where the load's chunks are the grid's. One task per block stacks the bands (da.stack made one per band
    # and block, then a merge with a copy)
    cols = [da.asarray(ds[b].data).rechunk((1, ychunks, xchunks), method="tasks") for b in bands]
    dtype = np.result_type(*(c.dtype for c in cols))
    x = da.map_blocks(_stack_bands, *cols, new_axis=1, dtype=dtype, meta=np.empty((0, 0, 0, 0), dtype),
                      chunks=(cols[0].chunks[0], (len(bands),), ychunks, xchunks), token="s2sr-bands")
    # each band block's read and its reflectance step fused into one task (192 of 546 tasks fewer on 16 chunks:
    # 17% less scheduler and client CPU, benchmarks/RESULTS.md round 14). Explicitly on: these layers carry no
    # annotations to lose (the SR tasks' GPU resources are added below, after ``disable_fusion_for_resources``)
    with dask.config.set({"optimization.fuse.active": True}):
        (x,) = dask.optimize(x)
    x = _merge_private_inputs(x)
    spec = BlockSpec(scale=scale, factors=factors, halo=spec_halo,
                     quantum=STORE_QUANTUM if quantize else None, detail=True)
    depth = {0: 0, 1: 0, 2: spec_halo, 3: spec_halo}
    # no halo beyond the area's edges: the network runs up to them, and the chunk function mirrors what its
    # consistency layer reads there (``ops.block.block_t``)
    padded = da.overlap.overlap(x, depth=depth, boundary="none")
    out_chunks = (x.chunks[0], (len(bands) + 1,), tuple(c * scale for c in ychunks),
                  tuple(c * scale for c in xchunks))
    if gpu:
        disable_fusion_for_resources()
    threads = None if gpu else task_threads(x.numblocks[0] * len(ychunks) * len(xchunks), _cluster_threads())
    # one SR task per block returns (output, statistics sums): the sums are made on the device, from the same
    # values, in the same task; two light tasks pick the parts (as dask's apply_gufunc does for several outputs)
    with dask.annotate(resources={"GPU": 1}) if gpu else contextlib.nullcontext():
        pair = padded.map_blocks(_sr_pair, predictor, spec, threads, chunks=out_chunks, dtype=np.float32,
                                 meta=np.empty((0, 0, 0, 0), np.float32), name="s2sr-super-resolve")
    # what consumes an SR task's result runs before the next SR task (a higher priority): otherwise a worker
    # went on super-resolving while finished blocks waited for their write, and memory grew with the area
    out_dtype = np.uint16 if quantize else np.float32
    with dask.annotate(priority=DOWNSTREAM_PRIORITY):
        stored = pair.map_blocks(_first, chunks=out_chunks, dtype=out_dtype, meta=np.empty((0, 0, 0, 0), out_dtype),
                                 name="s2sr-sr-output")
        y = stored.map_blocks(decode_dn, spec, dtype=np.float32, meta=np.empty((0, 0, 0, 0), np.float32),
                              name="s2sr-sr-values") if quantize else stored
        nsum = len(COMPARISONS) * (len(bands) + 1) * NSUM
        sums = pair.map_blocks(_second, dtype=np.float64,
                               chunks=(x.chunks[0], (nsum,), (1,) * len(ychunks), (1,) * len(xchunks)),
                               meta=np.empty((0, 0, 0, 0), np.float64), name="s2sr-block-stats")
        layers = [y[:, i] for i in range(len(bands) + 1)]  # the slicing tasks carry the priority too
    fused = None if gpu else FusedSR(padded.name, padded.chunks, padded._meta, predictor, spec, threads)
    _LAYER_SOURCES[tuple(a.name for a in layers)] = (stored.name, stored.chunks, stored._meta, fused)
    while len(_LAYER_SOURCES) > _LAYER_SOURCES_KEPT:
        _LAYER_SOURCES.popitem(last=False)

    res = float(abs(ds.x.values[1] - ds.x.values[0])) if nx > 1 else float(ds.attrs.get("resolution", 1))
    x0 = float(ds.x.values[0]) - res / 2
    y0 = float(ds.y.values[0]) + res / 2
    fine = res / scale
    xs = x0 + fine * (np.arange(nx * scale) + 0.5)
    ys = y0 - fine * (np.arange(ny * scale) + 0.5)
    coords = {"time": ds.time.values, "y": ys, "x": xs}
    out = xr.Dataset(coords=coords)
    for i, b in enumerate(bands):
        out[b] = xr.DataArray(layers[i], dims=("time", "y", "x"),
                              attrs={"long_name": f"Sentinel-2 {b} surface reflectance, super-resolved x{scale}",
                                     "units": "1", FACTOR_ATTR: factors[i]})
    out[DETAIL] = xr.DataArray(layers[len(bands)], dims=("time", "y", "x"), attrs={
        "long_name": "added detail: RMS over bands of output minus consistent bicubic upsampling",
        "units": "1"})
    if COUNT in ds:  # composite: each output pixel carries the count of its input pixel
        cnt = da.asarray(ds[COUNT].data).rechunk((1, ychunks, xchunks)).astype(np.float32)
        out[COUNT] = xr.DataArray(cnt.map_blocks(
            _replicate, scale, dtype=np.float32, chunks=(cnt.chunks[0],) + out_chunks[2:]), dims=("time", "y", "x"),
                                  attrs=dict(ds[COUNT].attrs))
    out[SUMS] = xr.DataArray(sums, dims=("time", "sum", "chunk_y", "chunk_x"),
                             attrs={"description": "per-output-chunk statistics sums, see s2sr_cloud.ops.stats"})
    out[DONE] = xr.DataArray(da.zeros((x.shape[0], len(ychunks), len(xchunks)), dtype=np.uint8, chunks=1),
                             dims=("time", "chunk_y", "chunk_x"),
                             attrs={"description": "1 once every variable of the output chunk is written"})
    crs = ds.rio.crs if ds.rio.crs is not None else None
    if crs is not None:
        out = out.rio.write_crs(crs)
        out = out.rio.write_transform(Affine(fine, 0, x0, 0, -fine, y0))
        for v in out.data_vars:
            if out[v].dims == ("time", "y", "x"):
                out[v].attrs["grid_mapping"] = "spatial_ref"
                # a per-variable "coordinates" attribute is what makes plain xr.open_zarr(url).rio.crs work
                out[v].encoding["coordinates"] = "spatial_ref"
            else:
                out[v].attrs.pop("grid_mapping", None)
    out.attrs.update({
        "scale": scale, "model": predictor.name, "halo": spec_halo, "bands": list(bands),
        "native_factors": list(factors), "input_resolution": res, "resolution": fine,
        "chunk_input": [list(ychunks), list(xchunks)],
        "quantized_to_store": bool(quantize),
        **{k: ds.attrs[k] for k in ("mask", "composite", "composite_items", "composite_dates") if k in ds.attrs},
    })
    return out
