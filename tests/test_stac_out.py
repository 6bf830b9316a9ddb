"""The STAC Collection next to a run's output: valid STAC 1.1 offline, and it leads to the data.

The item's asset href is relative to the item file: the test opens the Zarr through it (also after moving the
catalog and the store together), with the xarray-assets open keyword arguments the item carries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pystac
import pytest
import xarray as xr

from s2sr_cloud.bands import BY_NAME

SCHEMAS = Path(__file__).resolve().parent / "data" / "stac-schemas"
ITEM = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json"
COLLECTION = "https://schemas.stacspec.org/v1.1.0/collection-spec/json-schema/collection.json"


def _validator(uri: str):
    """A Draft 7 validator for the bundled schema ``uri`` whose $refs resolve only to bundled files (no network)."""
    from jsonschema import Draft7Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    resources = []
    for f in SCHEMAS.rglob("*.json"):
        url = "https://" + f.relative_to(SCHEMAS).as_posix()
        resources.append((url, Resource.from_contents(json.loads(f.read_text()), default_specification=DRAFT7)))

    def refuse(uri: str):
        raise LookupError(f"{uri} is not bundled in {SCHEMAS} (offline validation)")

    registry = Registry(retrieve=refuse).with_resources(resources)
    return Draft7Validator(registry.contents(uri), registry=registry)


def _validate(doc: dict, uri: str) -> None:
    errors = sorted(_validator(uri).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    for ext in doc.get("stac_extensions", []):  # extension schemas, where bundled (see data/stac-schemas/README)
        if (SCHEMAS / ext.removeprefix("https://")).exists():
            errors = list(_validator(ext).iter_errors(doc))
            assert not errors, f"{ext}: " + "\n".join(e.message for e in errors[:10])


@pytest.fixture(scope="module")
def run(tmp_path_factory, dask_cluster) -> Path:
    """A real run of the embedded scene (bicubic: fast); the CLI (in this process, on the shared cluster) writes the
    store and its STAC."""
    from s2sr_cloud.cli import main

    root = tmp_path_factory.mktemp("stac")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert main(["run", "--out", str(root / "demo.zarr"), "--model", "bicubic", "--scale", "2", "--no-progress",
                     "--scheduler", dask_cluster.scheduler.address]) == 0
    return root


def test_the_offline_validator_rejects_a_broken_item():
    bad = {"type": "Feature", "stac_version": "1.1.0", "id": "x", "geometry": None, "links": [],
           "assets": {"a": {"href": 3}}, "properties": {}}
    assert list(_validator(ITEM).iter_errors(bad))  # no datetime, href not a string
    with pytest.raises(LookupError):
        _validator("https://stac-extensions.github.io/nothing/v9.9.9/schema.json")


def test_stac_collection_and_item_are_valid_and_open_the_store(run, tmp_path):
    from s2sr_cloud import open_output

    coll_path = run / "demo_stac" / "collection.json"
    coll_doc = json.loads(coll_path.read_text())
    _validate(coll_doc, COLLECTION)
    assert coll_doc["license"] == "other" and any(link["rel"] == "license" for link in coll_doc["links"])

    coll = pystac.Collection.from_file(str(coll_path))
    (item,) = list(coll.get_items())
    item_doc = json.loads(Path(item.get_self_href()).read_text())
    _validate(item_doc, ITEM)

    asset_doc = item_doc["assets"]["zarr"]
    assert not asset_doc["href"].startswith(("/", "file:")), asset_doc["href"]  # relative to the item file
    assert asset_doc["type"] == "application/vnd.zarr"
    asset = item.assets["zarr"]
    assert Path(asset.get_absolute_href()) == run / "demo.zarr"

    ds = open_output(str(run / "demo.zarr"))
    opened = xr.open_dataset(asset.get_absolute_href(), **asset.extra_fields["xarray:open_kwargs"])
    # the same stored DN; open_output decodes to float32, plain xarray to float64
    np.testing.assert_array_equal(opened.B04.values.astype(np.float32), ds.B04.values)

    # the store moves with its catalog: the relative href still resolves
    moved = tmp_path / "elsewhere"
    shutil.copytree(run, moved, ignore=shutil.ignore_patterns("*.lock"))
    mitem = next(pystac.Collection.from_file(str(moved / "demo_stac" / "collection.json")).get_items())
    mas = mitem.assets["zarr"]
    assert Path(mas.get_absolute_href()) == moved / "demo.zarr"
    again = xr.open_dataset(mas.get_absolute_href(), **mas.extra_fields["xarray:open_kwargs"])
    np.testing.assert_array_equal(again.B02.values.astype(np.float32), ds.B02.values)

    # projection v2, read back by pystac's extension class
    from pystac.extensions.eo import EOExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import RasterExtension
    from pystac.extensions.xarray_assets import XarrayAssetsExtension

    assert "https://stac-extensions.github.io/projection/v2.0.0/schema.json" in item_doc["stac_extensions"]
    assert "proj:epsg" not in item_doc["properties"]
    proj = ProjectionExtension.ext(item)
    assert proj.code == f"EPSG:{ds.rio.crs.to_epsg()}"
    assert proj.shape == [ds.sizes["y"], ds.sizes["x"]]
    assert tuple(proj.transform) == pytest.approx(tuple(ds.rio.transform())[:6])
    assert item.properties["gsd"] == pytest.approx(abs(ds.rio.resolution()[0]))

    # bands with wavelengths (micrometres) and their storage
    eo = EOExtension.ext(asset).bands
    assert [b.name for b in eo] == list(ds.attrs["bands"])
    for b in eo:
        assert b.center_wavelength == pytest.approx(BY_NAME[b.name].wavelength_nm / 1000)
        assert b.common_name
    raster = RasterExtension.ext(asset).bands
    assert len(raster) == len(eo)
    if ds.B04.encoding.get("dtype") == np.dtype("uint16"):
        assert str(getattr(raster[0].data_type, "value", raster[0].data_type)) == "uint16" and raster[0].scale == pytest.approx(1e-4)
        assert raster[0].nodata == 65535

    assert XarrayAssetsExtension.ext(asset).open_kwargs["engine"] == "zarr"

    # the model that ran, not the option's value
    assert item.properties["s2sr:model"] == ds.attrs["model"] == "bicubic"
    assert item.properties["s2sr:model_sha256"] == ds.attrs.get("model_sha256")  # null for bicubic
