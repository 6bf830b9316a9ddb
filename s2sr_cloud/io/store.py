"""Zarr (format 3) output on any fsspec URL: local paths, s3:// (s3fs), gs://, file://.

A store is written as a template first (metadata, ``s2sr_status = "incomplete"``), then filled chunk by chunk, and
only marked ``complete`` after every chunk and the statistics are in. ``open_output`` refuses incomplete stores, so
an interrupted run is never presented as a valid product.
"""

from __future__ import annotations

import json
import os
from typing import Any

import fsspec
import numpy as np
import xarray as xr

from ..errors import OutputError

STATUS = "s2sr_status"
FILL_DN = 65535
DETAIL = "detail"  # the added-detail layer
SUMS = "chunk_sums"  # per-output-chunk statistics sums
STORE_QUANTUM = (1e-4, -0.1)  # uint16 DN = (reflectance + 0.1) / 1e-4: covers -0.1 ... 6.55, exact for S2 DN


def storage_options(url: str) -> dict[str, Any]:
    """Credentials come from the environment/profile (never from our config). ``S2SR_S3_ENDPOINT`` or
    ``AWS_ENDPOINT_URL`` point s3:// at another S3-compatible service."""
    if not url.startswith("s3://"):
        return {}
    opts: dict[str, Any] = {}
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
    fs, path = fsspec.core.url_to_fs(url, **storage_options(url))
    return fs, path


def store_exists(url: str) -> bool:
    fs, path = filesystem(url)
    try:
        return bool(fs.exists(path.rstrip("/") + "/zarr.json") or fs.exists(path.rstrip("/") + "/.zgroup"))
    except Exception as err:  # noqa: BLE001
        raise OutputError(f"cannot check the output {url} ({err.__class__.__name__}: {err}): "
                          "check the URL and credentials") from None


