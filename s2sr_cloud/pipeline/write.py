"""Writing a super-resolved dataset into its store: the template, one region-write task per output chunk (skipping
chunks already done), then the statistics and the ``complete`` mark. Resumable and idempotent."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from .._process import release_memory
from ..errors import OutputError, ReadError
from ..io import overviews, store
from ..ops.stats import COMPARISONS, METRICS, NSUM, finalize
from .graph import DOWNSTREAM_PRIORITY, FusedSR, fused_source, layer_source


@dataclass
class WriteReport:
    table: dict[str, Any]
    sam: dict[str, float]
    chunks_total: int
    chunks_computed: int  # chunk tasks run by this call, empty ones included
    chunks_empty: int = 0  # of those, chunks with no valid input pixel: written as fill, never sent to the model
    masked_fraction: float | None = None  # input pixels (all bands) masked or no data, over the whole store
    mask: str = ""  # what was masked, in words


COMPARISON_TEXT = {
    "consistency": "the output averaged over each input pixel's native footprint vs that input pixel",
    "point": "each output pixel vs the input pixel containing it (how much sub-pixel detail was added)",
    "point_bicubic": "the consistent bicubic upsampling (what --model bicubic writes, before uint16 rounding) vs the "
                     "input pixel containing each output pixel: the reference for the point comparison",
}
METRIC_TEXT = {
    "rmse": "root mean square of (output - input)", "bias": "mean of (output - input): positive means the output "
    "is brighter than the input", "mae": "mean absolute (output - input)", "r": "Pearson correlation of output and "
    "input"}
_DEFINITION = ("per band and comparison, over valid pixels only (a pixel masked or without data on either side "
               "is left out; stats_n gives the pixel counts). Metrics: " +
               "; ".join(f"{k}: {v}" for k, v in METRIC_TEXT.items()) + ". Comparisons: " +
               "; ".join(f"{k}: {v}" for k, v in COMPARISON_TEXT.items()) + ". Units: reflectance (1) for rmse, "
               "bias and mae; r is dimensionless.")


def sum_labels(bands: list[str]) -> list[str]:
    """Labels of the ``sum`` axis of ``chunk_sums``: comparison/band/quantity (x = input, y = output)."""
    from ..ops.stats import SUMS as NAMES

    return [f"{c}/{b}/{q}" for c in COMPARISONS for b in [*bands, "SAM"] for q in NAMES]


def compute_statistics(sums: np.ndarray, bands: list[str], *, chunk_y: np.ndarray | None = None,
                       chunk_x: np.ndarray | None = None) -> tuple[xr.Dataset, dict[str, Any], dict[str, float]]:
    """(T, K, ny, nx) block sums -> overall and per-chunk metrics as a Dataset, plus plain dicts for printing.
    ``chunk_y``/``chunk_x``: the chunk centres in the store CRS, which become those axes' coordinates."""
    t, k, ny, nx = sums.shape
    nc = k // ((len(bands) + 1) * NSUM)
    comps = list(COMPARISONS[:nc])
    per_chunk = sums.transpose(0, 2, 3, 1).reshape(t, ny, nx, nc, len(bands) + 1, NSUM)
    overall = per_chunk.sum(axis=(0, 1, 2))
    m_all, sam_all = finalize(overall)
    m_chunk, sam_chunk = finalize(per_chunk)
    coords: dict[str, Any] = {"comparison": comps, "band": bands, "metric": list(METRICS)}
    if k == len(sum_labels(bands)):
        coords["sum"] = ("sum", sum_labels(bands), {"long_name": "what each chunk_sums entry sums: "
                                                    "comparison/band/quantity, x = input, y = output"})
    if chunk_y is not None and len(chunk_y) == ny:
        coords["chunk_y"] = ("chunk_y", np.asarray(chunk_y, np.float64), {
            "long_name": "y of the output chunk's centre", "units": "m", "standard_name": "projection_y_coordinate"})
    if chunk_x is not None and len(chunk_x) == nx:
        coords["chunk_x"] = ("chunk_x", np.asarray(chunk_x, np.float64), {
            "long_name": "x of the output chunk's centre", "units": "m", "standard_name": "projection_x_coordinate"})
    n_idx, inv_idx = 0, NSUM - 1
    n_all = overall[:, :-1, n_idx]
    n_chunk = per_chunk[..., :-1, n_idx]
    invalid = overall[0, :-1, inv_idx]
    invalid_chunk = per_chunk[..., 0, :-1, inv_idx]
    sam_note = "mean spectral angle between output and input spectra, over pixels valid in every band"
    ds = xr.Dataset({
        "stats": (("comparison", "band", "metric"), m_all, {
            "long_name": "spectral consistency statistics per band", "units": "1", "definition": _DEFINITION}),
        "stats_n": (("comparison", "band"), n_all, {
            "long_name": "number of valid pixels each statistic rests on", "units": "1",
            "definition": "consistency: input grid pixels; point comparisons: output pixels"}),
        "sam_deg": (("comparison",), sam_all, {"long_name": "spectral angle (SAM)", "units": "degree",
                                               "definition": sam_note + " (not computed for point_bicubic)"}),
        "invalid_pixels": (("band",), invalid, {
            "long_name": "input grid pixels masked (SCL) or without data, per band", "units": "1"}),
        "chunk_stats": (("time", "chunk_y", "chunk_x", "comparison", "band", "metric"), m_chunk, {
            "long_name": "spectral consistency statistics per band and output chunk", "units": "1",
            "definition": _DEFINITION}),
        "chunk_stats_n": (("time", "chunk_y", "chunk_x", "comparison", "band"), n_chunk, {
            "long_name": "number of valid pixels each chunk statistic rests on", "units": "1"}),
        "chunk_sam_deg": (("time", "chunk_y", "chunk_x", "comparison"), sam_chunk, {
            "long_name": "spectral angle (SAM) per output chunk", "units": "degree", "definition": sam_note}),
        "chunk_invalid_pixels": (("time", "chunk_y", "chunk_x", "band"), invalid_chunk, {
            "long_name": "input grid pixels masked (SCL) or without data, per band and output chunk", "units": "1"}),
    }, coords=coords)
    table = {comp: {b: {m: float(m_all[ci, bi, mi]) for mi, m in enumerate(METRICS)} | {"n": float(n_all[ci, bi])}
                    for bi, b in enumerate(bands)}
             for ci, comp in enumerate(comps)}
    return ds, table, {comp: float(sam_all[ci]) for ci, comp in enumerate(comps)}


