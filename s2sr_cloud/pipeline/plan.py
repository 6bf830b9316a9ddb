"""Plan a job once, before anything is written: scenes, zones, grids, chunking, the model, the job spec, the size,
and what to do with each output path. ``s2sr run --dry-run`` prints the plan; ``run_job`` executes it.

Everything that can refuse a job refuses here, with nothing written or deleted: a path that holds something this
tool did not make, a store made by another job (other scenes, model, bands, ...), a model that cannot run the
bands or scale, a job larger than ``--max-output-gb``.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pystac

from ..catalog import describe_items, search_items
from ..catalog.server import sample_catalog
from ..config import SAMPLES, JobConfig, redact_url
from ..errors import ConfigError, OutputError
from ..io import store
from ..io.load import GridSpec, MaskSpec, area_geometry, grid_for, resolve_mask
from ..model.predictors import env_torch_threads, get_predictor
from ..model.registry import ENTRIES, model_sha256
from ..ops.block import Predictor
from ..ops.halo import required_halo
from .graph import chunk_grid, default_chunk, worker_budget_bytes


class Action(enum.Enum):
    CREATE = "create"  # nothing there: write the store in place
    RESUME = "resume"  # our unfinished store of this very job: compute the chunks not done
    DONE = "done"  # our complete store of this very job: nothing to do
    REPLACE = "replace"  # --overwrite: build a new store beside ours, then swap it in
    RESUME_REPLACE = "resume-replace"  # --overwrite interrupted: finish the staged store, then swap
    PROMOTE = "promote"  # --overwrite interrupted after the staged store was complete: only swap
    APPEND = "append"  # --append-time: the window's new scenes become new time steps of our store of this job


@dataclass(frozen=True)
class ZonePlan:
    out: str
    epsg: int
    items: tuple[pystac.Item, ...]
    grid: GridSpec
    chunk: int  # the chunk side asked for (--chunk, or the memory budget's default): part of the job spec
    spec: dict[str, Any]
    action: Action
    shape: tuple[int, int, int]  # output (time, y, x)
    halo: int  # grid pixels of context per chunk side
    grid_chunks: tuple[tuple[int, ...], tuple[int, ...]]  # input chunk sizes along y and x
    output_bytes: int
    mask: MaskSpec = MaskSpec("none", (), "")

    @property
    def chunks(self) -> int:
        """Output chunks in all: time steps x the grid's chunks."""
        return self.shape[0] * len(self.grid_chunks[0]) * len(self.grid_chunks[1])

    @property
    def read_chunk(self) -> tuple[int, int]:
        """The COG read chunk (y, x): the first chunk of the grid, so reads and SR blocks line up."""
        return self.grid_chunks[0][0], self.grid_chunks[1][0]

    @property
    def target(self) -> str:
        """Where the chunks are written: the output itself, or the staged replacement beside it."""
        replacing = self.action in (Action.REPLACE, Action.RESUME_REPLACE, Action.PROMOTE)
        return store.staging_url(self.out) if replacing else self.out


@dataclass(frozen=True)
class JobPlan:
    cfg: JobConfig
    predictor: Predictor
    model: str
    model_sha256: str | None
    ensemble: int | None
    found_more: bool  # the search matched more scenes than --limit
    zones: tuple[ZonePlan, ...]

    @property
    def output_bytes(self) -> int:
        return sum(z.output_bytes for z in self.zones)


@contextlib.contextmanager
def catalog_url(catalog: str) -> Iterator[str]:
    if catalog in SAMPLES:
        with sample_catalog(catalog) as url:
            yield url
    else:
        yield catalog


def item_version(item: pystac.Item) -> str:
    """What identifies the content of a scene: its ``updated`` stamp, else a hash of its properties."""
    if item.properties.get("updated"):
        return str(item.properties["updated"])
    return hashlib.sha256(json.dumps(item.properties, sort_keys=True, default=str).encode()).hexdigest()[:16]


