"""Band mapping and reflectance scaling on REAL recorded STAC items (earth-search v1, Planetary Computer)."""

import json

import pystac
import pytest

from s2sr_cloud.bands import ALL_BANDS, BY_NAME
from s2sr_cloud.catalog.items import describe_item, normalize_item
from s2sr_cloud.errors import AssetError

from .conftest import need_shared


def _item(name: str) -> pystac.Item:
    return pystac.Item.from_dict(json.loads(need_shared("stac", "items", name).read_text()))


def test_earth_search_c1_keys_and_declared_offset():
    item = _item("earthsearch-v1_sentinel-2-c1-l2a_S2B_T24MWV_20250731T130245_L2A.json")
    info = describe_item(item, ALL_BANDS)
    assert info.epsg == 32724
    # baseline 05.11: raster:bands declares offset -0.1 on every band
    assert {b: s.offset for b, s in info.scaling.items()} == {b: -0.1 for b in ALL_BANDS}
    assert all(s.scale == 1e-4 for s in info.scaling.values())
    norm = normalize_item(item, ALL_BANDS)
    assert sorted(norm.assets) == sorted(ALL_BANDS)
    assert norm.assets["B8A"].href.endswith("/B8A.tif")  # nir08 -> B8A
    assert norm.assets["B01"].href.endswith("/B01.tif")  # coastal -> B01
    assert info.resolution["B05"] == 20 and info.resolution["B02"] == 10 and info.resolution["B09"] == 60


def test_planetary_computer_keys_without_offset_before_baseline_4():
    item = _item("planetarycomputer_S2A_MSIL2A_20190101T000001_R116_T60VUK_20201007T214652.json")
    info = describe_item(item, ALL_BANDS)
    assert all(s.offset == 0.0 and s.scale == 1e-4 for s in info.scaling.values())
    assert info.resolution == {b: BY_NAME[b].resolution for b in ALL_BANDS}  # every band at its native gsd
    assert info.resolution["B01"] == 60 and info.resolution["B11"] == 20 and info.resolution["B04"] == 10
    assert normalize_item(item, ALL_BANDS).assets["B02"].href.endswith("_B02_10m.tif")


def test_planetary_computer_baseline_4_gets_offset_from_the_item():
    d = json.loads(need_shared("stac", "items", "planetarycomputer_S2A_MSIL2A_20190101T000001_R116_T60VUK_"
                                                "20201007T214652.json").read_text())
    d["properties"]["s2:processing_baseline"] = "04.00"
    info = describe_item(pystac.Item.from_dict(d), ALL_BANDS)
    assert all(s.offset == pytest.approx(-0.1) for s in info.scaling.values())


def test_all_33_recorded_pc_items_map_every_band():
    fc = json.loads(need_shared("stac", "items", "planetarycomputer_sentinel-2-l2a_search_2019-01-01_33items"
                                                 ".geojson").read_text())
    for feat in fc["features"]:
        info = describe_item(pystac.Item.from_dict(feat), ALL_BANDS)
        assert set(info.scaling) == set(ALL_BANDS)


def test_sample_item_is_earth_search_v1_with_zero_offset():
    from s2sr_cloud.catalog.server import sample_items

    item = pystac.Item.from_dict(sample_items()[0])
    info = describe_item(item, ALL_BANDS)
    assert item.properties["s2:processing_baseline"] == "02.14"
    assert all(s.offset == 0.0 for s in info.scaling.values())
    assert info.resolution["B02"] == 100 and info.resolution["B05"] == 200 and info.resolution["B01"] == 600


def test_missing_asset_is_a_clear_error():
    item = _item("earthsearch-v1_sentinel-2-c1-l2a_S2B_T24MWV_20250731T130245_L2A.json")
    del item.assets["rededge2"]
    with pytest.raises(AssetError, match="no asset for band B06.*rededge2"):
        describe_item(item, ALL_BANDS)
