"""The flows' own bookkeeping: the epoch manifest, the image catalogue, how flags are scored."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from prefect import flow

import flows
from core.errors import InputError
from core.settings import Settings, load_settings
from core.stages import StageBook
from core.types import IngestResult
from models.training import DEFAULT_BUILDINGS_MODEL, DEFAULT_HEALTH_MODEL
from pipeline.stac import open_catalog


def _epoch(workspace: Path, name: str, day: date) -> None:
    folder = workspace / name
    folder.mkdir(parents=True)
    (folder / "raqib.gpkg").write_bytes(b"")
    (folder / "mosaic.tif").write_bytes(b"")
    flows.record_epoch(workspace, name, day, folder / "raqib.gpkg", folder / "mosaic.tif")


def test_the_previous_epoch_is_the_latest_one_before(tmp_path: Path) -> None:
    _epoch(tmp_path, "winter", date(2026, 1, 15))
    _epoch(tmp_path, "spring", date(2026, 4, 1))
    _epoch(tmp_path, "summer", date(2026, 7, 10))
    assert flows.previous_epoch(tmp_path, "summer", date(2026, 7, 10))["captured_on"] == (
        "2026-04-01"
    )
    assert flows.previous_epoch(tmp_path, "winter", date(2026, 1, 15)) is None
    assert sorted(flows.read_manifest(tmp_path)) == ["spring", "summer", "winter"]


def test_a_manifest_pointing_at_deleted_outputs_says_so(tmp_path: Path) -> None:
    _epoch(tmp_path, "winter", date(2026, 1, 15))
    (tmp_path / "winter" / "mosaic.tif").unlink()
    with pytest.raises(InputError, match="epochs.json.*mosaic.tif.*no longer exists"):
        flows.previous_epoch(tmp_path, "summer", date(2026, 7, 10))


def _dsm(path: Path, height_m: float, driver: str = "GTiff") -> Path:
    """A 10 x 10 surface model, 0.5 m pixels, in EPSG:32630."""
    transform = Affine(0.5, 0, 564000.0, 0, -0.5, 3865400.0)
    profile = {"width": 10, "height": 10, "count": 1, "dtype": "float32", "crs": "EPSG:32630"}
    with rasterio.open(path, "w", driver=driver, transform=transform, **profile) as dst:
        dst.write(np.full((10, 10), height_m, np.float32), 1)
    return path


def test_the_epochs_surface_model_is_kept_once_and_listed_for_the_next_epoch(
    tmp_path: Path,
) -> None:
    book, folder = StageBook(tmp_path / "winter"), tmp_path / "winter"
    dsm = _dsm(tmp_path / "dsm.tif", 120.0)
    kept = flows.keep_surface_model(book, dsm, folder)
    assert kept == folder / flows.EPOCH_DSM and kept.read_bytes() == dsm.read_bytes()
    written = kept.stat().st_mtime_ns
    assert flows.keep_surface_model(StageBook(folder), dsm, folder).stat().st_mtime_ns == written
    _dsm(dsm, 123.0)  # another DSM under the same name is copied again
    assert flows.keep_surface_model(StageBook(folder), dsm, folder).read_bytes() == dsm.read_bytes()
    erdas = _dsm(tmp_path / "lidar.img", 80.0, driver="HFA")  # any raster becomes a GeoTIFF
    with rasterio.open(flows.keep_surface_model(StageBook(folder), erdas, folder)) as copy:
        assert copy.driver == "GTiff" and copy.read(1).min() == 80.0

    flows.record_epoch(tmp_path, "winter", date(2026, 1, 15), folder / "g.gpkg", dsm, dsm=kept)
    entry = flows.read_manifest(tmp_path)["winter"]
    assert flows.earlier_surface_model(entry) == kept
    kept.unlink()  # gone: changes are confirmed without heights
    assert flows.earlier_surface_model(entry) is None


@flow(name="ingest-epochs", validate_parameters=False)
def ingest_epochs(flights: dict[str, Path], settings: Settings) -> list[IngestResult]:
    """The flows' ingest task, once per epoch's photo folder."""
    return [flows.ingest_task(folder, epoch, settings) for epoch, folder in flights.items()]


@pytest.mark.slow
def test_ingest_task_adds_each_epoch_to_the_workspace_catalogue_once(
    prefect_server: None, shared_data: Path, tmp_path: Path
) -> None:
    flights = {}
    for capture, epoch in (("IMG_0000", "epoch-a"), ("IMG_0001", "epoch-b")):
        flights[epoch] = tmp_path / epoch
        flights[epoch].mkdir()
        for band_file in (shared_data / "drone_photos/micasense_rededge").glob(f"{capture}_*"):
            shutil.copy(band_file, flights[epoch])
    settings = load_settings(workspace=tmp_path / "ws", ground_elevation_m=0.0)
    catalog = tmp_path / "ws" / "catalog"

    assert [len(r.images) for r in ingest_epochs(flights, settings)] == [5, 5]
    stac_files = {p: p.read_bytes() for p in catalog.rglob("*.json")}
    (rerun,) = ingest_epochs({"epoch-a": flights["epoch-a"]}, settings)

    assert len(rerun.images) == 5
    assert {p: p.read_bytes() for p in catalog.rglob("*.json")} == stac_files
    images = gpd.read_file(catalog / "images.gpkg", layer="images")
    assert images.groupby("collection").size().to_dict() == {"epoch-a": 5, "epoch-b": 5}
    stac = open_catalog(catalog / "stac")
    items = {c.id: [i.id for i in c.get_items()] for c in stac.get_children()}
    assert {epoch: len(ids) for epoch, ids in items.items()} == {"epoch-a": 1, "epoch-b": 1}
    assert json.loads((catalog / "stac/catalog.json").read_text())["id"] == "raqib-images"


def test_a_new_workspace_gets_the_shipped_models_once(tmp_path: Path) -> None:
    settings = load_settings(workspace=tmp_path / "ws")
    models = flows.default_models(settings)
    assert models.buildings.read_bytes() == DEFAULT_BUILDINGS_MODEL.read_bytes()
    assert models.health.read_bytes() == DEFAULT_HEALTH_MODEL.read_bytes()
    models.buildings.write_bytes(b"the workspace's own")
    assert flows.default_models(settings).buildings.read_bytes() == b"the workspace's own"
