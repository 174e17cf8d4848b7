import numpy as np
import pytest
import rasterio

from models.features import BUILDING_FEATURES, CROP_FEATURES, FeatureSet, gabor_energy

FEATURE_SETS = pytest.mark.parametrize("features", [BUILDING_FEATURES, CROP_FEATURES], ids=str)


@FEATURE_SETS
def test_features_have_one_layer_per_name(test_scene, features: FeatureSet):
    with rasterio.open(test_scene.image) as src:
        rgb = src.read((1, 2, 3), window=((0, 50), (0, 70)))
    values = features.compute(rgb)
    assert values.shape == (50, 70, len(features.names))
    assert values.dtype == np.float32
    assert np.isfinite(values).all()


@FEATURE_SETS
def test_features_inside_a_block_do_not_depend_on_the_block_seams(test_scene, features):
    assert features.reach_px() <= features.margin_px
    with rasterio.open(test_scene.image) as src:
        rgb = src.read((1, 2, 3))
    whole = features.compute(rgb)
    top, left, size = 200, 150, 100
    m = features.margin_px
    padded = rgb[:, top - m : top + size + m, left - m : left + size + m]
    block = features.compute(padded)[m:-m, m:-m]
    np.testing.assert_allclose(block, whole[top : top + size, left : left + size], atol=1e-4)


def test_roofs_are_brighter_and_less_green_than_healthy_crops(test_scene):
    with rasterio.open(test_scene.image) as src:
        rgb = src.read((1, 2, 3))
    features = BUILDING_FEATURES.compute(rgb)
    names = BUILDING_FEATURES.names
    exg, value = names.index("exg"), names.index("value")
    roof = test_scene.buildings.geometry.iloc[0].centroid
    row, col = src.index(roof.x, roof.y)
    field_row, field_col = 500, 60
    assert features[row, col, value] > features[field_row, field_col, value]
    assert features[row, col, exg] < features[field_row, field_col, exg]


def test_gabor_energy_tells_rows_from_clumps_and_from_bare_ground():
    size = 160
    cols = np.arange(size)[None, :].repeat(size, axis=0)
    rows = (0.5 + 0.4 * np.sin(2 * np.pi * cols / 12.0)).astype(np.float32)  # 12 px row spacing
    rng = np.random.default_rng(0)
    clumps = np.zeros((size, size), np.float32)
    for y, x in rng.integers(0, size, (150, 2)):
        clumps[max(0, y - 3) : y + 3, max(0, x - 3) : x + 3] = 0.9
    flat = np.full((size, size), 0.5, np.float32)
    inner = (slice(40, -40), slice(40, -40))
    (rows_energy, rows_aniso), (clump_energy, clump_aniso), (flat_energy, _) = (
        [layer[inner].mean() for layer in gabor_energy(image, 12.0)]
        for image in (rows, clumps, flat)
    )
    assert rows_energy > 10 * flat_energy and clump_energy > 10 * flat_energy
    assert rows_aniso > 1.5 and rows_aniso > 3 * clump_aniso
