"""Typed, frozen job configuration. Loose user input (strings, YAML) is converted and validated once, here."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .bands import ALL_BANDS, BY_NAME, parse_mask_classes
from .errors import ConfigError

SAMPLE = "sample"
SAMPLES = (SAMPLE, "sample10m")  # embedded scenes: decimated L2A (tests), real 10 m L1C crop (make demo)
ZARR_FORMATS = (2, 3)
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
    max_output_gb: float = 64.0  # refuse jobs whose output would be larger (one tile-date at x4 is ~50 GB)
    lease_ttl: float = 120.0  # seconds a dead run's lease blocks the store (S2SR_LOCK_TTL)
    task_retries: int = 3  # retries of a failed chunk task on a distributed cluster (S2SR_TASK_RETRIES)
    now: str | None = None  # the run time relative windows resolve against (default: the clock); for backfills
    append_time: bool = False  # add the window's new scenes as new time steps to an existing store of this job
    datetime_expr: str | None = None  # the window as given (e.g. last-month) when ``datetime`` was resolved from it
    out_template: str | None = None  # --out as given when it held {start}/{end}/{collection}/{zone} fields
    zarr_format: int = 3  # 2: what GDAL 3.4-3.10 and QGIS read (same guarantees: marker, status, checksums)
    mask: str = "scl"  # scl: SCL classes mask_classes become nodata (none where the scenes have no SCL); or none
    mask_classes: tuple[int, ...] | None = None  # None: io.load.DEFAULT_MASK_CLASSES (0,1,3,8,9,10)
    composite: str = "none"  # median: one cloud-free time step from the valid observations of the window

    def __post_init__(self) -> None:
        if not isinstance(self.out, str) or not self.out.strip():
            raise ConfigError("no output given: pass --out PATH or s3://bucket/prefix.zarr")
        self._resolve_window()
        validate_out(self.out)
        if "://" not in self.out:  # workers of a remote or local cluster have their own working directory
            import os

            object.__setattr__(self, "out", os.path.abspath(os.path.expanduser(self.out)))
        if self.bbox is not None:
            validate_bbox(self.bbox)
        if self.bbox is not None and self.geometry is not None:
            raise ConfigError("give either --bbox or --geometry, not both")
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
        if self.mask not in ("scl", "none"):
            raise ConfigError(f"--mask must be scl or none, got {self.mask!r}")
        if self.mask_classes is not None:
            object.__setattr__(self, "mask_classes", parse_mask_classes(self.mask_classes))
        if self.composite not in ("median", "none"):
            raise ConfigError(f"--composite must be median or none, got {self.composite!r}")
        if self.zarr_format not in ZARR_FORMATS:
            raise ConfigError(f"--zarr-format must be 2 or 3, got {self.zarr_format!r}")
        if self.ensemble is not None and self.ensemble not in ENSEMBLES:
            raise ConfigError(f"--ensemble must be one of {', '.join(map(str, ENSEMBLES))}, got {self.ensemble!r}")
        if self.chunk is not None and not 16 <= self.chunk <= 100_000:
            raise ConfigError(f"--chunk must be from 16 to 100000 input pixels, got {self.chunk}")
        if not isinstance(self.limit, int) or self.limit < 1:
            raise ConfigError(f"--limit must be a positive number of scenes, got {self.limit!r}")
        if not self.max_output_gb > 0:
            raise ConfigError(f"--max-output-gb must be positive, got {self.max_output_gb}")
        if self.scheduler is not None and not re.match(r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s/]+$", self.scheduler):
            raise ConfigError(f"--scheduler {self.scheduler!r} is not a Dask scheduler address: use e.g. "
                              "tcp://host:8786")
        if self.cluster is not None and not re.match(r"^(k8s|gateway):\S+$", self.cluster):
            raise ConfigError(f"--cluster {self.cluster!r}: use k8s:NAME[.NAMESPACE] or gateway:NAME")

    def _resolve_window(self) -> None:
        """Relative windows (last-month, P1M/.., ...) become an explicit interval against ``now``; an --out
        template is filled from it. Both originals are kept (provenance)."""
        from . import timewindow

        now = timewindow.parse_now(self.now)
        window = None
        if self.datetime is not None:
            if not isinstance(self.datetime, str):
                raise ConfigError(f"--datetime must be text, got {self.datetime!r}")
            if timewindow.is_relative(self.datetime):
                window = timewindow.resolve(self.datetime, now)
                object.__setattr__(self, "datetime_expr", self.datetime)
                object.__setattr__(self, "datetime", window.interval())
            else:
                validate_datetime(self.datetime)
                window = timewindow.resolve(self.datetime, now)
        if "{" in self.out:
            filled = timewindow.fill_template(self.out, window, self.collection)
            object.__setattr__(self, "out_template", self.out)
            object.__setattr__(self, "out", filled)

    def job_spec(self) -> dict[str, Any]:
        """Fields that determine the output; a store written with another spec is a different product."""
        keep = ("catalog", "collection", "bbox", "geometry", "datetime", "max_cloud", "bands", "scale", "model",
                "ensemble", "dtype", "limit")
        if self.append_time:  # a rolling store: its window moves and its scenes grow, run after run
            keep = tuple(k for k in keep if k not in ("datetime", "limit"))
        spec = json.loads(json.dumps({k: getattr(self, k) for k in keep}))
        spec["catalog"] = redact_url(spec["catalog"])
        if self.append_time:
            spec["append_time"] = True
        if self.zarr_format != 3:  # (absent for the default: specs of earlier stores stay the same)
            spec["zarr_format"] = self.zarr_format
        if self.mask != "scl" or self.mask_classes is not None:  # (absent for the default, as above)
            spec["mask"] = self.mask
            spec["mask_classes"] = list(self.mask_classes) if self.mask_classes is not None else None
        if self.composite != "none":
            spec["composite"] = self.composite
        return spec

    def replace(self, **changes: Any) -> JobConfig:
        return dataclasses.replace(self, **changes)


def redact_url(url: str) -> str:
    """``http://user:token@host/x`` -> ``http://***@host/x``: credentials never reach attributes, logs or errors."""
    return re.sub(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@", r"\1***@", url) if isinstance(url, str) else url


def validate_out(out: str) -> None:
    scheme = out.split("://", 1)[0].lower() if "://" in out else ""
    if scheme in ("http", "https"):
        raise ConfigError(f"--out {redact_url(out)}: cannot write over HTTP; use a local path or s3://bucket/key.zarr")
    if scheme in ("s3", "s3a") and not out.split("://", 1)[1].strip("/"):
        raise ConfigError(f"--out {out}: name a bucket and key, e.g. s3://bucket/area.zarr")
    if scheme in ("s3", "s3a") and "/" not in out.split("://", 1)[1].strip("/"):
        raise ConfigError(f"--out {out}: a bucket root is not a store; add a key, e.g. {out.rstrip('/')}/area.zarr")


def validate_bbox(bbox: tuple[float, ...]) -> None:
    if len(bbox) != 4:
        raise ConfigError(f"--bbox needs 4 numbers minlon,minlat,maxlon,maxlat; got {len(bbox)}")
    w, s, e, n = bbox
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
        raise ConfigError(f"--bbox {list(bbox)} is outside lon [-180, 180] / lat [-90, 90]")
    if s >= n:
        raise ConfigError(f"--bbox {list(bbox)} is empty: it must be minlon,minlat,maxlon,maxlat with minlat < maxlat")
    if w > e:
        raise ConfigError(f"--bbox {list(bbox)} crosses the antimeridian (minlon > maxlon), which is not supported: "
                          "run the two sides as separate jobs")
    if w == e:
        raise ConfigError(f"--bbox {list(bbox)} is empty: minlon equals maxlon")


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
            f"--datetime {value!r} is not a time window: use e.g. 2020-02-01/2020-02-28, 2020-02-19T00:00:00Z, "
            "last-month, last-7-days, yesterday or P1M/..") from None
    if all(i is None for i in instants):
        raise ConfigError(f"--datetime {value!r} is open at both ends: give at least a start or an end")
    if len(instants) == 2 and None not in instants and instants[0] > instants[1]:  # type: ignore[operator]
        raise ConfigError(f"--datetime {value!r} ends before it starts")


