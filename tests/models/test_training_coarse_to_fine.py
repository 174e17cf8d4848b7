"""Coarse-to-fine prediction: the pixels it predicts are the full prediction's, its masks agree."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from rasterio.windows import Window, from_bounds

from models.construction import hysteresis
from models.features import FeatureSet
from models.nodata import fill_from_nearest
from models.sun import image_sun, shadow_px_per_m
from models.training import (
    DEFAULT_BUILDINGS_MODEL,
    PixelModel,
    coarse_to_fine,
    load_model,
    pixel_probabilities,
    predict_pixels,
)
from models.windows import open_rgb, read_rgb, working_grid

THRESHOLDS = (0.25, 0.5)  # detect_buildings' defaults


@pytest.fixture(scope="module")
def town(tmp_path_factory, world_copy):
    """The shipped building model, the feature planes and valid mask of a 600 x 800 px window
    over the town of a small seeded world's summer orthophoto."""
    world = world_copy(tmp_path_factory.mktemp("world"), seed=7, width_m=200, height_m=160)
    model = load_model(DEFAULT_BUILDINGS_MODEL)
    truth = gpd.read_file(world.paths.truth, layer="buildings_epoch2")
    with open_rgb(world.paths.ortho("epoch2")) as src:
        around = from_bounds(*truth.total_bounds, transform=src.transform).round_offsets()
        window = Window(around.col_off, around.row_off, 600, 800).intersection(
            Window(0, 0, src.width, src.height)
        )
        rgb, valid = read_rgb(src, window)
        shadow = shadow_px_per_m(image_sun(src), src, working_grid(src, None))
    valid[:, :50] = False  # a strip without data, as along a mosaic's edge
    planes = model.features.planes(fill_from_nearest(rgb, valid), shadow_px_per_m=shadow)
    return model, planes, valid


def test_coarse_to_fine_is_the_full_prediction_where_it_predicts_and_its_masks_agree(town):
    model, planes, valid = town
    full = np.zeros((2, *valid.shape), np.float32)
    full[:, valid] = predict_pixels(model, planes[:, valid])

    proba, predicted = coarse_to_fine(model, planes, valid, 4, THRESHOLDS)

    assert not (predicted & ~valid).any()
    np.testing.assert_array_equal(proba[:, predicted], full[:, predicted])
    assert (proba[:, ~valid] == 0).all()
    assert predicted[::4, 52::4].all()  # the coarse grid
    assert predicted.sum() < 0.4 * valid.sum()
    a, b = (hysteresis(p[0], valid, THRESHOLDS[1], THRESHOLDS[0]) > 0 for p in (full, proba))
    assert a.sum() > 20_000  # the window holds buildings
    assert (a & b).sum() / (a | b).sum() >= 0.98


class BrightnessRamp:
    """A 'classifier' whose probability of code 1 is a pixel's first feature: a linear field."""

    classes_ = np.array([1, 2])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.column_stack([x[:, 0], 1.0 - x[:, 0]])


def test_interpolation_between_coarse_pixels_is_aligned_and_exact_on_a_linear_field():
    rows, cols = np.mgrid[0:37, 0:50]
    red = (rows + 2 * cols).astype(np.float32) / 150.0  # a plane: bilinear makes no error
    planes = red[None]
    model = PixelModel(BrightnessRamp(), ("ramp", "rest"), FeatureSet((3,), (3,), 2), "", "")
    valid = np.ones(red.shape, bool)

    proba, predicted = coarse_to_fine(model, planes, valid, 4, (2.0,))  # a threshold never met

    assert predicted.sum() == 10 * 14  # rows 0, 4, ..., 36; columns 0, 4, ..., 48 and 49
    np.testing.assert_allclose(proba[0], red, atol=1e-6)


def test_a_window_one_pixel_high_is_predicted_whole(town):
    model, planes, valid = town
    rgb_row = np.full((3, 1, 30), 120, np.uint8)
    proba = pixel_probabilities(
        model, rgb_row, np.ones((1, 30), bool), stride_px=4, refine_near=THRESHOLDS
    )
    assert proba.shape == (2, 1, 30)
    np.testing.assert_allclose(proba.sum(axis=0), 1.0, atol=1e-6)
