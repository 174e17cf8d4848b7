import numpy as np
import rasterio

from models.features import FEATURE_MARGIN_PX, FEATURE_NAMES, pixel_features


def test_pixel_features_has_one_layer_per_name(test_scene):
    with rasterio.open(test_scene.image) as src:
        rgb = src.read((1, 2, 3), window=((0, 50), (0, 70)))
    features = pixel_features(rgb)
    assert features.shape == (50, 70, len(FEATURE_NAMES))
    assert features.dtype == np.float32
    assert np.isfinite(features).all()


def test_features_inside_a_block_do_not_depend_on_the_block_seams(test_scene):
    with rasterio.open(test_scene.image) as src:
        rgb = src.read((1, 2, 3))
    whole = pixel_features(rgb)
    top, left, size = 200, 150, 100
    m = FEATURE_MARGIN_PX
    padded = rgb[:, top - m : top + size + m, left - m : left + size + m]
    block = pixel_features(padded)[m:-m, m:-m]
    np.testing.assert_allclose(block, whole[top : top + size, left : left + size], atol=1e-4)


def test_roofs_are_brighter_and_less_green_than_healthy_crops(test_scene):
    with rasterio.open(test_scene.image) as src:
        rgb = src.read((1, 2, 3))
    features = pixel_features(rgb)
    exg, value = FEATURE_NAMES.index("exg"), FEATURE_NAMES.index("value")
    roof = test_scene.buildings.geometry.iloc[0].centroid
    row, col = src.index(roof.x, roof.y)
    field_row, field_col = 500, 60
    assert features[row, col, value] > features[field_row, field_col, value]
    assert features[row, col, exg] < features[field_row, field_col, exg]
