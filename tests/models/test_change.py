import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio import features as rio_features
from shapely.geometry import box

from core.errors import ProcessingError
from models.change import (
    MAX_RELATIVE_BRIGHTENING,
    MIN_BUILT_AFTER_SHARE,
    MIN_COLOUR_CHANGE,
    MIN_HEIGHT_RISE_M,
    colour_change,
    confirm_changes,
    height_rise,
    new_buildings,
    relative_brightening,
)
from models.training import DEFAULT_BUILDINGS_MODEL, load_model
from sim.world import World, generate

CRS = "EPSG:32630"


def _layer(*geoms, **columns):
    return gpd.GeoDataFrame(columns, geometry=list(geoms), crs=CRS)


def test_new_grown_and_unchanged_buildings():
    before = _layer(box(0, 0, 10, 10), box(20, 0, 30, 10))
    after = _layer(
        box(0, 0, 10, 10.5),  # unchanged (within detection noise)
        box(20, 0, 30, 16),  # extended by 60 %
        box(50, 0, 58, 8),  # new
        score=[0.9, 0.8, 0.7],
    )
    changed = new_buildings(before, after)
    assert list(changed["change"]) == ["grown", "new"]
    assert list(changed["score"]) == [0.8, 0.7]


def test_a_slight_overlap_with_an_old_building_is_still_new():
    before = _layer(box(0, 0, 10, 10))
    after = _layer(box(9, 0, 19, 10))  # 10 % of it over the old footprint
    assert list(new_buildings(before, after)["change"]) == ["new"]
    assert new_buildings(before, after, min_overlap=0.05).empty


def test_everything_is_new_when_there_was_nothing_before():
    after = _layer(box(0, 0, 5, 5), box(10, 0, 15, 5))
    assert list(new_buildings(_layer(), after)["change"]) == ["new", "new"]


def test_pieces_smaller_than_a_room_are_not_changes():
    after = _layer(box(0, 0, 4, 4), box(10, 0, 16, 5))  # 16 m2: a roof's piece; 30 m2: a room
    assert list(new_buildings(_layer(), after).geometry.area) == [30]
    assert len(new_buildings(_layer(), after, min_area_m2=10.0)) == 2


def test_epochs_in_different_crs_are_refused():
    before = _layer(box(0, 0, 1, 1)).set_crs("EPSG:32629", allow_override=True)
    with pytest.raises(ProcessingError, match="CRS"):
        new_buildings(before, _layer(box(0, 0, 1, 1)))


def test_the_earlier_image_vetoes_buildings_that_were_already_there(building_model, test_scene):
    """A building missed by the first epoch's detection is not "new": its pixels were built."""
    standing = test_scene.buildings.assign(change="new")
    field = test_scene.health.loc[test_scene.health["health"] == "healthy"].geometry.iloc[0]
    empty_ground = gpd.GeoDataFrame(
        {"change": ["new"]}, geometry=[field.centroid.buffer(4.0)], crs=test_scene.health.crs
    )
    confirmed = confirm_changes(
        building_model,
        test_scene.image,
        standing.iloc[:0],
        pd.concat([standing, empty_ground]),
        after_image=test_scene.image,
    )
    assert len(confirmed) == 1
    assert confirmed.geometry.iloc[0].equals(empty_ground.geometry.iloc[0])
    assert confirmed["built_before_share"].iloc[0] < 0.3


def test_growth_by_less_than_a_room_is_not_a_change():
    before = _layer(box(0, 0, 8, 8))
    after = _layer(box(0, 0, 8, 11.5))  # 44 % larger, but 8 x 3 m beyond the old outline
    assert new_buildings(before, after).empty
    assert list(new_buildings(before, after, min_area_m2=15.0)["added_m2"].round()) == [24]


def test_a_strip_narrower_than_a_room_around_the_roof_is_not_growth():
    """A roof outlined 2 m wider all round (a parapet's shadow gone) adds 75 m², but no part of
    it is a room wide."""
    before = _layer(box(0, 0, 10, 10))
    after = _layer(box(-2, -2, 12, 12))
    assert new_buildings(before, after, min_area_m2=1.0).empty
    wing = _layer(box(-2, -2, 12, 12).union(box(12, 0, 16, 8)))  # the same plus a 4 x 8 m wing
    (grown,) = new_buildings(before, wing)["added_m2"]
    assert grown == pytest.approx(4 * 8 + 1.5 * 8, abs=0.5)  # the wing and the strip beside it


