"""Writing a super-resolved dataset into its store: the template, one region-write task per output chunk (skipping
chunks already done), then the statistics and the ``complete`` mark. Resumable and idempotent."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from ..errors import OutputError, ReadError
from ..io import store
from ..ops.stats import COMPARISONS, METRICS, NSUM, finalize


@dataclass
class WriteReport:
    table: dict[str, Any]
    sam: dict[str, float]
    chunks_total: int
    chunks_computed: int


def compute_statistics(sums: np.ndarray, bands: list[str]) -> tuple[xr.Dataset, dict[str, Any], dict[str, float]]:
    """(T, K, ny, nx) block sums -> overall and per-chunk metrics as a Dataset, plus plain dicts for printing."""
    t, _, ny, nx = sums.shape
    per_chunk = sums.transpose(0, 2, 3, 1).reshape(t, ny, nx, 2, len(bands) + 1, NSUM)
    overall = per_chunk.sum(axis=(0, 1, 2))
    m_all, sam_all = finalize(overall)
    m_chunk, sam_chunk = finalize(per_chunk)
    coords = {"comparison": list(COMPARISONS), "band": bands, "metric": list(METRICS)}
    ds = xr.Dataset({
        "stats": (("comparison", "band", "metric"), m_all),
        "sam_deg": (("comparison",), sam_all),
        "chunk_stats": (("time", "chunk_y", "chunk_x", "comparison", "band", "metric"), m_chunk),
        "chunk_sam_deg": (("time", "chunk_y", "chunk_x", "comparison"), sam_chunk),
    }, coords=coords)
    table = {comp: {b: {m: float(m_all[ci, bi, mi]) for mi, m in enumerate(METRICS)} for bi, b in enumerate(bands)}
             for ci, comp in enumerate(COMPARISONS)}
    return ds, table, {comp: float(sam_all[ci]) for ci, comp in enumerate(COMPARISONS)}


def _is_read_error(err: BaseException) -> bool:
    text = f"{type(err).__module__}.{type(err).__name__}: {err}"
    return any(tag in text for tag in ("Rasterio", "rasterio", "CPLE_"))


def _read_error(err: BaseException) -> ReadError:
    return ReadError(f"reading an input raster failed ({err.__class__.__name__}: {str(err)[:200]}): "
                     "check that every asset href is readable from the workers; -v names the file")


def _run_tasks(client: Any, tasks: list[Any], keys: list[tuple[int, int, int]], progress: bool,
               retries: int) -> None:
    """Compute the chunk tasks; every chunk that can finish does. Failures are reported by chunk afterwards."""
    if not tasks:
        return
    if client is None:  # the current dask scheduler (threads unless configured otherwise)
        try:
            dask.compute(*tasks)
        except Exception as err:  # noqa: BLE001
            raise (_read_error(err) if _is_read_error(err) else err) from None
        return
    from distributed import progress as dask_progress
    from distributed import wait

    futures = client.compute(tasks, retries=retries)
    try:
        if progress:
            dask_progress(futures, notebook=False)
            sys.stdout.write("\n")
        wait(futures)
    except BaseException:  # interrupted: stop the chunks not yet written, keep the ones done
        client.cancel(futures)
        raise
    failed = [(k, f.exception()) for k, f in zip(keys, futures, strict=True) if f.status == "error"]
    if failed:
        (t, i, j), err = failed[0]
        where = (f"{len(failed)} of {len(tasks)} chunk(s) failed, first (time {t}, chunk_y {i}, chunk_x {j}); "
                 "the other chunks are written and a re-run computes only the missing ones")
        if _is_read_error(err):
            raise ReadError(f"{_read_error(err)} [{where}]")
        raise OutputError(f"{where}: {err.__class__.__name__}: {str(err)[:160]}")


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
    names = (*bands, store.DETAIL)
    if not resume:
        existing = store.inspect_output(url)
        if existing.state is not store.OutputState.ABSENT:
            raise OutputError(f"{store.redact_url(url)} is not empty: nothing was written; choose an absent path")
        store.write_template(out, url, dtype, {**out.attrs, **(attrs or {})})
    done_all = store.done_mask(url)
    done = done_all[t_offset:t_offset + out.sizes["time"]]
    stacked = da.stack([out[n].data for n in names], axis=1).rechunk({1: -1}, method="tasks")
    blocks, sums = stacked.to_delayed(), out[store.SUMS].data.to_delayed()
    ych, xch = stacked.chunks[2], stacked.chunks[3]
    y0s, x0s = np.cumsum((0,) + ych[:-1]), np.cumsum((0,) + xch[:-1])
    keys = [(int(t), int(i), int(j)) for t, i, j in zip(*np.nonzero(~done), strict=True)]
    opts = store.storage_options(url)  # captured here, on the client
    write = dask.delayed(store.write_block, pure=True)
    tasks = [write(url, opts, names, blocks[t, 0, i, j], sums[t, 0, i, j], t + t_offset, i, j, int(y0s[i]),
                   int(x0s[j]), dask_key_name=f"s2sr-write-{t + t_offset}-{i}-{j}-{tokenize(url)}")
             for t, i, j in keys]
    _run_tasks(client, tasks, [(t + t_offset, i, j) for t, i, j in keys], progress, retries)
    if not store.done_mask(url).all():
        raise OutputError(f"{store.redact_url(url)}: some chunks are not written; re-run the same command to finish "
                          "them")
    stats_ds, table, sam = compute_statistics(store.read_chunk_sums(url, store.SUMS), bands)
    if before_finish is not None:
        before_finish()
    store.finish(url, stats_ds, {"statistics": table, "sam_deg": sam, **(final_attrs or {})})
    return WriteReport(table, sam, int(done_all.size), len(keys))
