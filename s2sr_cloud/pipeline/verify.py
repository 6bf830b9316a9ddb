"""``s2sr verify OUT``: read every chunk of a store and say which output chunks are bad.

Checks, per output chunk (time, chunk_y, chunk_x): every array's CRC32C (the Zarr codec, on read); that a chunk
marked done has all its chunk objects; that its encoded bytes match the CRC32 recorded when it was written
(``chunk_crc``: catches a chunk copied over another); and, on a sample of done chunks, spectral consistency against
the input re-read from the STAC items. Also the root attributes. ``--repair`` marks the bad chunks not done and
the store incomplete, so re-running the job recomputes exactly those.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pystac

from ..config import SAMPLES
from ..errors import OutputError
from ..io import store
from ..io.load import GridSpec, MaskSpec, load_reflectance

REQUIRED_ATTRS = ("job_spec", "bands", "scale", "model", "stac_items", store.STATUS)


@dataclass
class VerifyReport:
    url: str
    chunks: int = 0
    bad: dict[tuple[int, int, int], str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # store-level (attributes, coordinates)
    consistency_checked: int = 0
    consistency_max: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad and not self.problems

    def lines(self) -> list[str]:
        out = [f"{self.url}: {self.chunks} chunk(s) read, {len(self.bad)} bad"
               + (f", consistency checked on {self.consistency_checked} (max |error| {self.consistency_max:.2g})"
                  if self.consistency_checked else "")]
        out += [f"  bad chunk (time {t}, chunk_y {i}, chunk_x {j}): {why}" for (t, i, j), why in sorted(self.bad.items())]
        out += [f"  problem: {p}" for p in self.problems] + [f"  note: {n}" for n in self.notes]
        return out


def _chunk_keys(fs: Any, root: str, name: str) -> set[tuple[int, ...]]:
    """The chunk objects of one array: Zarr format 3 keys ``NAME/c/t/i/j``, format 2 keys ``NAME/t.i.j`` (or
    ``NAME/t/i/j`` with the "/" dimension separator)."""
    base = f"{root}/{name}"
    try:
        found = fs.find(base)
    except FileNotFoundError:
        return set()
    keys = set()
    for k in found:
        rel = k[len(base) + 1:] if k.startswith(base + "/") else k[k.find(f"/{name}/") + len(name) + 2:]
        rel = rel[2:] if rel.startswith("c/") else rel
        parts = rel.replace(".", "/").split("/")
        if parts and all(p.isdigit() for p in parts):
            keys.add(tuple(int(p) for p in parts))
    return keys


CHECKSUM_ERRORS = (ValueError, RuntimeError)  # CRC32C codec (format 3): ValueError; zstd checksum: RuntimeError


def verify_store(url: str, *, repair: bool = False, sample: int = 4, seed: int = 0) -> VerifyReport:
    existing = store.inspect_output(url)
    if existing.state is not store.OutputState.OURS:
        raise OutputError(f"{store.redact_url(url)} is not an s2sr-cloud store"
                          f"{f' (it is {existing.what})' if existing.what else ''}: nothing to verify")
    report = VerifyReport(store.redact_url(url))
    attrs = existing.attrs or {}
    report.problems += [f"attribute {a} is missing" for a in REQUIRED_ATTRS if a not in attrs]
    g = store._group(url, "r")
    names = store.layer_names(attrs.get("bands", []), g)
    missing = [n for n in (*names, store.DONE, store.SUMS) if n not in g]
    if missing:
        report.problems.append(f"arrays missing: {', '.join(missing)}")
        return report
    done = np.asarray(g[store.DONE][...]).astype(bool)
    crcs = np.asarray(g[store.CRC][...]) if store.CRC in g else None
    if crcs is None:
        report.notes.append("no chunk_crc (a store from before layout 2): copied chunks cannot be detected")
    if attrs.get(store.STATUS) == "complete" and not done.all():
        report.problems.append(f"marked complete but {int((~done).sum())} chunk(s) are not done")
    fs, root = store.filesystem(url)
    root = root.rstrip("/")
    nt, ny, nx = done.shape
    first = g[names[0]]
    cy, cx = first.chunks[1], first.chunks[2]
    present = {n: _chunk_keys(fs, root, n) for n in names}
    for t in range(nt):
        for i in range(ny):
            for j in range(nx):
                report.chunks += 1
                key = (t, i, j)
                crc, why = 0, ""
                for n in names:
                    if done[key] and key not in present[n]:
                        why = why or f"{n}: chunk object missing"
                        continue
                    try:
                        block = np.asarray(g[n][t, i * cy:(i + 1) * cy, j * cx:(j + 1) * cx])
                    except CHECKSUM_ERRORS as err:
                        why = why or f"{n}: checksum mismatch ({str(err)[:60]})"
                        continue
                    crc = zlib.crc32(np.ascontiguousarray(block).tobytes(), crc)
                for n in (store.SUMS, store.DONE, *((store.CRC,) if crcs is not None else ())):
                    try:
                        np.asarray(g[n][(t, slice(None), i, j) if n == store.SUMS else key])
                    except CHECKSUM_ERRORS:
                        why = why or f"{n}: checksum mismatch"
                if not why and done[key] and crcs is not None and int(crcs[key]) != crc:
                    why = "content differs from what was written (chunk_crc mismatch: replaced or copied chunk)"
                if why:
                    report.bad[key] = why
    for name in g.array_keys():
        if name in (*names, store.SUMS, store.DONE, store.CRC):
            continue
        try:
            np.asarray(g[name][...])
        except CHECKSUM_ERRORS:
            report.problems.append(f"array {name}: checksum mismatch")
    _check_overviews(g, attrs, report)
    if sample:
        _check_consistency(url, attrs, done, report, sample, seed)
    if repair and report.bad:
        w = store._group(url, "r+")
        for key in report.bad:
            w[store.DONE][key] = 0
        store.set_status(url, "incomplete")
        report.notes.append(f"repaired: {len(report.bad)} chunk(s) marked not done and the store incomplete; re-run "
                            "the same job to recompute exactly those")
    return report


def _check_overviews(g: Any, attrs: dict[str, Any], report: VerifyReport) -> None:
    """Every level the ``multiscales`` attribute lists exists, reads (checksums) and has its declared shape."""
    for ms in attrs.get("multiscales") or []:
        for level in ms.get("datasets", [])[1:]:
            path = level["path"]
            for name in ms.get("variables", []):
                key = f"{path}/{name}"
                try:
                    arr = g[key]
                except KeyError:
                    report.problems.append(f"overview {key} is missing (re-run the job to rebuild the levels)")
                    continue
                if list(arr.shape[-2:]) != list(level.get("shape", arr.shape[-2:])):
                    report.problems.append(f"overview {key}: shape {arr.shape} is not the declared {level['shape']}")
                try:
                    for t in range(arr.shape[0]):
                        np.asarray(arr[t])
                except CHECKSUM_ERRORS as err:
                    report.problems.append(f"overview {key}: checksum mismatch ({str(err)[:60]})")


def _items(attrs: dict[str, Any]) -> list[pystac.Item]:
    from .plan import catalog_url

    spec = attrs["job_spec"]
    ids = list(attrs["stac_items"])
    from ..catalog.search import open_client

    with catalog_url(spec["catalog"]) as url:
        client = open_client(url)
        found = {it.id: it for it in client.search(ids=ids, collections=[spec["collection"]]).items()}
    if set(found) != set(ids):
        raise OutputError(f"{len(set(ids) - set(found))} source item(s) are no longer in the catalog")
    return [found[i] for i in ids]


def _check_consistency(url: str, attrs: dict[str, Any], done: np.ndarray, report: VerifyReport, sample: int,
                       seed: int) -> None:
    """Block means of the stored output over each native footprint vs the input, on ``sample`` good chunks."""
    candidates = [k for k in zip(*np.nonzero(done), strict=True) if tuple(int(v) for v in k) not in report.bad]
    if not candidates:
        return
    if attrs.get("job_spec", {}).get("catalog") not in SAMPLES and "://" not in str(attrs["job_spec"]["catalog"]):
        report.notes.append("consistency not checked: the catalog is not recorded")
        return
    try:
        items = _items(attrs)
        out = store.open_output(url) if attrs.get(store.STATUS) == "complete" else None
        import xarray as xr

        out = out if out is not None else xr.open_zarr(url, consolidated=False,
                                                       storage_options=store.storage_options(url) or None)
        scale = int(attrs["scale"])
        res = float(attrs["input_resolution"])
        tr = out.rio.transform()
        from affine import Affine
        from odc.geo.geobox import GeoBox

        geobox = GeoBox((out.sizes["y"] // scale, out.sizes["x"] // scale), Affine(res, 0, tr.c, 0, -res, tr.f),
                        out.rio.crs)
        bands = tuple(attrs["bands"])
        factors = tuple(int(f) for f in attrs["native_factors"])
        chunk_in = int(np.max(attrs["chunk_input"][0]))
        grid = GridSpec(geobox=geobox, resolution=res, factors=factors, bands=bands)
        inp = load_reflectance(items, grid, chunk_in, mask=MaskSpec.from_attrs(attrs.get("mask")))
    except Exception as err:  # noqa: BLE001 - verify still reports everything else
        report.notes.append(f"consistency not checked: cannot load the input ({err.__class__.__name__}: "
                            f"{str(err)[:100]})")
        return
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(candidates), size=min(sample, len(candidates)), replace=False)
    ych = [int(v) for v in attrs["chunk_input"][0]]
    xch = [int(v) for v in attrs["chunk_input"][1]]
    y0s, x0s = np.cumsum([0, *ych[:-1]]), np.cumsum([0, *xch[:-1]])
    for p in picks:
        t, i, j = (int(v) for v in candidates[p])
        ys, xs = slice(int(y0s[i]), int(y0s[i]) + ych[i]), slice(int(x0s[j]), int(x0s[j]) + xch[j])
        worst = 0.0
        for b, f in zip(bands, factors, strict=True):
            x = inp[b].isel(time=t, y=ys, x=xs).values.astype(np.float64)[::f, ::f]
            k = f * scale
            y = out[b].isel(time=t, y=slice(ys.start * scale, ys.stop * scale),
                            x=slice(xs.start * scale, xs.stop * scale)).values.astype(np.float64)
            h, w = y.shape[0] // k, y.shape[1] // k
            means = y[:h * k, :w * k].reshape(h, k, w, k).mean(axis=(1, 3))
            ok = np.isfinite(means) & np.isfinite(x[:h, :w])
            if ok.any():
                worst = max(worst, float(np.abs(means - x[:h, :w])[ok].max()))
        report.consistency_checked += 1
        report.consistency_max = max(report.consistency_max, worst)
        if worst > 1e-4:
            report.bad[(t, i, j)] = f"not consistent with its input (max |block mean - input| {worst:.3g})"