def empty_chunks(sums: np.ndarray, n_bands: int) -> np.ndarray:
    """(T, ny, nx) bool: chunks with no valid input pixel (their consistency ``n`` is 0 in every band)."""
    t, k, ny, nx = sums.shape
    per = sums.transpose(0, 2, 3, 1).reshape(t, ny, nx, -1, n_bands + 1, NSUM)
    return per[..., 0, :-1, 0].sum(-1) == 0


def masked_fraction(sums: np.ndarray, n_bands: int, input_pixels: int) -> float:
    """Share of the input pixels (all bands) that were masked or had no data."""
    t, k, ny, nx = sums.shape
    per = sums.transpose(0, 2, 3, 1).reshape(t, ny, nx, -1, n_bands + 1, NSUM)
    return float(per[..., 0, :-1, NSUM - 1].sum() / max(1, input_pixels * n_bands))


def _write_block(*args: Any) -> Any:
    """``store.write_block`` with empty (all fill) chunks written too: ``s2sr verify`` expects every done chunk's
    object (zarr leaves all-fill chunks out by default)."""
    import zarr

    with zarr.config.set({"array.write_empty_chunks": True}):
        out = store.write_block(*args)
    release_memory()  # the encoded copies' pages back to the OS (s2sr_cloud._process)
    return out


TEMPLATE_WAIT_S = 300.0  # how long a write task waits for the client to write the store's template


def _sr_write_block(url: str, opts: dict[str, Any], names: tuple[str, ...], fused: FusedSR, gate: str | None,
                    block: np.ndarray, t: int, i: int, j: int, *args: Any) -> Any:
    """One chunk's SR task and its write in ONE task (``graph.FusedSR``): the finished block goes straight to the
    store, and no worker holds it while it runs its next chunk. ``gate``: the name of the distributed Variable
    through which the client says that the store's template is written (``_run_fused_on_cluster``): the chunk is
    super-resolved meanwhile, and written only after it."""
    y, sums = fused.run(block, t, i, j)
    del block
    if gate is not None:
        _await_template(gate)
    return _write_block(url, opts, names, y, sums, *args)