def _repainted(image, out, polygon, paint):
    """A copy of ``image`` with the pixels of ``polygon`` replaced by ``paint(rgb)``."""
    with rasterio.open(image) as src:
        profile, bands = src.profile, src.read()
        inside = rio_features.rasterize(
            [(polygon, 1)], out_shape=(src.height, src.width), transform=src.transform
        ).astype(bool)
    rgb = bands[:3].astype(np.float32)
    rgb[:, inside] = paint(rgb[:, inside])
    bands[:3] = np.clip(rgb, 0, 255).astype(bands.dtype)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(bands)
    return out


def test_a_roof_found_in_part_before_is_not_grown_but_an_extension_is(
    building_model, test_scene, tmp_path
):
    """Growth is confirmed on the added part only: built-up there before means the earlier
    detection had missed part of the roof; bare ground there, roofed after, an extension."""
    house = test_scene.buildings.geometry.iloc[0]
    field = test_scene.health.loc[test_scene.health["health"] == "healthy"].geometry.iloc[0]
    xmin, ymin, xmax, ymax = house.bounds
    half_found = box(xmin, ymin, (xmin + xmax) / 2, ymax)
    ground = field.centroid.buffer(5.0).envelope
    gx, gy = ground.bounds[:2]
    before = _layer(half_found, box(gx, gy, gx + 4.0, gy + 10.0))
    after = _layer(house, ground)
    with rasterio.open(test_scene.image) as src:
        roof = _layer(house.buffer(-0.5)).to_crs(src.crs).geometry.iloc[0]
        window = src.window(*roof.bounds)
        roof_colour = np.median(src.read((1, 2, 3), window=window).reshape(3, -1), axis=1)
    built_on = _repainted(
        test_scene.image, tmp_path / "after.tif", ground, lambda rgb: roof_colour[:, None]
    )
    changed = new_buildings(before, after, min_area_m2=10.0)
    assert list(changed["change"]) == ["grown", "grown"]
    confirmed = confirm_changes(
        building_model, test_scene.image, before, changed, after_image=built_on
    )
    assert len(confirmed) == 1
    assert confirmed.geometry.iloc[0].equals(ground)
    assert confirmed["built_before_share"].iloc[0] < 0.3
    assert confirmed["colour_change"].iloc[0] >= MIN_COLOUR_CHANGE


def test_a_roof_in_shade_before_keeps_its_colour_so_it_did_not_grow(
    building_model, test_scene, tmp_path
):
    """The part of a roof the winter sun left in shade looks like nothing built (the model
    may miss it), but only its brightness changed, and far more than the ground around it:
    no growth, though the classifier alone, lit in summer, would call it one."""
    house = test_scene.buildings.geometry.iloc[0]
    xmin, ymin, xmax, ymax = house.bounds
    lit = box(xmin, ymin, (xmin + xmax) / 2, ymax)
    shaded = _repainted(
        test_scene.image, tmp_path / "winter.tif", house.difference(lit), lambda rgb: rgb * 0.4
    )
    changed = new_buildings(_layer(lit), _layer(house), min_area_m2=10.0)
    assert list(changed["change"]) == ["grown"]
    (change,) = colour_change(
        shaded, test_scene.image, changed.assign(geometry=[house.difference(lit)])
    )
    assert change < MIN_COLOUR_CHANGE
    assert confirm_changes(
        building_model, shaded, _layer(lit), changed, after_image=test_scene.image
    ).empty
    (unguarded,) = confirm_changes(
        building_model,
        shaded,
        _layer(lit),
        changed,
        after_image=test_scene.image,
        max_brightening=np.inf,
    ).itertuples()
    assert unguarded.built_after_share >= MIN_BUILT_AFTER_SHARE  # the classifier alone: grown
    assert unguarded.relative_brightening == pytest.approx(1 / 0.4, rel=0.05)  # the shade lifted


def test_brightening_is_measured_against_the_surroundings(test_scene, tmp_path):
    """A darker season or exposure dims a place and its surroundings alike; shade lifted
    from one place brightens it alone."""
    house = test_scene.buildings.geometry.iloc[0]
    x, y = house.centroid.x, house.centroid.y
    patch, ring = box(x - 2, y - 2, x + 2, y + 2), box(x - 5, y - 5, x + 5, y + 5)
    ring = ring.difference(patch.buffer(0.5))
    winter = _repainted(
        test_scene.image, tmp_path / "winter.tif", ring.union(patch).envelope, lambda rgb: rgb * 0.8
    )
    shaded = _repainted(test_scene.image, tmp_path / "shaded.tif", patch, lambda rgb: rgb * 0.5)
    (season,) = relative_brightening(test_scene.image, winter, _layer(patch), _layer(ring))
    (shade,) = relative_brightening(shaded, test_scene.image, _layer(patch), _layer(ring))
    assert season == pytest.approx(1.0, abs=0.02)
    assert shade == pytest.approx(2.0, rel=0.05) and shade > MAX_RELATIVE_BRIGHTENING