def zone_out(out: str, epsg: int, several: bool = True) -> str:
    """Output URL of one UTM zone: ``{zone}`` in the path is filled; otherwise, when an area spans several zones,
    ``x.zarr`` -> ``x_EPSG32629.zarr``."""
    if "{zone}" in out:
        return out.replace("{zone}", f"EPSG{epsg}")
    if not several:
        return out
    stem = out.rstrip("/")
    return f"{stem.removesuffix('.zarr')}_EPSG{epsg}.zarr"


def _spec(cfg: JobConfig, model: str, sha: str | None, ensemble: int | None, chunk: int,
          items: list[pystac.Item]) -> dict[str, Any]:
    """What defines a store's content: the job's fields, the exact scenes, the model and the chunk grid."""
    spec = cfg.job_spec() | {"model": model, "model_sha256": sha, "ensemble": ensemble, "chunk": chunk}
    if not cfg.append_time:  # a rolling store's scenes grow run after run: they are tracked in its attributes
        spec["items"] = [[it.id, item_version(it)] for it in items]
    return spec


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    parts = [k for k in keys if k != "items"]
    if "items" in keys:
        before = {i for i, _ in old.get("items") or []}
        now = {i for i, _ in new.get("items") or []}
        changed = {i for i, v in new.get("items") or [] if i in before and [i, v] not in (old.get("items") or [])}
        bits = [f"{len(now - before)} new ({', '.join(sorted(now - before)[:2])})" if now - before else "",
                f"{len(before - now)} gone ({', '.join(sorted(before - now)[:2])})" if before - now else "",
                f"{len(changed)} updated ({', '.join(sorted(changed)[:2])})" if changed else ""]
        parts.append("the scenes: " + "; ".join(b for b in bits if b))
    return ", ".join(parts) or "not an s2sr-cloud job"


def _action(cfg: JobConfig, out: str, spec: dict[str, Any], existing: store.Existing | None = None) -> Action:
    """What to do with ``out`` (``existing``: what is there, when the caller has just read it)."""
    existing = store.inspect_output(out) if existing is None else existing
    if existing.state is store.OutputState.FOREIGN:
        raise OutputError(f"--out {redact_url(out)} holds {existing.what}: nothing was written; choose an absent or "
                          "empty path (--overwrite replaces only s2sr-cloud stores)")
    if existing.state is store.OutputState.ABSENT:
        return Action.CREATE
    old = (existing.attrs or {}).get("job_spec") or {}
    if cfg.append_time and not cfg.overwrite:
        if old != spec:
            raise OutputError(f"{redact_url(out)} was made by a different job ({_differences(old, spec)} differ): "
                              "--append-time adds time steps only to a store of the same job; nothing was changed")
        return Action.APPEND
    if not cfg.overwrite:
        if old != spec:
            raise OutputError(f"{redact_url(out)} was made by a different job ({_differences(old, spec)} differ): "
                              "nothing was changed; pass --overwrite to replace it or choose another --out")
        return Action.DONE if existing.complete else Action.RESUME
    staged = store.inspect_output(store.staging_url(out))
    if staged.state is store.OutputState.FOREIGN:
        raise OutputError(f"{redact_url(store.staging_url(out))} (where --overwrite builds the replacement) holds "
                          f"{staged.what}: move it away first")
    if staged.state is store.OutputState.OURS and (staged.attrs or {}).get("job_spec") == spec:
        return Action.PROMOTE if staged.complete else Action.RESUME_REPLACE
    return Action.REPLACE