def _await_template(gate: str) -> None:
    """Block until the client has written the store's template (the Variable ``gate`` says "ok"); raise when it
    failed, or when nothing is said within ``TEMPLATE_WAIT_S`` (the client is gone)."""
    from distributed import Variable

    try:
        state = Variable(gate).get(timeout=TEMPLATE_WAIT_S)
    except TimeoutError:
        state = f"no word from the client in {TEMPLATE_WAIT_S:.0f} s"
    if state != "ok":
        raise OutputError(f"the output store's template was not written ({state}): this chunk was not written; "
                          "re-run the same command")


def _is_read_error(err: BaseException) -> bool:
    text = f"{type(err).__module__}.{type(err).__name__}: {err}"
    return any(tag in text for tag in ("Rasterio", "rasterio", "CPLE_"))


def _read_error(err: BaseException) -> ReadError:
    return ReadError(f"reading an input raster failed ({err.__class__.__name__}: {str(err)[:200]}): "
                     "check that every asset href is readable from the workers; -v names the file")


def _raise_failed(failed: list[tuple[tuple[int, int, int], BaseException]], total: int) -> None:
    if not failed:
        return
    (t, i, j), err = failed[0]
    where = (f"{len(failed)} of {total} chunk(s) failed, first (time {t}, chunk_y {i}, chunk_x {j}); "
             "the other chunks are written and a re-run computes only the missing ones")
    if _is_read_error(err):
        raise ReadError(f"{_read_error(err)} [{where}]")
    raise OutputError(f"{where}: {err.__class__.__name__}: {str(err)[:160]}")


def _run_tasks(tasks: list[Any]) -> None:
    """Compute the chunk tasks on the current dask scheduler (threads unless configured otherwise)."""
    if not tasks:
        return
    try:
        dask.compute(*tasks)
    except Exception as err:  # noqa: BLE001
        raise (_read_error(err) if _is_read_error(err) else err) from None


def _run_on_cluster(client: Any, parts: list[list[Any]], make_writes: Any, before_writes: Any,
                    keys: list[tuple[int, int, int]], progress: bool, retries: int, fused: bool = False) -> None:
    """The chunks on a distributed cluster. ``parts``, per chunk: the delayed blocks its write takes (its output
    block and its statistics sums); ``make_writes(parts, gate)``: the delayed write tasks. ``fused``: the write
    tasks super-resolve their chunk themselves (``_run_fused_on_cluster``). Otherwise the super-resolution of as
    many chunks as the cluster has threads is submitted on its own first, then ``before_writes()`` runs here (the
    store's template: metadata and coordinates, 0.4-1.9 s on the client, while the workers already compute), then
    every write task (those first chunks' from their futures). Only those first chunks can finish before their
    write is submitted. Every chunk that can finish does; failures are reported by chunk afterwards."""
    if fused:
        _run_fused_on_cluster(client, len(parts), make_writes, before_writes, keys, progress, retries)
        return
    head: list[Any] = []
    writes: list[Any] = []
    try:
        n = min(len(parts), sum(client.nthreads().values()) or 1)
        if n:
            flat = client.compute([p for chunk in parts[:n] for p in chunk], retries=retries)
            k = len(parts[0])
            head = [flat[c:c + k] for c in range(0, len(flat), k)]
            del flat  # (``head`` is the only reference: dropped below, so each block is released once written)
        before_writes()
        if not parts:
            return
        writes = client.compute(make_writes(head + parts[n:]), retries=retries)
        head = []  # from here the write tasks alone hold the first chunks' blocks: each is released once written
        _finish_writes(writes, keys, progress)
    except BaseException:  # interrupted, or the template failed: stop the chunks not yet written, keep the done
        client.cancel([f for chunk in head for f in chunk] + writes)
        raise


def _run_fused_on_cluster(client: Any, n: int, make_writes: Any, before_writes: Any,
                          keys: list[tuple[int, int, int]], progress: bool, retries: int) -> None:
    """``_run_on_cluster`` for write tasks that super-resolve their own chunk: every task is submitted at once,
    then ``before_writes()`` (the template) runs here while the workers compute; each task writes its chunk once
    the Variable ``gate`` says the template is there (``_await_template``). Before, the first chunk per worker
    thread was super-resolved on its own meanwhile and the rest submitted after the template: the workers waited
    for it (about 1 s of each worker's 8 s on 16 bicubic chunks, ``benchmarks/run.py``)."""
    from distributed import Variable

    gate = Variable(f"s2sr-template-{uuid.uuid4().hex}", client=client)
    writes: list[Any] = []
    try:
        writes = client.compute(make_writes([None] * n, gate.name), retries=retries)
        try:
            before_writes()
        except BaseException as err:  # kept (not deleted): a task that reaches its write later reads it too
            gate.set(f"{err.__class__.__name__} on the client")
            raise
        gate.set("ok")
        try:
            _finish_writes(writes, keys, progress)
        finally:
            if all(f.done() for f in writes):  # every task is past its write, failed chunks' too (else it stays,
                gate.delete()  # for a task still running when the client was interrupted)
    except BaseException:  # interrupted, or the template failed: stop the chunks not yet written, keep the done
        client.cancel(writes)
        raise