def parse_bbox(text: Any) -> tuple[float, float, float, float]:
    if isinstance(text, (list, tuple)):
        text = ",".join(str(v) for v in text)
    if not isinstance(text, str):
        raise ConfigError(f"bbox must be four numbers minlon,minlat,maxlon,maxlat, got {type(text).__name__}")
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--bbox {text!r} is not four comma-separated numbers minlon,minlat,maxlon,maxlat") from None
    validate_bbox(vals)
    return vals  # type: ignore[return-value]


def parse_bands(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, (str, list, tuple)):
        raise ConfigError(f"bands must be a list or comma-separated names like B02,B03,B04, got {value!r}")
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(b).strip().upper() for b in items if str(b).strip())


def read_geometry(path: str) -> dict[str, Any]:
    """A GeoJSON file holding a geometry, a Feature or a FeatureCollection (geometries are unioned by the API)."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"--geometry {path}: cannot read GeoJSON ({err.__class__.__name__}: {err})") from None
    return geometry_from(obj, f"--geometry {path}")


def _area(geom: Any, where: str) -> dict[str, Any]:
    if not isinstance(geom, dict) or geom.get("type") not in ("Polygon", "MultiPolygon"):
        kind = geom.get("type") if isinstance(geom, dict) else type(geom).__name__
        raise ConfigError(f"{where}: needs a Polygon or MultiPolygon area, got {kind}"
                          f"{' (a point or line has no area: buffer it into a polygon)' if kind in ('Point', 'MultiPoint', 'LineString', 'MultiLineString') else ''}")
    if not isinstance(geom.get("coordinates"), list) or not geom["coordinates"]:
        raise ConfigError(f"{where}: the {geom['type']} has no coordinates")
    return geom


def geometry_from(obj: Any, where: str) -> dict[str, Any]:
    """A Polygon/MultiPolygon, a Feature or a FeatureCollection (unioned into a MultiPolygon) -> one geometry."""
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: expected a GeoJSON object (Polygon, Feature or FeatureCollection), "
                          f"got a {type(obj).__name__}")
    if obj.get("type") == "FeatureCollection":
        feats = obj.get("features") or []
        geoms = [_area(f.get("geometry") if isinstance(f, dict) else None, f"{where}, feature {i}")
                 for i, f in enumerate(feats)]
        if not geoms:
            raise ConfigError(f"{where}: the FeatureCollection has no features")
        if len(geoms) == 1:
            return geoms[0]
        polys: list[Any] = []
        for g in geoms:
            polys += [g["coordinates"]] if g["type"] == "Polygon" else list(g["coordinates"])
        return {"type": "MultiPolygon", "coordinates": polys}
    if obj.get("type") == "Feature":
        if obj.get("geometry") is None:
            raise ConfigError(f"{where}: the Feature has no geometry")
        return _area(obj["geometry"], where)
    return _area(obj, where)


_FIELDS = {f.name for f in dataclasses.fields(JobConfig)}


_TYPES: dict[str, type] = {"out": str, "catalog": str, "collection": str, "datetime": str, "model": str,
                           "scheduler": str, "cluster": str, "dtype": str, "quicklook": str, "max_cloud": float,
                           "max_output_gb": float, "lease_ttl": float, "scale": int, "ensemble": int, "chunk": int,
                           "limit": int, "task_retries": int, "overwrite": bool, "now": str,
                           "append_time": bool, "zarr_format": int,
                           "mask": str, "composite": str}
# read once, here at the edge; flags and the YAML file override them
_ENV = {"lease_ttl": "S2SR_LOCK_TTL", "task_retries": "S2SR_TASK_RETRIES"}


def _coerce(name: str, value: Any, where: str) -> Any:
    want = _TYPES.get(name)
    if value is None or want is None:
        return value
    if want is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: {name} must be true or false, got {value!r}")
    if want is str:
        if isinstance(value, (dict, list, bool)) or (name in ("out", "catalog", "collection") and
                                                      not isinstance(value, str)):
            raise ConfigError(f"{where}: {name} must be a string, got {value!r}")
        return str(value)
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise ConfigError(f"{where}: {name} must be a number, got {value!r}")
    try:
        number = float(value)
        if want is int:
            if number != int(number) or abs(number) > 1e15:
                raise ValueError
            return int(number)
        return number
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: {name} must be {'an integer' if want is int else 'a number'}, got {value!r}"
                          ) from None


def _read_yaml(path: str) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"--config {path}: not UTF-8 text; save the job file as UTF-8") from None
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"--config {path}: cannot read YAML ({err.__class__.__name__})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"--config {path}: expected a mapping of job fields, got a {type(loaded).__name__}")
    bad = [k for k in loaded if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"--config {path}: field names must be text, got {bad[0]!r}")
    data = {k.replace("-", "_"): v for k, v in loaded.items()}
    unknown = set(data) - _FIELDS
    if unknown:
        raise ConfigError(f"--config {path}: unknown field(s) {', '.join(sorted(unknown))}")
    return data


def load_config(path: str | None, overrides: dict[str, Any], environ: dict[str, str] | None = None) -> JobConfig:
    """Merge environment defaults, a YAML job file and CLI flags (flags win) into a validated JobConfig."""
    import os

    env = os.environ if environ is None else environ
    data: dict[str, Any] = {k: env[v] for k, v in _ENV.items() if env.get(v)}
    where = {k: f"environment {v}" for k, v in _ENV.items()}
    if path:
        loaded = _read_yaml(path)
        data.update(loaded)
        where.update({k: f"--config {path}" for k in loaded})
    flags = {k: v for k, v in overrides.items() if v is not None}
    data.update(flags)
    where.update({k: f"--{k.replace('_', '-')}" for k in flags})
    data = {k: _coerce(k, v, where.get(k, k)) for k, v in data.items()}
    if data.get("bbox") is not None:
        data["bbox"] = parse_bbox(data["bbox"])
    if isinstance(data.get("geometry"), str):
        data["geometry"] = read_geometry(data["geometry"])
    elif data.get("geometry") is not None:
        data["geometry"] = geometry_from(data["geometry"], "geometry")
    if "bands" in data:
        data["bands"] = parse_bands(data["bands"])
    if "out" not in data:
        raise ConfigError("no output given: pass --out PATH or s3://bucket/prefix.zarr")
    return JobConfig(**data)


def env_number(name: str, default: float, kind: type = float) -> Any:
    """A positive number from the environment variable ``name`` (``default`` when unset), as ``kind``; anything
    else is a ConfigError that names the variable."""
    import os

    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return kind(default)
    try:
        value = kind(raw.strip())
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise ConfigError(f"{name}={raw!r}: give a positive {'whole ' if kind is int else ''}number, or unset it "
                          f"(default {default})")
    return value