def test_a_room_added_to_a_large_house_is_growth_however_small_a_share():
    house, annex = box(0, 0, 20, 20), box(5, -6, 11, 0)  # 36 m2: 9 % more
    assert list(new_buildings(_layer(house), _layer(house.union(annex)))["change"]) == ["grown"]
    winter = box(-1.0, 0, 20, 22.0)  # the house outlined with its shadow: larger than after
    (grown,) = new_buildings(_layer(winter), _layer(house.union(annex)))["added_m2"]
    assert grown == pytest.approx(6 * 5.5)


def _small_town(tmp_path_factory: pytest.TempPathFactory, seed: int) -> World:
    return generate(tmp_path_factory.mktemp(f"town{seed}"), seed=seed, width_m=200, height_m=160)


@pytest.fixture(scope="module")
def beige_annex_town(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A small town whose one extension has its house's beige concrete roof, over the beige
    earth of the courtyard."""
    return _small_town(tmp_path_factory, 14)


def _annexes(world: World) -> gpd.GeoDataFrame:
    annexes = gpd.read_file(world.paths.truth, layer="extensions")
    assert list(annexes["roof"]) == ["same"]
    return annexes


def test_an_annex_roofed_like_its_house_over_earth_changes_colour(tmp_path_factory):
    """A red-tile house extended with a red-tile annex over its earth courtyard."""
    world = _small_town(tmp_path_factory, 9)
    (change,) = colour_change(
        world.paths.ortho("epoch1"), world.paths.ortho("epoch2"), _annexes(world)
    )
    assert change >= MIN_COLOUR_CHANGE


def test_an_annex_the_colour_of_the_earth_it_covers_does_not_but_its_height_does(
    beige_annex_town: World,
):
    """The beige annex differs from the beige earth in brightness only, which shade changes
    too; the surface models see a storey rise where the rest of the house stayed."""
    world = beige_annex_town
    annex = _annexes(world)
    (change,) = colour_change(world.paths.ortho("epoch1"), world.paths.ortho("epoch2"), annex)
    assert change < MIN_COLOUR_CHANGE
    before = gpd.read_file(world.paths.truth, layer="buildings_epoch1")
    house = before[before["building_id"] == annex["building_id"].iloc[0]]
    dsms = (world.paths.dsm("epoch1"), world.paths.dsm("epoch2"))
    rise, stayed = height_rise(*dsms, pd.concat([annex, house]))
    assert rise == pytest.approx(annex["height_m"].iloc[0], abs=0.3) and abs(stayed) < 0.1


def _beige_annex_grown(world: World) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The first epoch's true footprints and the beige annex's house grown since."""
    before = gpd.read_file(world.paths.truth, layer="buildings_epoch1")
    after = gpd.read_file(world.paths.truth, layer="buildings_epoch2")
    return before, new_buildings(before, after[after["change"] == "grown"])


def test_the_classifier_confirms_the_annex_colour_does_not(beige_annex_town: World):
    """Bare earth before, a roof after by the classifier's judgement, and no shade lifted: it
    brightened about as much as the ground around it."""
    world = beige_annex_town
    before, grown = _beige_annex_grown(world)
    model = load_model(DEFAULT_BUILDINGS_MODEL)
    images = world.paths.ortho("epoch1"), world.paths.ortho("epoch2")
    colour_only = confirm_changes(
        model, images[0], before, grown, after_image=images[1], min_built_after=np.inf
    )
    assert colour_only.empty
    (confirmed,) = confirm_changes(
        model, images[0], before, grown, after_image=images[1]
    ).itertuples()
    assert confirmed.colour_change < MIN_COLOUR_CHANGE
    assert confirmed.built_after_share >= MIN_BUILT_AFTER_SHARE
    assert confirmed.relative_brightening <= MAX_RELATIVE_BRIGHTENING


def test_the_surface_models_confirm_the_annex_without_the_colour_or_the_classifier(
    beige_annex_town: World,
):
    world = beige_annex_town
    before, grown = _beige_annex_grown(world)
    model = load_model(DEFAULT_BUILDINGS_MODEL)
    images = world.paths.ortho("epoch1"), world.paths.ortho("epoch2")
    dsms = (world.paths.dsm("epoch1"), world.paths.dsm("epoch2"))
    (confirmed,) = confirm_changes(
        model, images[0], before, grown, after_image=images[1], min_built_after=np.inf, dsms=dsms
    ).itertuples()
    assert confirmed.height_rise_m > MIN_HEIGHT_RISE_M