def _finish_writes(writes: list[Any], keys: list[tuple[int, int, int]], progress: bool) -> None:
    """Wait for the write tasks (a progress bar with ``progress``), then report the failed chunks."""
    from distributed import progress as dask_progress
    from distributed import wait

    if progress:
        dask_progress(writes, notebook=False)
        sys.stdout.write("\n")
    wait(writes)
    failed = [(k, f.exception()) for k, f in zip(keys, writes, strict=True) if f.status == "error"]
    _raise_failed(failed, len(writes))


def _check_same_grid(url: str, out: xr.Dataset, attrs: dict[str, Any]) -> None:
    """A store is continued only on the chunk grid it was begun with (``attrs``: the store's): chunks cut
    differently would overlap its written ones and its done marks would name other pixels."""
    def norm(grid: Any) -> list[list[int]] | None:
        return [[int(v) for v in axis] for axis in grid] if grid else None

    recorded, now = norm(attrs.get("chunk_input")), norm(out.attrs.get("chunk_input"))
    if recorded != now:
        def text(g: list[list[int]] | None) -> str:
            return "none" if g is None else f"{len(g[0])} x {len(g[1])} chunks of up to {max(g[0])} px"

        raise OutputError(f"{store.redact_url(url)} was begun on another chunk grid ({text(recorded)}, this run "
                          f"{text(now)}): nothing was written; continue it with the chunk grid it records "
                          "(s2sr run does), or pass --overwrite")


