from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from scipy.spatial import cKDTree
from shapely.geometry import box

from core.errors import InputError
from models.crop_health import HEALTH_CLASSES, validate_health
from models.training import PixelSample
from models.validation import block_keys, cross_validate, spatial_folds

LEFT_M, TOP_M, GSD_M = 600_000.0, 3_870_000.0, 0.1
COLOURS = {"healthy": (70, 130, 50), "stressed": (130, 135, 70), "bare": (150, 105, 75)}


def patchwork(path: Path, *, seed: int, size_px: int = 800, patch_px: int = 100):
    """An orthophoto of 10 m patches, each of a random health class whose colour is shifted by
    a patch-wide random offset (variety, soil, irrigation: spatially autocorrelated), with
    pixel noise; and one label polygon per patch."""
    rng = np.random.default_rng(seed)
    n = size_px // patch_px
    names = rng.choice(list(COLOURS), size=(n, n))
    image = np.zeros((size_px, size_px, 3), np.float32)
    rows = []
    for i in range(n):
        for j in range(n):
            colour = np.array(COLOURS[names[i, j]], np.float32) + rng.normal(0, 25, 3)
            patch = colour + rng.normal(0, 8, (patch_px, patch_px, 3))
            image[i * patch_px : (i + 1) * patch_px, j * patch_px : (j + 1) * patch_px] = patch
            x0, y1 = LEFT_M + j * patch_px * GSD_M, TOP_M - i * patch_px * GSD_M
            rows.append(
                {"health": names[i, j], "geometry": box(x0, y1 - patch_px * GSD_M, x0 + 10, y1)}
            )
    profile = {
        "driver": "GTiff",
        "width": size_px,
        "height": size_px,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32630",
        "transform": from_origin(LEFT_M, TOP_M, GSD_M, GSD_M),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.clip(image, 0, 255).astype(np.uint8).transpose(2, 0, 1))
    return path, gpd.GeoDataFrame(rows, crs="EPSG:32630")


def _grid_sample(size_m: float = 100.0, step_m: float = 1.0, seed: int = 0) -> PixelSample:
    """Pixels on a regular grid with two classes (west / east half) and random features."""
    rng = np.random.default_rng(seed)
    east, north = np.meshgrid(np.arange(0, size_m, step_m), np.arange(0, size_m, step_m))
    xy = np.column_stack([east.ravel() + LEFT_M, north.ravel() + TOP_M])
    y = np.where(east.ravel() < size_m / 2, 1, 2).astype(np.int16)
    x = rng.normal(size=(y.size, 3)).astype(np.float32)
    return PixelSample(x=x, y=y, xy=xy, weight=np.ones(y.size))


def test_pixels_of_one_block_share_a_key_and_neighbouring_blocks_differ():
    xy = np.array([[0.5, 0.5], [49.5, 49.5], [50.5, 0.5], [-0.5, 0.5], [0.5, -0.5]])
    keys = block_keys(xy, 50.0)
    assert keys[0] == keys[1]
    assert len(set(keys[[0, 2, 3, 4]])) == 4


def test_each_pixel_is_tested_once_and_no_training_pixel_lies_within_the_buffer():
    sample = _grid_sample()
    folds, left_out = spatial_folds(sample.xy, block_m=20.0, buffer_m=5.0, n_folds=5)
    tested = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(tested), np.arange(sample.y.size))
    for train, test in folds:
        distances, _ = cKDTree(sample.xy[test]).query(sample.xy[train])
        assert distances.min() >= 5.0
        assert not set(block_keys(sample.xy[train], 20.0)) & set(block_keys(sample.xy[test], 20.0))
    assert left_out > 0


def test_blocks_no_larger_than_the_feature_window_are_refused():
    with pytest.raises(InputError, match="block_m.*feature window"):
        spatial_folds(_grid_sample().xy, block_m=10.0, buffer_m=6.4, n_folds=5)


def test_fewer_blocks_than_folds_is_an_input_error():
    with pytest.raises(InputError, match="4 blocks of 50 m, fewer than the 5 folds"):
        spatial_folds(_grid_sample().xy, block_m=50.0, buffer_m=6.4, n_folds=5)


def test_one_fold_is_an_input_error():
    with pytest.raises(InputError, match="n_folds: .*at least 2 folds, got 1"):
        cross_validate(_grid_sample(), ("west", "east"), block_m=25.0, n_folds=1)


def test_features_without_signal_score_a_kappa_near_zero_and_miss_the_target():
    report = cross_validate(_grid_sample(), ("west", "east"), block_m=25.0, buffer_m=2.0, n_folds=4)
    assert abs(report.kappa) < 0.1
    assert report.confusion.sum() == pytest.approx(1.0)
    assert [s.area_share for s in report.scores] == pytest.approx([0.5, 0.5])
    text = report.markdown(target_kappa=0.8)
    assert "Target kappa >= 0.80: **not met**" in text
    assert "| truth \\ predicted | west | east |" in text


def test_scores_are_weighted_by_the_area_each_pixel_stands_for():
    sample = _grid_sample()
    heavy_east = PixelSample(sample.x, sample.y, sample.xy, np.where(sample.y == 2, 3.0, 1.0))
    report = cross_validate(heavy_east, ("west", "east"), block_m=None, n_folds=4)
    assert [s.area_share for s in report.scores] == pytest.approx([0.25, 0.75])
    assert [s.tested_px for s in report.scores] == [5000, 5000]


def test_random_pixel_cross_validation_is_optimistic_next_to_spatial_blocks(tmp_path):
    image, labels = patchwork(tmp_path / "patchwork.tif", seed=3, size_px=1600)
    options = {"n_folds": 4, "max_samples_per_class": 3000}
    blocks = validate_health([(image, labels)], block_m=40.0, **options)
    random = validate_health([(image, labels)], block_m=None, **options)
    assert random.scheme == "random pixels" and blocks.scheme == "spatial blocks"
    assert random.kappa > 0.9
    assert blocks.kappa <= random.kappa - 0.1
    assert blocks.classes == HEALTH_CLASSES
    assert "40 m blocks (16 blocks)" in blocks.markdown()
