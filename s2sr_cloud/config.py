"""Typed, frozen job configuration. Loose user input (strings, YAML) is converted and validated once, here."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .bands import ALL_BANDS, BY_NAME
from .errors import ConfigError

SAMPLE = "sample"
DTYPES = ("uint16", "float32")
ENSEMBLES = (1, 2, 4, 8)


@dataclass(frozen=True)
class JobConfig:
    """Everything that defines one run. ``job_spec()`` is the subset that defines the output's content."""

    out: str
    catalog: str = SAMPLE
    collection: str = "sentinel-2-l2a"
    bbox: tuple[float, float, float, float] | None = None
    geometry: dict[str, Any] | None = None
    datetime: str | None = None
    max_cloud: float | None = None
    bands: tuple[str, ...] = ALL_BANDS
    scale: int = 4
    model: str = "default"
    ensemble: int | None = None  # geometric self-ensemble of the learned model (1, 2, 4, 8); None: the model's own
    overwrite: bool = False
    scheduler: str | None = None
    cluster: str | None = None  # k8s:NAME[.NAMESPACE] or gateway:NAME
    chunk: int | None = None  # input-grid pixels per chunk side; None: picked from scale
    dtype: str = "uint16"
    quicklook: str | None = None  # folder or .png path; None: next to the output
    limit: int = 100  # most items taken from the search

    def __post_init__(self) -> None:
        if not self.out:
            raise ConfigError("no output given: pass --out PATH or s3://bucket/prefix.zarr")
        if self.bbox is not None:
            validate_bbox(self.bbox)
        if self.bbox is not None and self.geometry is not None:
            raise ConfigError("give either --bbox or --geometry, not both")
        if self.datetime is not None:
            validate_datetime(self.datetime)
        unknown = [b for b in self.bands if b not in BY_NAME]
        if unknown:
            raise ConfigError(f"unknown band(s) {', '.join(unknown)}: choose from {', '.join(ALL_BANDS)}")
        if len(set(self.bands)) != len(self.bands) or not self.bands:
            raise ConfigError("--bands must list each band once, e.g. B02,B03,B04")
        # one canonical order (B01 ... B12): outputs and models never depend on how the bands were listed
        object.__setattr__(self, "bands", tuple(sorted(self.bands, key=ALL_BANDS.index)))
        if not isinstance(self.scale, int) or self.scale < 2 or self.scale > 16:
            raise ConfigError(f"--scale must be an integer from 2 to 16, got {self.scale!r}")
        if self.max_cloud is not None and not 0 <= self.max_cloud <= 100:
            raise ConfigError(f"--max-cloud is a percentage in [0, 100], got {self.max_cloud}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.scheduler and self.cluster:
            raise ConfigError("give either --scheduler or --cluster, not both")
        if self.ensemble is not None and self.ensemble not in ENSEMBLES:
            raise ConfigError(f"--ensemble must be one of {', '.join(map(str, ENSEMBLES))}, got {self.ensemble!r}")
        if self.chunk is not None and self.chunk < 16:
            raise ConfigError(f"--chunk must be at least 16 pixels, got {self.chunk}")

    def job_spec(self) -> dict[str, Any]:
        """Fields that determine the output; a store written with another spec is a different product."""
        keep = ("catalog", "collection", "bbox", "geometry", "datetime", "max_cloud", "bands", "scale", "model",
                "ensemble", "dtype")
        return json.loads(json.dumps({k: getattr(self, k) for k in keep}))

    def replace(self, **changes: Any) -> JobConfig:
        return dataclasses.replace(self, **changes)


def validate_bbox(bbox: tuple[float, ...]) -> None:
    if len(bbox) != 4:
        raise ConfigError(f"--bbox needs 4 numbers minlon,minlat,maxlon,maxlat; got {len(bbox)}")
    w, s, e, n = bbox
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
        raise ConfigError(f"--bbox {list(bbox)} is outside lon [-180, 180] / lat [-90, 90]")
    if w >= e or s >= n:
        raise ConfigError(f"--bbox {list(bbox)} is empty: it must be minlon,minlat,maxlon,maxlat with min < max")


_DT = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?)?$")


def _parse_instant(text: str) -> datetime | None:
    if text in ("", ".."):
        return None
    if not _DT.match(text):
        raise ValueError(text)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def validate_datetime(value: str) -> None:
    """RFC 3339 instant or interval (``start/end``, open ends as ``..``); dates alone are accepted."""
    parts = value.split("/")
    try:
        if len(parts) > 2:
            raise ValueError(value)
        instants = [_parse_instant(p) for p in parts]
    except ValueError:
        raise ConfigError(
            f"--datetime {value!r} is not RFC 3339: use e.g. 2020-02-01/2020-02-28 or 2020-02-19T00:00:00Z") from None
    if all(i is None for i in instants):
        raise ConfigError(f"--datetime {value!r} is open at both ends: give at least a start or an end")
    if len(instants) == 2 and None not in instants and instants[0] > instants[1]:  # type: ignore[operator]
        raise ConfigError(f"--datetime {value!r} ends before it starts")


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--bbox {text!r} is not four comma-separated numbers minlon,minlat,maxlon,maxlat") from None
    validate_bbox(vals)
    return vals  # type: ignore[return-value]


def parse_bands(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(b).strip().upper() for b in items if str(b).strip())


def read_geometry(path: str) -> dict[str, Any]:
    """A GeoJSON file holding a geometry, a Feature or a FeatureCollection (geometries are unioned by the API)."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"--geometry {path}: cannot read GeoJSON ({err.__class__.__name__}: {err})") from None
    if obj.get("type") == "FeatureCollection":
        geoms = [f["geometry"] for f in obj.get("features", [])]
        if len(geoms) == 1:
            return geoms[0]
        polys = []
        for g in geoms:
            polys += [g["coordinates"]] if g["type"] == "Polygon" else list(g.get("coordinates", []))
        return {"type": "MultiPolygon", "coordinates": polys}
    if obj.get("type") == "Feature":
        return obj["geometry"]
    if obj.get("type") in ("Polygon", "MultiPolygon"):
        return obj
    raise ConfigError(f"--geometry {path}: expected a Polygon/MultiPolygon, Feature or FeatureCollection")


_FIELDS = {f.name for f in dataclasses.fields(JobConfig)}


def load_config(path: str | None, overrides: dict[str, Any]) -> JobConfig:
    """Merge a YAML job file with CLI flags (flags win) into a validated JobConfig."""
    data: dict[str, Any] = {}
    if path:
        import yaml

        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"--config {path}: cannot read YAML ({err.__class__.__name__})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"--config {path}: expected a mapping of job fields")
        data = {k.replace("-", "_"): v for k, v in loaded.items()}
        unknown = set(data) - _FIELDS
        if unknown:
            raise ConfigError(f"--config {path}: unknown field(s) {', '.join(sorted(unknown))}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(data.get("bbox"), str):
        data["bbox"] = parse_bbox(data["bbox"])
    elif data.get("bbox") is not None:
        data["bbox"] = tuple(float(v) for v in data["bbox"])
    if isinstance(data.get("geometry"), str):
        data["geometry"] = read_geometry(data["geometry"])
    if "bands" in data:
        data["bands"] = parse_bands(data["bands"])
    if "datetime" in data and data["datetime"] is not None:
        data["datetime"] = str(data["datetime"])
    if "out" not in data:
        raise ConfigError("no output given: pass --out PATH or s3://bucket/prefix.zarr")
    return JobConfig(**data)
