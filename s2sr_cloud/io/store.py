"""Zarr output (format 3 by default, format 2 on request) on any fsspec URL: local paths, s3:// (s3fs), gs://.

Format 2 (``--zarr-format 2``) is what GDAL 3.4-3.10 and QGIS read; it keeps every guarantee below: the ownership
marker and status live in the root ``.zattrs``, and each chunk is zstd with the frame's content checksum (XXH64,
verified by every zstd decoder, GDAL's included) in place of the format-3 CRC32C codec.

A store is written as a template first (metadata, ``s2sr_status = "incomplete"``), then filled chunk by chunk, and
only marked ``complete`` after every chunk and the statistics are in. ``open_output`` refuses incomplete stores, so
an interrupted run is never presented as a valid product.

Ownership: a store this tool made carries ``s2sr_cloud_store`` in its root attributes. ``inspect_output`` tells
such a store from an absent or empty path and from anything else (a file, a folder or prefix with other data, a
foreign or damaged Zarr); the pipeline writes only into the first two and replaces only ours.

Integrity: every chunk of every array ends with a CRC32C (format 3, the Zarr v3 ``crc32c`` codec, checked on every
read; format 2: a zstd content checksum);
each output chunk also records a CRC32 of its encoded bytes (``chunk_crc``), which catches a chunk copied over
another; the Zarr ``fill_value`` equals the CF ``_FillValue``, so a missing chunk reads as NaN, never as data.
"""

from __future__ import annotations

import enum
import json
import os
import threading
import warnings
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
import xarray as xr

from ..errors import OutputError

if TYPE_CHECKING:
    from .overviews import BlockLevels

STATUS = "s2sr_status"
MARKER = "s2sr_cloud_store"  # root attribute of every store this tool made (value: layout version)
LAYOUT = 2
FILL_DN = 65535
DETAIL = "detail"  # the added-detail layer
COUNT = "obs_count"  # composites: dates that fed each pixel (uint16 counts, no scale)
SUMS = "chunk_sums"  # per-output-chunk statistics sums
ZARR_FORMAT = 3  # default; 2 for GDAL <= 3.10 / QGIS (``--zarr-format 2``)
OVERVIEWS = "overviews"  # group of the multiscale levels (``io/overviews.py``)
STORE_QUANTUM = (1e-4, -0.1)  # uint16 DN = (reflectance + 0.1) / 1e-4: covers -0.1 ... 6.55, exact for S2 DN


