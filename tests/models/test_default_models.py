"""The models Raqib ships load offline, are what they claim, and fit the installed libraries."""

import sklearn

from models.construction import BUILDING_CLASSES
from models.crop_health import HEALTH_CLASSES
from models.features import BUILDING_FEATURES, CROP_FEATURES
from models.training import DEFAULT_BUILDINGS_MODEL, DEFAULT_HEALTH_MODEL, load_model


def test_the_shipped_building_model_loads_with_its_features():
    model = load_model(DEFAULT_BUILDINGS_MODEL)
    assert model.classes == BUILDING_CLASSES
    assert model.features == BUILDING_FEATURES
    assert model.training == "supervised"
    assert model.sklearn_version == sklearn.__version__  # a pickle of another version may lie


def test_the_shipped_health_model_loads_with_its_features():
    model = load_model(DEFAULT_HEALTH_MODEL)
    assert model.classes == HEALTH_CLASSES
    assert model.features == CROP_FEATURES
    assert model.sklearn_version == sklearn.__version__


def test_the_shipped_models_are_small():
    for path in (DEFAULT_BUILDINGS_MODEL, DEFAULT_HEALTH_MODEL):
        assert path.stat().st_size < 2_000_000, path