def _check_location(out: str) -> None:
    """The output's parent must be a folder (locally) or an existing bucket (S3), before anything is planned."""
    fs, path = store.filesystem(out)
    if store.is_s3(fs):
        bucket = path.split("/", 1)[0]
        try:
            exists = fs.exists(bucket)
        except Exception as err:  # noqa: BLE001
            raise OutputError(f"cannot reach the bucket of {redact_url(out)} ({err.__class__.__name__}): check the "
                              "endpoint and credentials") from None
        if not exists:
            raise OutputError(f"bucket {bucket} does not exist or is not visible with these credentials: create it "
                              "or fix --out")
        return
    if "://" in out and not out.startswith("file://"):
        return
    parent = os.path.dirname(os.path.abspath(path.rstrip("/"))) or "."
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise OutputError(f"--out {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: the folder {parent} is not writable")


def _check_quicklook(cfg: JobConfig) -> None:
    if not cfg.quicklook:
        return
    target = cfg.quicklook if cfg.quicklook.endswith(".png") else os.path.join(cfg.quicklook, "x.png")
    parent = os.path.dirname(os.path.abspath(target))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--quicklook {cfg.quicklook}: {parent} is not a writable folder")


def _model_entry(name: str) -> Any:
    return ENTRIES.get(name)


def output_size(grid: GridSpec, n_time: int, scale: int, n_bands: int, dtype: str
                ) -> tuple[tuple[int, int, int], int]:
    """Output shape (time, y, x) and bytes uncompressed (bands + detail layer)."""
    ny, nx = grid.geobox.shape
    shape = (n_time, ny * scale, nx * scale)
    nbytes = shape[0] * shape[1] * shape[2] * (n_bands + 1) * (2 if dtype == "uint16" else 4)
    return shape, nbytes


CONTINUED = (Action.RESUME, Action.RESUME_REPLACE, Action.APPEND)  # actions that add to a store already begun


def _budget_chunk_of_store(cfg: JobConfig, z: ZonePlan, existing: store.Existing) -> ZonePlan:
    """Without ``--chunk`` the chunk side is the memory budget's default: not the user's choice, and it changes
    with ``S2SR_CHUNK_MEMORY_GIB`` and may change between versions. A store this job began under
    another default, its job spec the same in everything else, keeps its own chunk side: it is resumed (or found
    done), not refused as another job (whose remedy, --overwrite, would discard the work done)."""
    if cfg.chunk is not None or cfg.overwrite:
        return z
    old = (existing.attrs or {}).get("job_spec") or {}
    chunk = old.get("chunk")
    if not isinstance(chunk, int) or chunk == z.spec["chunk"] or {**old, "chunk": z.spec["chunk"]} != z.spec:
        return z
    return ZonePlan(**{**z.__dict__, "chunk": chunk, "spec": {**z.spec, "chunk": chunk}})


def _decided(cfg: JobConfig, z: ZonePlan) -> ZonePlan:
    """The zone with its action. A store that is continued (resumed, appended to) keeps the chunk grid it was
    begun with, read from its ``chunk_input``: chunks planned anew (another version, another budget) would mix
    two grids in one store and its done marks."""
    existing = store.inspect_output(z.out)
    z = _budget_chunk_of_store(cfg, z, existing)
    z = ZonePlan(**{**z.__dict__, "action": _action(cfg, z.out, z.spec, existing)})
    if z.action not in CONTINUED:
        return z
    recorded = store.read_attrs(z.target).get("chunk_input")
    if not recorded:
        raise OutputError(f"{redact_url(z.target)} records no chunk grid (made by an older s2sr-cloud): it cannot be "
                          "continued; nothing was changed; pass --overwrite to rebuild it")
    try:
        grid = chunk_grid(z.grid.geobox.shape, z.grid.factors, z.halo, None, cfg.scale, recorded)
    except ConfigError as err:
        raise OutputError(f"{redact_url(z.target)}: {err}") from None
    return ZonePlan(**{**z.__dict__, "grid_chunks": grid})


