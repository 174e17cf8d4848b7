import numpy as np
import pytest
import rasterio

from models.features import BUILDING_FEATURES, CROP_FEATURES, FeatureSet, gabor_energy

FEATURE_SETS = pytest.mark.parametrize("features", [BUILDING_FEATURES, CROP_FEATURES], ids=str)
WINTER_SHADOW_PX_PER_M = (-12.4, -17.4)
"""1 m of height under the simulator's winter sun (azimuth 144.5, elevation 25) at 10 cm: its
shadow falls 1.2 m west and 1.7 m north (up the rows)."""


@FEATURE_SETS
def test_features_have_one_layer_per_name(test_scene, features: FeatureSet):
    with rasterio.open(test_scene.image) as src:
        rgb = src.read((1, 2, 3), window=((0, 50), (0, 70)))
    values = features.compute(rgb, shadow_px_per_m=WINTER_SHADOW_PX_PER_M)
    assert values.shape == (50, 70, len(features.names))
    assert values.dtype == np.float32
    assert np.isfinite(values).all()


@FEATURE_SETS
def test_features_inside_a_block_do_not_depend_on_the_block_seams(test_scene, features):
    assert features.reach_px() <= features.margin_px
    with rasterio.open(test_scene.image) as src:
        rgb = src.read((1, 2, 3))
    whole = features.compute(rgb, shadow_px_per_m=WINTER_SHADOW_PX_PER_M)
    top, left, size = 200, 150, 100
    m = features.margin_px
    padded = rgb[:, top - m : top + size + m, left - m : left + size + m]
    block = features.compute(padded, shadow_px_per_m=WINTER_SHADOW_PX_PER_M)[m:-m, m:-m]
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


def _lit_scene(shadow_side: str) -> np.ndarray:
    """Soil (170) with a bright 4 x 4 m slab (rows and columns 80-120 at 10 cm) and a bluish
    dark band 2 m wide on its north (``shadow_side`` "north") or south side."""
    rgb = np.full((3, 200, 200), 170, np.uint8)
    rgb[:, 80:120, 80:120] = 230
    rows = slice(60, 80) if shadow_side == "north" else slice(120, 140)
    rgb[:, rows, 80:120] = np.array([40, 45, 70], np.uint8)[:, None, None]
    return rgb


def test_a_slab_scores_its_shadow_on_the_side_away_from_the_sun():
    names = BUILDING_FEATURES.names
    sides = [names.index("shadow_side_3m"), names.index("shadow_side_6m")]
    sun_from_south = (0.0, -10.0)  # shadows fall north (up the rows), 1 m per m of height
    raised = BUILDING_FEATURES.compute(_lit_scene("north"), shadow_px_per_m=sun_from_south)
    flat = BUILDING_FEATURES.compute(_lit_scene("south"), shadow_px_per_m=sun_from_south)
    assert (raised[100, 100, sides] > 0.2).all()  # the slab's middle: its shadow north of it
    assert (flat[100, 100, sides] < -0.2).all()  # a dark band on its sunny side: not its shadow
    assert np.abs(raised[100, 20, sides]).max() < 0.01  # open soil


def test_the_shadow_cue_turns_with_the_sun():
    scene = _lit_scene("north")
    south = BUILDING_FEATURES.compute(scene, shadow_px_per_m=(0.0, -10.0))
    # the scene turned 90 degrees anticlockwise, the sun with it: now in the east
    turned = BUILDING_FEATURES.compute(
        np.ascontiguousarray(np.rot90(scene, axes=(1, 2))), shadow_px_per_m=(-10.0, 0.0)
    )
    sides = [BUILDING_FEATURES.names.index("shadow_side_3m")]
    np.testing.assert_allclose(
        np.rot90(south[..., sides])[70:130, 70:130], turned[70:130, 70:130, sides], atol=1e-4
    )


def test_without_the_sun_only_the_shadow_sides_are_missing(test_scene):
    with rasterio.open(test_scene.image) as src:
        rgb = src.read((1, 2, 3), window=((0, 50), (0, 70)))
    values = BUILDING_FEATURES.compute(rgb)
    missing = [name.startswith("shadow_side") for name in BUILDING_FEATURES.names]
    assert sum(missing) == 2
    assert np.isnan(values[..., missing]).all()
    assert np.isfinite(values[..., ~np.array(missing)]).all()
