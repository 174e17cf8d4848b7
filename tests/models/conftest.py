"""Model fixtures: two small synthetic scenes (train on one, test on the other), fitted models."""

from __future__ import annotations

import geopandas as gpd
import pytest
from model_scene import Scene, make_scene

from core.types import Raster
from models.construction import BuildingModel, detect_buildings, train_buildings
from models.crop_health import HealthModel, classify_health, train_health


@pytest.fixture(scope="package")
def train_scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    return make_scene(tmp_path_factory.mktemp("train") / "ortho.tif", seed=1)


@pytest.fixture(scope="package")
def test_scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    """A different seed, with an alpha band masking its 40 leftmost columns."""
    return make_scene(tmp_path_factory.mktemp("test") / "ortho.tif", seed=2, alpha=True)


@pytest.fixture(scope="package")
def health_model(train_scene: Scene) -> HealthModel:
    return train_health(train_scene.image, train_scene.health, max_samples_per_class=2000)


@pytest.fixture(scope="package")
def building_model(train_scene: Scene) -> BuildingModel:
    return train_buildings(train_scene.image, train_scene.buildings, max_samples_per_class=2000)


@pytest.fixture(scope="package")
def health_raster(
    health_model: HealthModel, test_scene: Scene, tmp_path_factory: pytest.TempPathFactory
) -> Raster:
    """The held-out scene classified by ``health_model`` (no crop mask)."""
    out = tmp_path_factory.mktemp("health") / "health.tif"
    return classify_health(health_model, test_scene.image, out)


@pytest.fixture(scope="package")
def detections(building_model: BuildingModel, test_scene: Scene) -> gpd.GeoDataFrame:
    """Buildings detected on the held-out scene with the default options."""
    return detect_buildings(building_model, test_scene.image)