def _solar_days(items: list[pystac.Item]) -> int:
    days = set()
    for it in items:
        when = it.datetime or it.common_metadata.start_datetime
        lon = (it.bbox[0] + it.bbox[2]) / 2 if it.bbox else 0.0
        days.add(None if when is None else (when.timestamp() + lon / 15 * 3600) // 86400)
    return max(1, len(days))


def plan_job(cfg: JobConfig) -> JobPlan:
    """Search, group by UTM zone, size and check everything; raise before any byte is written."""
    _check_location(cfg.out)
    _check_quicklook(cfg)
    env_torch_threads()  # the workers read these: refuse a bad value here, before any work
    worker_budget_bytes()
    store.write_threads()
    predictor = get_predictor(cfg.model, bands=cfg.bands, ensemble=cfg.ensemble)  # refuses an impossible --ensemble
    entry = _model_entry(predictor.name)
    ensemble = None if entry is None else (cfg.ensemble or entry.kwargs.get("ensemble"))
    sha = model_sha256(predictor.name)
    with catalog_url(cfg.catalog) as url:
        items = search_items(url, cfg.collection, bbox=cfg.bbox, intersects=cfg.geometry, datetime=cfg.datetime,
                             max_cloud=cfg.max_cloud, limit=cfg.limit)
    zones: dict[int, list[pystac.Item]] = {}
    for item, info in zip(items, describe_items(items, cfg.bands), strict=True):
        zones.setdefault(info.epsg or 0, []).append(item)
    chunk = cfg.chunk or default_chunk(cfg.scale)
    area = area_geometry(cfg.bbox, cfg.geometry)
    plans = []
    for epsg, zitems in sorted(zones.items()):
        out = zone_out(cfg.out, epsg, several=len(zones) > 1)
        grid = grid_for(zitems, cfg.bands, area)
        if entry is not None:
            entry.check(grid.factors, cfg.scale)  # ModelError (exit 8) before anything is written
        shape, nbytes = output_size(grid, _solar_days(zitems), cfg.scale, len(cfg.bands), cfg.dtype)
        halo = required_halo(predictor.reach(grid.factors, cfg.scale), grid.factors)
        ych, xch = chunk_grid(grid.geobox.shape, grid.factors, halo, chunk, cfg.scale)
        spec = _spec(cfg, predictor.name, sha, ensemble, chunk, zitems)
        mask = resolve_mask(zitems, cfg.mask, cfg.mask_classes)  # refuses a mix of scenes with and without SCL
        plans.append(ZonePlan(out=out, epsg=epsg, items=tuple(zitems), grid=grid, chunk=chunk, spec=spec,
                              action=Action.CREATE, shape=shape, output_bytes=nbytes, mask=mask, halo=halo,
                              grid_chunks=(ych, xch)))
    total = sum(z.output_bytes for z in plans)
    if total > cfg.max_output_gb * 1e9:
        big = max(plans, key=lambda z: z.output_bytes)
        raise ConfigError(f"the output would be {total / 1e9:,.1f} GB ({big.shape[1]:,} x {big.shape[2]:,} px x "
                          f"{big.shape[0]} date(s) x {len(cfg.bands) + 1} layers), above --max-output-gb "
                          f"{cfg.max_output_gb:g}: shrink the area or dates, or raise --max-output-gb")
    plans = [_decided(cfg, z) for z in plans]
    return JobPlan(cfg=cfg, predictor=predictor, model=predictor.name, model_sha256=sha, ensemble=ensemble,
                   found_more=bool(getattr(items, "truncated", False)), zones=tuple(plans))


def describe_plan(plan: JobPlan) -> str:
    """What ``--dry-run`` prints."""
    cfg = plan.cfg
    lines = [f"model:    {plan.model}" + (f" (sha256 {plan.model_sha256[:12]}..., ensemble {plan.ensemble})"
                                          if plan.model_sha256 else ""),
             f"scenes:   {sum(len(z.items) for z in plan.zones)}"
             + (f" (the search matched more: raise --limit above {cfg.limit})" if plan.found_more else "")]
    for z in plan.zones:
        ny, nx = z.grid.geobox.shape
        lines += [f"zone EPSG:{z.epsg}: {len(z.items)} scene(s), input {ny} x {nx} px at {z.grid.resolution:g} m",
                  f"  output:  {z.out} ({z.action.value}) {z.shape[0]} x {z.shape[1]} x {z.shape[2]} "
                  f"(time, y, x), {z.output_bytes / 1e9:.2f} GB before compression",
                  f"  chunks:  {z.chunks} of up to {max(z.grid_chunks[0])} x {max(z.grid_chunks[1])} input px "
                  f"(--chunk {z.chunk})",
                  f"  mask:    {z.mask.mode}" + (f" (SCL classes {','.join(map(str, z.mask.classes))})"
                                                 if z.mask.mode == "scl" else "")
                  + (f"; {z.mask.note}" if z.mask.note else "")]
        lines += _estimate(plan, z)
    lines.append(f"total:    {plan.output_bytes / 1e9:.2f} GB (limit --max-output-gb {cfg.max_output_gb:g})")
    return "\n".join(lines)


# Network FLOP/s one CPU core sustained in the chunk function (benchmarks/RESULTS.md: s2sr-v1 x4, --ensemble 1,
# 0.0327 output Mpx per core-second at ~140 kFLOP per output px on this project's 2-core machine)
CPU_FLOPS_PER_CORE = 4.6e9


def network_flops_per_output_px(predictor: Predictor, factors: tuple[int, ...], scale: int) -> float:
    """The predictor's counted FLOPs (convolutions, matmuls; ensemble included) per output pixel of all bands,
    measured by torch's FlopCounterMode on a small block. 0 for bicubic (no network)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    n = 96
    x = torch.full((1, len(factors), n, n), 0.2)
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        predictor.predict_t(x, factors, scale)
    return fc.get_total_flops() / (n * n * scale * scale)


def _estimate(plan: JobPlan, z: ZonePlan) -> list[str]:
    """Dry-run estimates for one zone: halo and what it costs, peak memory of one chunk task, network compute."""
    factors, s, halo = z.grid.factors, plan.cfg.scale, z.halo
    ny, nx = z.grid.geobox.shape
    ych, xch = z.grid_chunks
    def padded(sizes: tuple[int, ...]) -> list[int]:  # no halo beyond the area's edges (graph.block_pads)
        return [n + halo * ((i > 0) + (i < len(sizes) - 1)) for i, n in enumerate(sizes)]

    fed = sum(a * b for a in padded(ych) for b in padded(xch))
    overhead = fed / (ny * nx)
    c, cmax = len(factors), max(ych + xch)
    # one task holds its input block, the prediction and the consistent output (+ detail), float32
    task_bytes = 4 * (c * (cmax + 2 * halo) ** 2 + 3 * (c + 1) * (cmax * s) ** 2)
    flops_px = network_flops_per_output_px(plan.predictor, factors, s)
    out_px = z.shape[0] * z.shape[1] * z.shape[2]
    total = flops_px * out_px * overhead
    lines = [f"  halo:    {halo} px per side: each block reads {overhead:.2f}x the input pixels it keeps (each band "
             "group's network sees only its own, smaller window)",
             f"  memory:  ~{task_bytes / 2**30:.1f} GiB per chunk task (input, prediction, output; float32)"]
    if flops_px:
        lines.append(f"  compute: {flops_px / 1e3:.0f} kFLOP per output px, {total / 1e12:.1f} TFLOP in all; "
                     f"~{total / CPU_FLOPS_PER_CORE / 3600:.2f} CPU core-hours at {CPU_FLOPS_PER_CORE / 1e9:.1f} "
                     "GFLOP/s per core (a GPU worker is far faster: benchmarks/RESULTS.md)")
    else:
        lines.append("  compute: no network (bicubic): reading and writing dominate")
    return lines