def storage_options(url: str) -> dict[str, Any]:
    """Credentials come from the environment/profile (never from our config). ``S2SR_S3_ENDPOINT`` or
    ``AWS_ENDPOINT_URL`` point s3:// at another S3-compatible service."""
    if not url.startswith("s3://"):
        return {}
    # s3fs reads a whole object with one GET; with its default max_concurrency (10) it first asks the object's size
    # (a HEAD) in case the object is over 50 MiB, to fetch it in parallel ranges. Those HEADs were 32% of a job's S3
    # requests (benchmarks/s3_requests.py); a store's objects are metadata documents and chunks (one band of a x4
    # default chunk: 20 MB of uint16 before compression). The other effect: an object over 100 MiB (a float32 x10
    # chunk can be) is uploaded in 50 MiB parts one at a time, beside the chunk's other arrays (docs/design.md, 43).
    opts: dict[str, Any] = {"max_concurrency": 1}
    endpoint = os.environ.get("S2SR_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        opts["client_kwargs"] = {"endpoint_url": endpoint}
    # captured on the client so workers without the environment (a remote scheduler's) can write too;
    # the options travel inside the task graph only, never into logs, attrs or the store
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        opts["key"] = os.environ["AWS_ACCESS_KEY_ID"]
        opts["secret"] = os.environ["AWS_SECRET_ACCESS_KEY"]
        if os.environ.get("AWS_SESSION_TOKEN"):
            opts["token"] = os.environ["AWS_SESSION_TOKEN"]
    elif os.environ.get("AWS_PROFILE"):
        opts["profile"] = os.environ["AWS_PROFILE"]
    return opts


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    try:
        fs, path = fsspec.core.url_to_fs(url, **storage_options(url))
    except (ValueError, ImportError) as err:
        raise OutputError(f"--out {url}: not a writable location ({err}): use a local path or s3://bucket/key.zarr"
                          ) from None
    return fs, path


def is_s3(fs: fsspec.AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return any(p in ("s3", "s3a") for p in protocol)


class OutputState(enum.Enum):
    ABSENT = "absent"  # nothing there (or an empty folder): a new store may be created
    OURS = "ours"  # a store this tool made: resumed, kept, or replaced with --overwrite
    FOREIGN = "foreign"  # anything else: never written to, never deleted


@dataclass(frozen=True)
class Existing:
    state: OutputState
    what: str = ""  # for FOREIGN: what is there, in words
    attrs: dict[str, Any] | None = None  # for OURS: the root attributes

    @property
    def complete(self) -> bool:
        return self.state is OutputState.OURS and (self.attrs or {}).get(STATUS) == "complete"


def _describe(fs: fsspec.AbstractFileSystem, path: str, entries: list[str]) -> str:
    names = sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)
    shown = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
    return f"a folder with {len(names)} entr{'y' if len(names) == 1 else 'ies'} ({shown}) not made by s2sr-cloud"


def inspect_output(url: str) -> Existing:
    """What is at ``url``: nothing, one of our stores (with its attributes), or something else (described)."""
    fs, path = filesystem(url)
    path = path.rstrip("/")
    try:
        if not path or (is_s3(fs) and "/" not in path):
            return Existing(OutputState.FOREIGN, "a bucket root, not a store path: add a key, e.g. s3://bucket/x.zarr")
        if not fs.exists(path):
            return Existing(OutputState.ABSENT)
        if fs.isfile(path):
            return Existing(OutputState.FOREIGN, "a file")
        entries = fs.ls(path, detail=False)
        entries = [e for e in entries if e.rstrip("/") != path]
        if not entries:
            return Existing(OutputState.ABSENT)
        meta_name = next((m for m in ("zarr.json", ".zattrs") if fs.exists(f"{path}/{m}")), None)
        if meta_name is None:
            return Existing(OutputState.FOREIGN, _describe(fs, path, entries))
        try:
            meta = json.loads(fs.cat_file(f"{path}/{meta_name}"))
        except ValueError:
            return Existing(OutputState.FOREIGN, f"a Zarr store whose {meta_name} cannot be parsed (damaged or "
                            "truncated); if it is an s2sr-cloud output, delete it yourself")
        attrs = dict(meta.get("attributes", {}) if meta_name == "zarr.json" else meta)
    except OutputError:
        raise
    except Exception as err:  # noqa: BLE001 - permissions, missing bucket, network: all mean "cannot use this"
        raise OutputError(f"cannot inspect the output {redact_url(url)} ({err.__class__.__name__}: "
                          f"{str(err)[:120]}): check the path, the bucket and the credentials") from None
    if attrs.get(MARKER) or str(attrs.get("software", "")).startswith("s2sr-cloud"):
        return Existing(OutputState.OURS, attrs=attrs)
    return Existing(OutputState.FOREIGN, "a Zarr store not made by s2sr-cloud")


def remove_store(url: str) -> None:
    """Delete a store, but only one this tool made."""
    if inspect_output(url).state is not OutputState.OURS:
        raise OutputError(f"refusing to delete {redact_url(url)}: it is not an s2sr-cloud store")
    fs, path = filesystem(url)
    fs.rm(path.rstrip("/"), recursive=True)


def staging_url(url: str) -> str:
    """Where a replacement (``--overwrite``) is built, beside the store it replaces."""
    return url.rstrip("/") + ".s2sr-new"


def promote(staging: str, url: str) -> None:
    """Swap a complete staged store into ``url``, replacing our previous store there.

    Local: two renames (old -> ``url.s2sr-old``, staged -> ``url``), then the old one is deleted; a crash between
    them leaves both stores on disk under those names. S3 has no rename: the old store is first marked
    ``replacing`` (readers refuse it), the staged objects are copied over it server-side, stale objects removed,
    the root ``zarr.json`` (``complete``) copied last, then the staging prefix deleted. Until that last step the
    complete staged store stays readable at ``staging``, so the user never has neither; re-running the same
    command finishes an interrupted swap."""
    fs, path = filesystem(url)
    _, spath = filesystem(staging)
    path, spath = path.rstrip("/"), spath.rstrip("/")
    existing = inspect_output(url)
    if existing.state is OutputState.FOREIGN:
        raise OutputError(f"cannot replace {redact_url(url)}: it holds {existing.what}")
    if not is_s3(fs):
        old = path + ".s2sr-old"
        if existing.state is OutputState.OURS:
            if fs.exists(old):
                fs.rm(old, recursive=True)
            os.rename(path, old)
        elif fs.exists(path):  # an empty folder
            os.rmdir(path)
        os.rename(spath, path)
        if fs.exists(old):
            fs.rm(old, recursive=True)
        return
    if existing.state is OutputState.OURS:
        set_status(url, "replacing")
    fs.invalidate_cache()
    new = {k[len(spath):] for k in fs.find(spath)}
    roots = [r for r in ("/.zgroup", "/.zmetadata", "/zarr.json", "/.zattrs") if r in new]  # marker-bearing last
    for rel in sorted(new - set(roots)):
        fs.copy(spath + rel, path + rel)
    fs.invalidate_cache()  # list what is there now, not what an earlier call cached
    for key in fs.find(path):
        if key[len(path):] not in new:
            fs.rm(key)
    for rel in roots:
        fs.copy(spath + rel, path + rel)
    fs.rm(spath, recursive=True)


def set_status(url: str, status: str) -> None:
    g = _group(url, "r+")
    g.attrs.put(dict(g.attrs) | {STATUS: status})
    if status != "complete":
        unconsolidate(url)


def _read_or_none(fs: fsspec.AbstractFileSystem, key: str) -> bytes | None:
    """One GET, no listing (a listing would be cached by s3fs and hide later changes from ``find``)."""
    try:
        return bytes(fs.cat_file(key))
    except FileNotFoundError:
        return None


def zarr_format_of(url: str) -> int:
    fs, path = filesystem(url)
    return 3 if _read_or_none(fs, path.rstrip("/") + "/zarr.json") is not None else 2


def unconsolidate(url: str) -> None:
    """Drop the consolidated metadata: it is written only when a store is complete (``consolidate``), and a store
    being changed (resumed, repaired, appended to) must not present a stale copy of its metadata to readers."""
    fs, path = filesystem(url)
    path = path.rstrip("/")
    if _read_or_none(fs, path + "/.zmetadata") is not None:
        fs.rm(path + "/.zmetadata")
    raw = _read_or_none(fs, path + "/zarr.json")
    if raw is not None:
        meta = json.loads(raw)
        if meta.pop("consolidated_metadata", None) is not None:
            fs.pipe_file(path + "/zarr.json", json.dumps(meta, indent=2).encode())
    fs.invalidate_cache(path)


def _member_order(bands: list[str]) -> Any:
    def key(name: str) -> tuple[int, int, str]:
        top = name.split("/")[0]
        if top in bands:
            return (0, bands.index(top), name)
        return (1 if top == DETAIL else 3 if top == OVERVIEWS else 2, 0, name)
    return key


def consolidate(url: str) -> None:
    """Write consolidated metadata (``xr.open_zarr(url)`` then opens without a warning and, on S3, in one metadata
    read), listing the bands first in band order (B01 ... B8A ... B12), then ``detail``, then the rest: xarray
    returns the variables in that order. Last step of a run, after the ``complete`` mark."""
    import zarr

    fmt = zarr_format_of(url)
    opts = storage_options(url) or None
    with warnings.catch_warnings():  # format 3: "consolidated metadata is not part of the specification"
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(_store(url, opts), zarr_format=fmt)
    fs, path = filesystem(url)
    name = path.rstrip("/") + ("/zarr.json" if fmt == 3 else "/.zmetadata")
    meta = json.loads(fs.cat_file(name))
    holder = meta["consolidated_metadata"] if fmt == 3 else meta
    bands = list(read_attrs(url).get("bands", []))
    holder["metadata"] = {k: holder["metadata"][k] for k in sorted(holder["metadata"], key=_member_order(bands))}
    fs.pipe_file(name, json.dumps(meta, indent=2).encode())


def _store(url: str, opts: dict[str, Any] | None) -> Any:
    import zarr

    if opts or "://" in url:
        return zarr.storage.FsspecStore.from_url(url, storage_options=opts, read_only=False)
    return zarr.storage.LocalStore(url)


def redact_url(url: str) -> str:
    from ..config import redact_url as _redact

    return _redact(url)


def encoding_for(ds: xr.Dataset, dtype: str) -> dict[str, dict[str, Any]]:
    """uint16 DN with CF scale_factor/add_offset by default (storage is the cost at x10); float32 on request."""
    enc: dict[str, dict[str, Any]] = {}
    for name, var in ds.data_vars.items():
        if var.dims != ("time", "y", "x"):
            continue
        chunks = tuple(c[0] for c in var.chunks) if var.chunks else None
        if name == COUNT:
            enc[name] = {"dtype": "uint16", "_FillValue": FILL_DN, "fill_value": FILL_DN}
        elif dtype == "uint16":
            sf, off = STORE_QUANTUM
            # float32 scale/offset: CF decodes to the scale's type, and float32 keeps 1e-8 reflectance precision
            enc[name] = {"dtype": "uint16", "scale_factor": np.float32(sf),
                         "add_offset": np.float32(0.0 if name == DETAIL else off),
                         "_FillValue": FILL_DN, "fill_value": FILL_DN}
        else:
            enc[name] = {"dtype": "float32", "_FillValue": np.float32(np.nan), "fill_value": np.float32(np.nan)}
        if chunks:
            enc[name]["chunks"] = chunks
    return enc


def _checksummed(enc: dict[str, dict[str, Any]], ds: xr.Dataset, zarr_format: int = ZARR_FORMAT
                 ) -> dict[str, dict[str, Any]]:
    """Every array (coordinates included) gets a checksum that fails the read of a flipped byte: zstd + a trailing
    CRC32C codec in format 3; in format 2 (one compressor, and GDAL must decode it) zstd with the frame's content
    checksum, which every zstd decoder verifies."""
    for name in (*ds.data_vars, *ds.coords):
        if ds[name].dtype.kind in "OUS":
            continue
        enc.setdefault(str(name), {})["compressors"] = compressors(zarr_format)
    return enc


def compressors(zarr_format: int) -> list[Any]:
    if zarr_format == 2:
        from numcodecs import Zstd

        return [Zstd(level=3, checksum=True)]
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return [ZstdCodec(), Crc32cCodec()]


CF_COORDS = {
    "x": {"standard_name": "projection_x_coordinate", "long_name": "x coordinate of projection (pixel centre)",
          "units": "m", "axis": "X"},
    "y": {"standard_name": "projection_y_coordinate", "long_name": "y coordinate of projection (pixel centre)",
          "units": "m", "axis": "Y"},
    "time": {"standard_name": "time", "long_name": "acquisition time (solar day)", "axis": "T"},
}


def cf_coords(ds: xr.Dataset) -> xr.Dataset:
    """CF attributes on x, y, time (cf_xarray and GDAL find the axes); time's units come from its encoding."""
    for name, attrs in CF_COORDS.items():
        if name in ds.coords:
            ds[name].attrs.update(attrs)
    return ds


def _crs_attrs(ds: xr.Dataset) -> dict[str, Any]:
    """GDAL's Zarr driver reads a band's CRS from ``_CRS`` (it does not follow CF grid_mapping)."""
    try:
        crs = ds.rio.crs
    except Exception:  # noqa: BLE001
        crs = None
    if crs is None:
        return {}
    out: dict[str, Any] = {"wkt": crs.to_wkt()}
    if crs.to_epsg():
        out["url"] = f"http://www.opengis.net/def/crs/EPSG/0/{crs.to_epsg()}"
    return {"_CRS": out}


def _bookkeeping(ds: xr.Dataset) -> xr.Dataset:
    """The resume and integrity arrays, one cell per output chunk: ``chunk_done`` and ``chunk_crc``."""
    import dask.array as da

    t, _, ny, nx = ds[SUMS].shape
    dims = ("time", "chunk_y", "chunk_x")
    ds = ds.drop_vars([v for v in (DONE, CRC) if v in ds])
    ds[DONE] = xr.DataArray(da.zeros((t, ny, nx), dtype=np.uint8, chunks=1), dims=dims, attrs={
        "long_name": "1 once every variable of this output chunk is written"})
    ds[CRC] = xr.DataArray(da.zeros((t, ny, nx), dtype=np.uint32, chunks=1), dims=dims, attrs={
        "long_name": "CRC32 of the chunk's encoded bytes (all variables in store order), checked by s2sr verify"})
    return ds


def write_template(ds: xr.Dataset, url: str, dtype: str, attrs: dict[str, Any], levels: BlockLevels | None = None
                   ) -> None:
    """Create the store: metadata, coordinates and empty arrays. The data is written by ``write_block`` tasks,
    so xarray's own delayed writer is discarded. ``url`` must be absent or empty (``inspect_output``).
    ``levels``: the overview levels those tasks make (recorded in the attributes until the finish)."""
    from .overviews import TASKS_ATTR, create_levels

    fmt = int(attrs.get("zarr_format") or ZARR_FORMAT)
    ds = cf_coords(_bookkeeping(ds.copy()))
    crs = _crs_attrs(ds)
    for name, var in ds.data_vars.items():
        if var.dims == ("time", "y", "x"):
            var.attrs.update(crs)
    ds.attrs.update({k: _jsonable(v) for k, v in attrs.items()})
    ds.attrs["zarr_format"] = fmt
    ds.attrs[STATUS] = "incomplete"
    ds.attrs[MARKER] = LAYOUT
    if levels is not None:
        ds.attrs[TASKS_ATTR] = levels.to_attrs()
    enc = encoding_for(ds, dtype)
    if fmt == 2:  # xarray sets a format-2 array's fill_value from _FillValue (and refuses both)
        for e in enc.values():
            e.pop("fill_value", None)
    enc = _checksummed(enc, ds, fmt)
    ds = _metadata_only(ds, enc)
    try:
        ds.to_zarr(url, mode="w-", compute=False, consolidated=False, zarr_format=fmt, encoding=enc,
                   storage_options=storage_options(url) or None)
        create_levels(url, [*ds.attrs.get("bands", []), DETAIL], fmt, levels)  # empty: filled by the tasks, finish()
    except Exception as err:  # noqa: BLE001
        raise OutputError(f"cannot create the output store {redact_url(url)} ({err.__class__.__name__}: "
                          f"{str(err)[:160]}): check that the location is writable") from None


def _metadata_only(ds: xr.Dataset, enc: dict[str, dict[str, Any]]) -> xr.Dataset:
    """``ds`` with each dask variable's data replaced by one graph-less chunk of its shape and dtype, its store
    chunks kept in ``enc`` (xarray's default: each axis's first dask chunk). ``to_zarr(compute=False)`` writes only
    metadata and coordinates for dask variables, but it encodes each (scaling, fill) and builds a store task per
    chunk over the SR graph, only to have them discarded: the template of a 16-chunk job took 0.57-0.94 CPU-s of
    the client, now 0.38-0.47, on the cores the workers compute on (and it grew with the chunk count)."""
    import dask.array as da

    data = {}
    for name, var in ds.data_vars.items():
        data[name] = var.data
        if isinstance(var.data, da.Array):
            enc.setdefault(str(name), {}).setdefault("chunks", tuple(int(c[0]) for c in var.data.chunks))
            data[name] = da.empty(var.shape, dtype=var.dtype, chunks=var.shape, name=f"s2sr-template-{name}")
    return ds.copy(data=data)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def finish(url: str, extra: xr.Dataset, attrs: dict[str, Any]) -> None:
    """Add the statistics variables and mark the store complete (last write of a run). An attribute given as None
    is removed."""
    from .overviews import TASKS_ATTR, write_overviews

    opts = storage_options(url) or None
    fmt = zarr_format_of(url)
    group = _group(url, "r+")
    kept = dict(group.attrs)  # to_zarr(mode="a") replaces the group's attributes with the appended dataset's
    for name in extra.data_vars:  # recomputed over every time step (an append grows them)
        if name in group:
            del group[name]
    extra = extra.assign_coords({k: extra[k].astype(object) for k in extra.coords if extra[k].dtype.kind == "U"})
    extra.attrs = kept
    enc = {k: v for k, v in _checksummed({}, extra, fmt).items() if k not in group}  # (existing coords: kept)
    extra.to_zarr(url, mode="a", consolidated=False, zarr_format=fmt, storage_options=opts, encoding=enc)
    # the multiscale levels: a cheap reduction of the complete bands, rebuilt by every run that changed them
    levels = write_overviews(url, [*kept.get("bands", []), DETAIL], fmt)  # reads TASKS_ATTR, still in the store
    kept.pop(TASKS_ATTR, None)  # a complete store has none
    group = _group(url, "r+")
    merged = kept | {k: _jsonable(v) for k, v in attrs.items()} | {STATUS: "complete"} | levels
    group.attrs.put({k: v for k, v in merged.items() if not (k in attrs and attrs[k] is None)})  # None: remove
    consolidate(url)


STATS_VARS = ("stats", "sam_deg", "chunk_stats", "chunk_sam_deg")


def begin_append(url: str, ds: xr.Dataset, attrs: dict[str, Any]) -> None:
    """Grow a store along time for the new time steps of ``ds`` (metadata only; the chunks are written by
    ``write_block`` tasks). First the store is marked incomplete with ``attrs`` (which name the pending scenes), so
    an interruption at any point is resumed by re-running the command. Existing chunks are not touched."""
    g = _group(url, "r+")
    kept = dict(g.attrs) | {k: _jsonable(v) for k, v in attrs.items()} | {STATUS: "incomplete"}
    g.attrs.put(kept)
    unconsolidate(url)
    fmt = zarr_format_of(url)
    ds = _bookkeeping(ds)
    tvars = [v for v in ds.data_vars if "time" in ds[v].dims]
    g = _group(url, "r+")
    for name in list(g.array_keys()):  # statistics with a time axis: finish() recomputes them over every step
        arr = g[name]
        dims = getattr(arr.metadata, "dimension_names", None) or arr.attrs.get("_ARRAY_DIMENSIONS") or ()
        if name in STATS_VARS or ("time" in dims and name != "time" and name not in tvars):
            del g[name]
    new = ds[tvars]
    new = new.drop_vars([c for c in new.coords if "time" not in new[c].dims])
    for v in new.data_vars:
        new[v].encoding.pop("coordinates", None)
        new[v].attrs.pop("grid_mapping", None)
    new.attrs = kept  # to_zarr(mode="a") writes the dataset's attributes onto the group
    try:
        new.to_zarr(url, append_dim="time", compute=False, consolidated=False, zarr_format=fmt,
                    storage_options=storage_options(url) or None)
    except Exception as err:  # noqa: BLE001
        raise OutputError(f"cannot grow {redact_url(url)} along time ({err.__class__.__name__}: {str(err)[:160]}): "
                          "re-run the command; s2sr verify checks the store") from None
    _group(url, "r+").attrs.put(kept)


def read_times(url: str) -> np.ndarray:
    ds = xr.open_zarr(url, consolidated=False, storage_options=storage_options(url) or None)
    return ds["time"].values


def open_output(url: str) -> xr.Dataset:
    """Open a run's output lazily. Refuses what is not an s2sr-cloud store, a store whose run did not finish, and
    one whose bookkeeping disagrees (a chunk not marked done). Checksums are checked as chunks are read;
    ``s2sr verify`` reads everything."""
    existing = inspect_output(url)
    if existing.state is not OutputState.OURS:
        raise OutputError(f"{redact_url(url)} is not an s2sr-cloud store"
                          f"{f' (it is {existing.what})' if existing.what else ''}: check the path")
    if not existing.complete:
        raise OutputError(f"{redact_url(url)} is incomplete (its run did not finish, or s2sr verify --repair marked "
                          "chunks for recomputing): re-run the job to complete it")
    try:
        ds = xr.open_zarr(url, consolidated=False, storage_options=storage_options(url) or None,
                          decode_coords="all")
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise OutputError(f"{redact_url(url)} cannot be opened ({err.__class__.__name__}): run s2sr verify on it"
                          ) from None
    if DONE in ds and not bool(ds[DONE].values.all()):
        raise OutputError(f"{redact_url(url)} is marked complete but some chunks are not done: run s2sr verify")
    # xarray decodes packed data to the type of scale_factor, and JSON attributes come back as float64: the DN
    # grid (1e-4) needs only float32
    for name, var in ds.data_vars.items():
        if var.dims == ("time", "y", "x") and var.dtype == np.float64 and "scale_factor" in var.encoding:
            as32 = var.astype(np.float32)
            as32.encoding = dict(var.encoding)  # (how it is stored: uint16, scale, offset, fill)
            ds[name] = as32
    return ds


def read_chunk_sums(url: str, name: str) -> np.ndarray:
    """The float64 array ``name`` as stored (no data: NaN, its fill value), read with zarr alone: opening the whole
    store with xarray for it took 0.26 s of the finish on a 960 px store, the read itself 5 ms."""
    return np.asarray(_group(url, "r")[name][...])


def store_size(url: str) -> int:
    fs, path = filesystem(url)
    try:
        return int(fs.du(path))
    except Exception:  # noqa: BLE001
        return 0


# ---- resumable, chunk-level writing -------------------------------------------------------------------------
DONE = "chunk_done"  # (time, chunk_y, chunk_x) uint8: 1 once every variable of that output chunk is written
CRC = "chunk_crc"  # (time, chunk_y, chunk_x) uint32: CRC32 of the chunk's encoded bytes


def _group(url: str, mode: str = "r+", opts: dict[str, Any] | None = None) -> Any:
    import zarr

    opts = storage_options(url) if opts is None else opts
    # format 3 or 2, whichever the store is; consolidated metadata is never used for reading our own bookkeeping
    return zarr.open_group(url, mode=mode, storage_options=opts or None, use_consolidated=False)


ENCODE_BYTES = 2**24


def _encode(arr: Any, values: np.ndarray) -> np.ndarray:
    """CF-encode ``values`` for zarr array ``arr`` (an ``Array`` or an ``AsyncArray``) exactly as xarray would
    (round, fill NaN). uint16 ``values`` are DN already encoded so (the chunk function's output when quantised,
    ``ops.block.BlockSpec.quanta``): as they are."""
    attrs = arr.attrs
    is_uint = np.dtype(arr.dtype).kind == "u"
    if not is_uint and values.dtype != np.uint16:
        return values.astype(arr.dtype)
    # format 3 keeps the CF _FillValue as an attribute; format 2 only as the array's fill_value (equal by design)
    fill = (int(attrs["_FillValue"]) if "_FillValue" in attrs else int(arr.metadata.fill_value)) if is_uint else None
    if values.dtype == np.uint16:
        if np.dtype(arr.dtype) != np.uint16 or fill != FILL_DN:
            raise OutputError(f"uint16 DN cannot go into the {arr.dtype} array {arr.name} (fill {fill}): this "
                              "chunk is not written; write a quantised output to a uint16 store")
        return values
    sf, off = float(attrs.get("scale_factor", 1)), float(attrs.get("add_offset", 0))
    out = np.empty(values.shape, arr.dtype)
    rows = max(1, ENCODE_BYTES // (8 * max(1, values[..., 0, :].size)))  # float64 temporaries of ~16 MB, not the
    for r in range(0, values.shape[-2], rows):                          # whole chunk's (4 x 90 MB per thread)
        v = values[..., r:r + rows, :]
        with np.errstate(invalid="ignore"):
            dn = np.clip(np.around((v.astype(np.float64) - off) / sf), 0, fill - 1)
        out[..., r:r + rows, :] = np.where(np.isnan(v), fill, dn)
    return out


def layer_names(bands: list[str] | tuple[str, ...], has: Any) -> tuple[str, ...]:
    """The per-pixel arrays of an output in their write (and chunk_crc) order: the bands, the detail layer, and the
    composite's obs_count when ``COUNT in has`` (a dataset or a zarr group)."""
    return (*bands, DETAIL, *((COUNT,) if COUNT in has else ()))


def write_threads() -> int:
    """``S2SR_WRITE_THREADS`` (default: this machine's cores, at most 4): variables a chunk write encodes and
    compresses at once. One thread took 6.7-6.9 s for a 3360 px x4 chunk (13 variables) on a 2-core VM, two
    3.6-4.1 s; on a GPU worker the writes are most of the run (benchmarks/RESULTS.md)."""
    from ..config import env_number

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return int(env_number("S2SR_WRITE_THREADS", min(4, cores), int))


def write_block(url: str, opts: dict[str, Any], names: tuple[str, ...], block: np.ndarray, sums: np.ndarray,
                t: int, ci: int, cj: int, y0: int, x0: int, levels: BlockLevels | None = None,
                run: str | None = None) -> tuple[int, int, int]:
    """Region-write one output chunk (all band variables, detail, its statistics sums, and the overview levels
    ``levels`` names), then mark it done. Runs on a worker with the storage options captured on the client (the
    worker may have no credentials in its environment); idempotent, so a chunk interrupted half-way is simply
    written again.

    The arrays are opened together, and each group of ``write_threads()`` variables is written in two round trips
    to zarr's event loop, its full resolution then its levels: opening and writing the 55 arrays of a 480 px x4
    chunk one by one, from the write threads, took 160-220 ms and 200-230 ms of CPU per chunk on a 2-core VM
    (benchmarks/RESULTS.md, round 15). At most ``write_threads()`` variables' encoded copies are held at once, as
    before; their levels are made after the full resolution's write (with them in the same round trip, a worker
    at the x10 default chunk peaked 0.18 GiB higher).

    ``run``: a key unique to one run's writes into one store (``pipeline.write.write_output``): the arrays are then
    opened once per worker process and run (``_run_arrays``), not once per chunk (55 metadata reads, so 55 GETs
    on S3, per chunk of a x4 store with levels)."""
    from concurrent.futures import ThreadPoolExecutor

    from .overviews import block_level_writes, level_paths, stored_fill

    h, w = block.shape[-2:]
    leveled = set(levels.names) if levels is not None else set()
    paths = [*names, *(p for n in names if n in leveled for p in level_paths(n, levels)), SUMS, DONE]
    arrays = _run_arrays(url, opts, paths, (CRC,), run) if run else _open_arrays(url, opts, paths, optional=(CRC,))

    def encode(c: int) -> np.ndarray:  # numpy releases the GIL
        return _encode(arrays[names[c]], block[0, c])

    def level_writes(c: int, encoded: np.ndarray) -> list[tuple[str, tuple, np.ndarray]]:
        if names[c] not in leveled:
            return []
        return block_level_writes(names[c], encoded, stored_fill(arrays[names[c]]), t, y0, x0, levels)

    crc, k = 0, write_threads()
    with ThreadPoolExecutor(k) as pool:
        for start in range(0, len(names), k):  # k variables at a time: at most k encoded copies held
            group = range(start, min(start + k, len(names)))
            encoded = list(pool.map(encode, group))
            for e in encoded:
                crc = zlib.crc32(np.ascontiguousarray(e), crc)  # in name order, as before
            _set_regions(arrays, [(names[c], (t, slice(y0, y0 + h), slice(x0, x0 + w)), e)
                                  for c, e in zip(group, encoded, strict=True)])
            # then their levels: made and written after the full resolution's write has let go of its buffers
            _set_regions(arrays, [one for ws in pool.map(level_writes, group, encoded) for one in ws])
            del encoded
    _set_regions(arrays, [(SUMS, (t, slice(None), ci, cj), sums[0, :, 0, 0])]
                 + ([(CRC, (t, ci, cj), np.uint32(crc))] if arrays.get(CRC) is not None else []))
    _set_regions(arrays, [(DONE, (t, ci, cj), np.uint8(1))])  # last: only a fully written chunk counts as done
    return t, ci, cj


def _open_arrays(url: str, opts: dict[str, Any] | None, paths: list[str], optional: tuple[str, ...] = ()
                 ) -> dict[str, Any]:
    """The zarr arrays ``paths`` of the store at ``url`` (``AsyncArray``: zarr's public asynchronous API), opened
    concurrently in one call to zarr's event loop (``optional``: None when absent)."""
    import asyncio

    from zarr.api import asynchronous
    from zarr.core.sync import sync

    opts = storage_options(url) if opts is None else opts  # as ``_group``

    async def open_all() -> dict[str, Any]:
        root = await asynchronous.open_group(url, mode="r+", storage_options=opts or None, use_consolidated=False)

        async def one(path: str) -> Any:
            try:
                return await root.getitem(path)
            except KeyError:
                if path in optional:
                    return None
                raise

        wanted = [*paths, *optional]
        return dict(zip(wanted, await asyncio.gather(*(one(p) for p in wanted)), strict=True))

    return sync(open_all())


# arrays opened by this process's write tasks, per (store url, run): a run's template is written before its first
# chunk and not changed until its finish, so its arrays' metadata holds for all its chunks. A new run (a resumed,
# appended or overwritten store) has a new key and opens them again. The last few runs are kept.
_RUN_ARRAYS: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
_RUN_ARRAYS_KEPT = 2
_RUN_ARRAYS_LOCK = threading.Lock()


def _run_arrays(url: str, opts: dict[str, Any] | None, paths: list[str], optional: tuple[str, ...], run: str
                ) -> dict[str, Any]:
    """``_open_arrays`` once per process and ``run``: the arrays opened by an earlier chunk of the same run are
    reused, any others opened and kept."""
    key = (url, run)
    with _RUN_ARRAYS_LOCK:
        kept = _RUN_ARRAYS.get(key, {})
    wanted = [*paths, *optional]
    missing = [p for p in wanted if p not in kept]
    if missing:
        opened = _open_arrays(url, opts, [p for p in missing if p not in optional],
                              optional=tuple(p for p in missing if p in optional))
        with _RUN_ARRAYS_LOCK:
            kept = _RUN_ARRAYS.setdefault(key, {})
            kept.update(opened)
            _RUN_ARRAYS.move_to_end(key)
            while len(_RUN_ARRAYS) > _RUN_ARRAYS_KEPT:
                _RUN_ARRAYS.popitem(last=False)
    return {p: kept[p] for p in wanted}


def _set_regions(arrays: dict[str, Any], writes: list[tuple[str, tuple, Any]]) -> None:
    """Write each (array path, region, values) of ``writes`` into ``arrays`` (``_open_arrays``), all in one call
    to zarr's event loop; raises the first failure once every write has ended."""
    import asyncio

    from zarr.core.sync import sync

    async def set_all() -> None:
        done = await asyncio.gather(*(arrays[p].setitem(r, v) for p, r, v in writes),
                                    return_exceptions=True)
        for err in done:
            if isinstance(err, BaseException):
                raise err

    sync(set_all())


def done_mask(url: str) -> np.ndarray:
    return np.asarray(_group(url, "r")[DONE][...]).astype(bool)


def read_attrs(url: str) -> dict[str, Any]:
    return dict(_group(url, "r").attrs)
