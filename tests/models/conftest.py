"""Model fixtures: two small synthetic scenes (train on one, test on the other) and fitted models."""

from __future__ import annotations

import pytest

from models.construction import BuildingModel, train_buildings
from models.crop_health import HealthModel, train_health
from model_scene import Scene, make_scene


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