def write_output(out: xr.Dataset, url: str, *, dtype: str = "uint16", attrs: dict[str, Any] | None = None,
                 client: Any = None, progress: bool = False, resume: bool = False, retries: int = 3,
                 before_finish: Any = None, t_offset: int = 0, final_attrs: dict[str, Any] | None = None
                 ) -> WriteReport:
    """Write a ``super_resolve`` result chunk by chunk: the template (marked incomplete) unless resuming, then
    one task per output chunk that region-writes all its variables and its statistics sums and marks it done,
    skipping chunks already done. When all are done: the statistics and the ``complete`` mark.
    ``before_finish()`` runs just before the store is marked complete (the lease check). ``t_offset``: the store
    time step of ``out``'s first one (an append); ``final_attrs`` are set with the ``complete`` mark."""
    bands = list(out.attrs["bands"])
    names = store.layer_names(bands, out)
    if not resume:
        existing = store.inspect_output(url)
        if existing.state is not store.OutputState.ABSENT:
            raise OutputError(f"{store.redact_url(url)} is not empty: nothing was written; choose an absent path")

    stacked = layer_source([out[n].data for n in names])  # the SR output itself, when these are all its layers
    if stacked is not None and stacked.dtype == np.uint16 and dtype != "uint16":
        stacked = None  # DN blocks into a float store: the decoded layers instead
    # the SR output written as it is, by CPU workers: each write task super-resolves its own chunk
    fused = fused_source([out[n].data for n in names]) if stacked is not None else None
    padded = fused.blocks([out[n].data for n in names]).to_delayed(optimize_graph=False) if fused else None
    if stacked is None:
        with dask.annotate(priority=DOWNSTREAM_PRIORITY):  # a finished block is written before the next is made
            stacked = da.stack([out[n].data for n in names], axis=1).rechunk({1: -1}, method="tasks")
    # one graph, not optimised per output: optimising the two separately fused the SR task into each under
    # different keys, so every chunk was super-resolved twice (once for its bands, once for its sums)
    blocks = stacked.to_delayed(optimize_graph=False)
    sums = out[store.SUMS].data.to_delayed(optimize_graph=False)
    ych, xch = stacked.chunks[2], stacked.chunks[3]
    y0s, x0s = np.cumsum((0,) + ych[:-1]), np.cumsum((0,) + xch[:-1])
    n_t = out.sizes["time"]
    # the overview levels each write task makes from its block: a new store's from its grid; a resumed store's as
    # recorded when it was begun (none for a store begun by an older version, or being appended to)
    levels = overviews.block_levels(ych, xch, (*bands, store.DETAIL)) if not resume else None
    if resume:
        recorded = store.read_attrs(url)
        _check_same_grid(url, out, recorded)
        levels = overviews.BlockLevels.from_attrs(recorded.get(overviews.TASKS_ATTR))  # (same grid: same blocks)
        done_all = store.done_mask(url)
        done = done_all[t_offset:t_offset + n_t]
    else:  # a new store: nothing is done (the template is written below, on a cluster while the chunks compute)
        done = np.zeros((n_t, len(ych), len(xch)), bool)
        done_all = done
    keys = [(int(t), int(i), int(j)) for t, i, j in zip(*np.nonzero(~done), strict=True)]
    opts = store.storage_options(url)  # captured here, on the client
    run = uuid.uuid4().hex  # this run's writes: each worker opens the store's arrays once (``store.write_block``)

    def write_key(t: int, i: int, j: int) -> str:
        return f"s2sr-write-{t + t_offset}-{i}-{j}-{tokenize(url)}"

    def template() -> None:
        if not resume:
            store.write_template(out, url, dtype, {**out.attrs, **(attrs or {})}, levels)

    def write_args(t: int, i: int, j: int) -> tuple[Any, ...]:
        return (t + t_offset, i, j, int(y0s[i]), int(x0s[j]), levels, run)

    def make_writes(parts: list[list[Any] | None], gate: str | None = None) -> list[Any]:
        """Per chunk: its block and its sums, or None (the task super-resolves it; ``gate``: _sr_write_block's)."""
        write, sr_write = dask.delayed(_write_block, pure=True), dask.delayed(_sr_write_block, pure=True)
        with dask.annotate(priority=DOWNSTREAM_PRIORITY):  # a finished block is written before the next is made
            return [write(url, opts, names, p[0], p[1], *write_args(t, i, j), dask_key_name=write_key(t, i, j))
                    if p is not None else
                    sr_write(url, opts, names, fused, gate, padded[t, 0, i, j], t, i, j, *write_args(t, i, j),
                             dask_key_name=write_key(t, i, j))
                    for (t, i, j), p in zip(keys, parts, strict=True)]

    parts = [[blocks[t, 0, i, j], sums[t, 0, i, j]] for t, i, j in keys]
    # dask's fusion of delayed graphs (``optimization.fuse.delayed``, off by default) fails on a list of write
    # tasks (TypeError: unhashable type: 'list', in dask's fuse_linear_task_spec): off here, whatever the user set
    with dask.config.set({"optimization.fuse.delayed": False}):
        if client is None:
            template()
            _run_tasks(make_writes([None] * len(parts) if fused else parts))
        else:
            _run_on_cluster(client, parts, make_writes, template, [(t + t_offset, i, j) for t, i, j in keys],
                            progress, retries, fused is not None)
    if not store.done_mask(url).all():
        raise OutputError(f"{store.redact_url(url)}: some chunks are not written; re-run the same command to finish "
                          "them")
    all_sums = store.read_chunk_sums(url, store.SUMS)
    cy = [float(out.y.values[a:a + n].mean()) for a, n in zip(np.cumsum((0,) + ych[:-1]), ych, strict=True)]
    cx = [float(out.x.values[a:a + n].mean()) for a, n in zip(np.cumsum((0,) + xch[:-1]), xch, strict=True)]
    stats_ds, table, sam = compute_statistics(all_sums, bands, chunk_y=np.array(cy), chunk_x=np.array(cx))
    empty = empty_chunks(all_sums, len(bands))
    n_empty = int(sum(empty[t + t_offset, i, j] for t, i, j in keys))
    scale = int(out.attrs.get("scale", 1))
    in_px = int(all_sums.shape[0] * (out.sizes["y"] // scale) * (out.sizes["x"] // scale))
    frac = masked_fraction(all_sums, len(bands), in_px)
    mask = out.attrs.get("mask") or {}
    mask_text = (("scl: classes " + ",".join(map(str, mask.get("classes", [])))) if mask.get("mode") == "scl"
                 else f"none{' (' + mask['note'] + ')' if mask.get('note') else ''}") if mask else ""
    if before_finish is not None:
        before_finish()
    store.finish(url, stats_ds, {"statistics": table, "sam_deg": sam, "masked_fraction": frac,
                                 "chunks_empty": int(empty.sum()), **(final_attrs or {})})
    return WriteReport(table, sam, int(done_all.size), len(keys), n_empty, frac, mask_text)
