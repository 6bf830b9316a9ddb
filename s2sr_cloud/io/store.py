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


def write_template(ds: xr.Dataset, url: str, dtype: str, attrs: dict[str, Any]) -> Any:
    """Create the store's metadata and return the delayed object that writes the data."""
    ds = ds.copy()
    ds.attrs.update({k: _jsonable(v) for k, v in attrs.items()})
    ds.attrs[STATUS] = "incomplete"
    try:
        return ds.to_zarr(url, mode="w", compute=False, consolidated=False, zarr_format=3,
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
