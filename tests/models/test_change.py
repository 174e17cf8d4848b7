import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from core.errors import ProcessingError
from models.change import confirm_changes, new_buildings

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
        building_model, test_scene.image, standing.iloc[:0], pd.concat([standing, empty_ground])
    )
    assert len(confirmed) == 1
    assert confirmed.geometry.iloc[0].equals(empty_ground.geometry.iloc[0])
    assert confirmed["built_before_share"].iloc[0] < 0.3


def test_growth_by_less_than_a_room_is_not_a_change():
    before = _layer(box(0, 0, 8, 8))
    after = _layer(box(0, 0, 8, 11))  # 37 % larger, but 8 x 2.5 m beyond the old outline
    assert new_buildings(before, after).empty
    assert list(new_buildings(before, after, min_area_m2=15.0)["added_m2"].round()) == [20]


def test_a_roof_found_in_part_before_is_not_grown_but_an_extension_is(building_model, test_scene):
    """Growth is confirmed on the added part only: built-up there before means the earlier
    detection had missed part of the roof; bare ground there means an extension."""
    house = test_scene.buildings.geometry.iloc[0]
    field = test_scene.health.loc[test_scene.health["health"] == "healthy"].geometry.iloc[0]
    xmin, ymin, xmax, ymax = house.bounds
    half_found = box(xmin, ymin, (xmin + xmax) / 2, ymax)
    ground = field.centroid.buffer(5.0).envelope
    before = _layer(half_found, ground.buffer(-2.0))
    after = _layer(house, ground)
    changed = new_buildings(before, after, min_area_m2=10.0)
    assert list(changed["change"]) == ["grown", "grown"]
    confirmed = confirm_changes(building_model, test_scene.image, before, changed)
    assert len(confirmed) == 1
    assert confirmed.geometry.iloc[0].equals(ground)
    assert confirmed["built_before_share"].iloc[0] < 0.3
