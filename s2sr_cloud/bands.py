"""Canonical Sentinel-2 L2A band table and the asset keys different catalogs use for each band."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Band:
    name: str  # canonical: B01 ... B12, B8A
    resolution: int  # native ground sampling, metres
    wavelength_nm: int
    earth_search: str  # earth-search v1 asset key


BANDS: tuple[Band, ...] = (
    Band("B01", 60, 443, "coastal"),
    Band("B02", 10, 490, "blue"),
    Band("B03", 10, 560, "green"),
    Band("B04", 10, 665, "red"),
    Band("B05", 20, 705, "rededge1"),
    Band("B06", 20, 740, "rededge2"),
    Band("B07", 20, 783, "rededge3"),
    Band("B08", 10, 842, "nir"),
    Band("B8A", 20, 865, "nir08"),
    Band("B09", 60, 945, "nir09"),
    Band("B11", 20, 1610, "swir16"),
    Band("B12", 20, 2190, "swir22"),
)
BY_NAME = {b.name: b for b in BANDS}
ALL_BANDS: tuple[str, ...] = tuple(b.name for b in BANDS)
RGB = ("B04", "B03", "B02")
# the band groups by native resolution (metres), in band-table order: the one home of this split
BY_RESOLUTION: dict[int, tuple[str, ...]] = {r: tuple(b.name for b in BANDS if b.resolution == r) for r in (10, 20, 60)}
# grid pixels per native pixel of each band on the 10 m grid, in ALL_BANDS order
FACTORS_10M: tuple[int, ...] = tuple(b.resolution // 10 for b in BANDS)


def asset_keys(name: str) -> tuple[str, ...]:
    """Asset keys that may carry canonical band ``name``: Planetary Computer / stactools use the band name,
    earth-search v1 its common name."""
    b = BY_NAME[name]
    return (b.name, b.earth_search, b.name.lower())

# variable attribute naming how many grid pixels one native pixel of the band spans
FACTOR_ATTR = "native_factor"


# ESA L2A scene classification (SCL) classes
SCL_CLASSES = {0: "no data", 1: "saturated or defective", 2: "dark area pixels", 3: "cloud shadows",
               4: "vegetation", 5: "not vegetated", 6: "water", 7: "unclassified", 8: "cloud medium probability",
               9: "cloud high probability", 10: "thin cirrus", 11: "snow or ice"}
DEFAULT_MASK_CLASSES = (0, 1, 3, 8, 9, 10)  # snow (11) is optional: --mask-classes 0,1,3,8,9,10,11
MASK_MODES = ("scl", "none")


def parse_mask_classes(value: Any) -> tuple[int, ...]:
    """``"0,1,3"`` or ``[0, 1, 3]`` -> (0, 1, 3), each an SCL class 0-11."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        out = tuple(sorted({int(str(p).strip()) for p in parts if str(p).strip() != ""}))
    except ValueError:
        raise ConfigError(f"--mask-classes takes SCL class numbers 0-11 separated by commas, got {value!r}") from None
    if not out or any(c not in SCL_CLASSES for c in out):
        raise ConfigError(f"--mask-classes takes SCL class numbers 0-11 separated by commas, got {value!r}")
    return out
