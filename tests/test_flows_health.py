"""The flows' choice of crop-health classifier, and a multispectral flight through `process`."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

sys.path.insert(0, str(Path(__file__).parent / "models"))  # model_scene
from model_scene import make_scene  # noqa: E402

import flows  # noqa: E402
from core.errors import InputError  # noqa: E402
from core.settings import load_settings  # noqa: E402
from models.crop_health import train_health  # noqa: E402
from models.training import save_model  # noqa: E402
from models.windows import raster_ref  # noqa: E402
from pipeline.ingest import ingest_with_settings  # noqa: E402

MICASENSE = "drone_photos/micasense_rededge"


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    return make_scene(tmp_path_factory.mktemp("scene") / "ortho.tif", seed=6)


@pytest.fixture(scope="module")
def models(scene, tmp_path_factory: pytest.TempPathFactory) -> flows.Models:
    folder = tmp_path_factory.mktemp("models")
    health = save_model(
        train_health(scene.image, scene.health, max_samples_per_class=500), folder / "h.joblib"
    )
    return flows.Models(health=health, buildings=folder / "unused.joblib")


def _farms(scene) -> gpd.GeoDataFrame:
    return scene.health.assign(parcel_id=["P1", "P2", "P3"], land_use="cereal")


def test_without_labels_the_flows_use_the_synthetic_model_or_say_unsupervised(
    scene, models, tmp_path: Path
) -> None:
    mosaic = raster_ref(scene.image)
    settings = load_settings(workspace=tmp_path)
    model, source = flows.health_model(models, mosaic, _farms(scene), settings)
    assert model.training == "supervised" and source == "trained on a synthetic world"

    settings = load_settings(workspace=tmp_path, health_without_labels="unsupervised")
    model, source = flows.health_model(models, mosaic, _farms(scene), settings)
    assert model.training == "unsupervised" and "accuracy unknown" in source


def test_agronomist_labels_train_the_epochs_model_on_its_own_mosaic(
    scene, models, tmp_path: Path
) -> None:
    labels = tmp_path / "visite.gpkg"
    scene.health.rename(columns={"health": "etat"}).to_file(labels)
    mosaic = raster_ref(scene.image)
    settings = load_settings(workspace=tmp_path, health_labels=labels, health_class_column="etat")
    model, source = flows.health_model(models, mosaic, _farms(scene), settings)
    assert model.training == "supervised" and source == "trained on visite.gpkg"

    far = scene.health.assign(geometry=scene.health.geometry.translate(5000, 0))
    far.rename(columns={"health": "etat"}).to_file(tmp_path / "far.gpkg")
    settings = settings.model_copy(update={"health_labels": tmp_path / "far.gpkg"})
    with pytest.raises(InputError, match="far.gpkg"):
        flows.health_model(models, mosaic, _farms(scene), settings)


@pytest.mark.slow
def test_a_multispectral_flight_publishes_ndvi_statistics_and_zones(
    shared_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frames = tmp_path / "rededge"
    frames.mkdir()
    for path in sorted((shared_data / MICASENSE).glob("IMG_0001_*.tif")):
        (frames / path.name).symlink_to(path)
    settings = load_settings(
        workspace=tmp_path / "workspace", crs="EPSG:32611", ground_elevation_m=101.9
    )
    first = ingest_with_settings(frames, settings).images[0]
    east, north = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32611", always_xy=True).transform(
        first.lon_deg, first.lat_deg
    )
    parcels = gpd.GeoDataFrame(
        {"parcel_id": ["A", "B"], "commune": "x", "land_use": ["orchard", "cereal"]},
        geometry=[
            box(east - 20, north - 15, east, north + 15),
            box(east, north - 15, east + 20, north + 15),
        ],
        crs="EPSG:32611",
    )
    parcels.to_file(tmp_path / "parcels.gpkg", layer="parcels")
    (tmp_path / "permits.csv").write_text(
        "permit_id,parcel_id,status,issued,expires,permitted_footprint_m2\n"
    )

    dsm = tmp_path / "dsm.tif"
    profile = dict(driver="GTiff", width=100, height=100, count=1, dtype="float32")
    at = Affine.translation(east - 50, north + 50) @ Affine.scale(1.0, -1.0)
    with rasterio.open(dsm, "w", **profile, crs="EPSG:32611", transform=at) as dst:
        dst.write(np.full((1, 100, 100), 102.0, dtype="float32"))

    result = flows.process(
        frames, tmp_path / "parcels.gpkg", tmp_path / "permits.csv", "rededge",
        date(2026, 5, 1), settings, dsm=dsm,
    )  # fmt: skip

    assert "multispectral flight; the surface model" in caplog.text and "not used" in caplog.text
    assert result.dsm is None and not (result.out_dir / flows.EPOCH_DSM).exists()

    with rasterio.open(result.mosaic.path) as src:
        assert src.count == 5 and "nir" in src.descriptions
    stats = gpd.read_file(result.geopackage, layer="crop_health_parcels")
    assert list(stats["parcel_id"]) == ["A", "B"]
    assert (stats["ndvi_mean"] > 0.2).all() and (stats["ndvi_mean"] < 1.0).all()
    zones = gpd.read_file(result.geopackage, layer="management_zones")
    assert set(zones["parcel_id"]) == {"A", "B"}
    assert result.buildings == 0 and result.flags == 0