def remove_store(url: str) -> None:
    fs, path = filesystem(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def encoding_for(ds: xr.Dataset, dtype: str) -> dict[str, dict[str, Any]]:
    """uint16 DN with CF scale_factor/add_offset by default (storage is the cost at x10); float32 on request."""
    enc: dict[str, dict[str, Any]] = {}
    for name, var in ds.data_vars.items():
        if var.dims != ("time", "y", "x"):
            continue
        chunks = tuple(c[0] for c in var.chunks) if var.chunks else None
        if dtype == "uint16":
            sf, off = STORE_QUANTUM
            # float32 scale/offset: CF decodes to the scale's type, and float32 keeps 1e-8 reflectance precision
            enc[name] = {"dtype": "uint16", "scale_factor": np.float32(sf),
                         "add_offset": np.float32(0.0 if name == DETAIL else off),
                         "_FillValue": FILL_DN}
        else:
            enc[name] = {"dtype": "float32", "_FillValue": np.float32(np.nan)}
        if chunks:
            enc[name]["chunks"] = chunks
    return enc


def write_template(ds: xr.Dataset, url: str, dtype: str, attrs: dict[str, Any]) -> None:
    """Create the store: metadata, coordinates and empty arrays. The data is written by ``write_block`` tasks,
    so xarray's own delayed writer is discarded."""
    ds = ds.copy()
    ds.attrs.update({k: _jsonable(v) for k, v in attrs.items()})
    ds.attrs[STATUS] = "incomplete"
    try:
        ds.to_zarr(url, mode="w", compute=False, consolidated=False, zarr_format=3,
                   encoding=encoding_for(ds, dtype), storage_options=storage_options(url) or None)
    except Exception as err:  # noqa: BLE001
        raise OutputError(f"cannot create the output store {url} ({err.__class__.__name__}: {err})") from None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def finish(url: str, extra: xr.Dataset, attrs: dict[str, Any]) -> None:
    """Add the statistics variables and mark the store complete (last write of a run)."""
    import zarr

    opts = storage_options(url) or None
    group = zarr.open_group(url, mode="r+", storage_options=opts, zarr_format=3)
    kept = dict(group.attrs)  # to_zarr(mode="a") replaces the group's attributes with the appended dataset's
    extra = extra.assign_coords({k: extra[k].astype(object) for k in extra.coords if extra[k].dtype.kind == "U"})
    extra.to_zarr(url, mode="a", consolidated=False, zarr_format=3, storage_options=opts)
    group = zarr.open_group(url, mode="r+", storage_options=opts, zarr_format=3)
    group.attrs.put(kept | {k: _jsonable(v) for k, v in attrs.items()} | {STATUS: "complete"})


def open_output(url: str, *, allow_incomplete: bool = False) -> xr.Dataset:
    """Open a run's output lazily; refuses a store whose run did not finish."""
    try:
        ds = xr.open_zarr(url, consolidated=False, storage_options=storage_options(url) or None,
                          decode_coords="all")
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise OutputError(f"{url} is not an s2sr-cloud Zarr store ({err.__class__.__name__}): check the path") from None
    if ds.attrs.get(STATUS) != "complete" and not allow_incomplete:
        raise OutputError(f"{url} is incomplete (its run did not finish): re-run the job to complete it")
    return ds


def read_chunk_sums(url: str, name: str) -> np.ndarray:
    ds = xr.open_zarr(url, consolidated=False, storage_options=storage_options(url) or None)
    return ds[name].values


def store_size(url: str) -> int:
    fs, path = filesystem(url)
    try:
        return int(fs.du(path))
    except Exception:  # noqa: BLE001
        return 0


# ---- resumable, chunk-level writing -------------------------------------------------------------------------
DONE = "chunk_done"  # (time, chunk_y, chunk_x) uint8: 1 once every variable of that output chunk is written
LOCK_SUFFIX = ".lock"  # the lease lives beside the store, so replacing the store never removes it


def _group(url: str, mode: str = "r+", opts: dict[str, Any] | None = None) -> Any:
    import zarr

    opts = storage_options(url) if opts is None else opts
    return zarr.open_group(url, mode=mode, storage_options=opts or None, zarr_format=3)


def _encode(arr: Any, values: np.ndarray) -> np.ndarray:
    """CF-encode ``values`` for zarr array ``arr`` exactly as xarray would (round, fill NaN)."""
    attrs = arr.attrs
    if np.dtype(arr.dtype).kind != "u":
        return values.astype(arr.dtype)
    sf, off, fill = float(attrs.get("scale_factor", 1)), float(attrs.get("add_offset", 0)), attrs["_FillValue"]
    with np.errstate(invalid="ignore"):
        dn = np.around((values.astype(np.float64) - off) / sf)
    dn = np.clip(dn, 0, fill - 1)
    return np.where(np.isnan(values), fill, dn).astype(arr.dtype)


def write_block(url: str, opts: dict[str, Any], names: tuple[str, ...], block: np.ndarray, sums: np.ndarray,
                t: int, ci: int, cj: int, y0: int, x0: int) -> tuple[int, int, int]:
    """Region-write one output chunk (all band variables, detail, its statistics sums), then mark it done.
    Runs on a worker with the storage options captured on the client (the worker may have no credentials in its
    environment); idempotent, so a chunk interrupted half-way is simply written again."""
    g = _group(url, "r+", opts)
    h, w = block.shape[-2:]
    for c, name in enumerate(names):
        arr = g[name]
        arr[t, y0:y0 + h, x0:x0 + w] = _encode(arr, block[0, c])
    g[SUMS][t, :, ci, cj] = sums[0, :, 0, 0]
    g[DONE][t, ci, cj] = 1  # last: only a fully written chunk counts as done
    return t, ci, cj


def done_mask(url: str) -> np.ndarray:
    return np.asarray(_group(url, "r")[DONE][...]).astype(bool)


def read_attrs(url: str) -> dict[str, Any]:
    return dict(_group(url, "r").attrs)


class Lease:
    """A run's lease on a store: ``<store>.lock`` created exclusively (O_EXCL locally, If-None-Match on S3) and
    refreshed by a heartbeat, so two runs cannot write one store at once and a killed run's lease expires."""

    def __init__(self, url: str, owner: str, ttl: float | None = None) -> None:
        self.fs, root = filesystem(url)
        self.path = root.rstrip("/") + LOCK_SUFFIX
        self.owner = owner
        self.ttl = float(ttl if ttl is not None else os.environ.get("S2SR_LOCK_TTL", "120"))
        self._stop: Any = None

    def _body(self) -> bytes:
        import time

        return json.dumps({"owner": self.owner, "expires": time.time() + self.ttl}).encode()

    def _create(self) -> bool:
        try:
            if getattr(self.fs, "protocol", None) in ("s3", "s3a") or "s3" in str(self.fs.protocol):
                self.fs.pipe_file(self.path, self._body(), mode="create")
            else:
                self.fs.makedirs(self.path.rsplit("/", 1)[0], exist_ok=True)
                with self.fs.open(self.path, "xb") as f:
                    f.write(self._body())
            return True
        except (FileExistsError, OSError) as err:
            if isinstance(err, FileExistsError) or "PreconditionFailed" in repr(err) or "exists" in str(err):
                return False
            raise

    def acquire(self) -> None:
        import threading
        import time

        if not self._create():
            try:
                info = json.loads(self.fs.cat_file(self.path))
            except Exception:  # noqa: BLE001 - unreadable lock: treat as held until it can be read
                info = {"owner": "?", "expires": time.time() + self.ttl}
            if info.get("expires", 0) > time.time():
                raise OutputError(f"another run ({info.get('owner')}) is writing this store; its lease expires in "
                                  f"{info['expires'] - time.time():.0f} s: wait for it or run again after that")
            self.fs.rm(self.path)  # an expired lease: its run died
            if not self._create():
                raise OutputError("another run took over this store's expired lease just now: try again later")
        self._stop = threading.Event()

        def beat() -> None:
            while not self._stop.wait(self.ttl / 3):
                try:
                    self.fs.pipe_file(self.path, self._body())
                except Exception:  # noqa: BLE001 - a missed beat only shortens the lease
                    pass

        threading.Thread(target=beat, name="s2sr-lease", daemon=True).start()

    def release(self) -> None:
        if self._stop is not None:
            self._stop.set()
        try:
            self.fs.rm(self.path)
        except FileNotFoundError:
            pass
