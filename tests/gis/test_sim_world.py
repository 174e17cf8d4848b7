"""The gis stage on the records of the synthetic Berkane world, checked against its truth."""

from __future__ import annotations

import geopandas as gpd
import pytest

from core.settings import Settings
from gis.flags import flag_new_buildings
from gis.parcels import read_parcels
from gis.publish import list_layers, publish_geopackage
from gis.records import read_permits, read_projects

EXPECTED_REASON = {
    "unpermitted": "no_permit",
    "expired_permit": "permit_expired",
    "over_footprint": "over_footprint",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, world_copy):
    return world_copy(tmp_path_factory.mktemp("world"), width_m=200, height_m=160)


def _new_buildings(world) -> gpd.GeoDataFrame:
    """The footprints the world built or extended in epoch 2, as change detection gives them."""
    after = gpd.read_file(world.paths.truth, layer="buildings_epoch2")
    new = after[after["change"] != "unchanged"]
    return new.drop(columns="parcel_id").assign(score=1.0, area_m2=new.geometry.area)


def test_the_world_records_read_without_problems(world):
    assert read_permits(world.paths.permits).problems == ()
    assert read_projects(world.paths.projects, crs=world.crs).problems == ()
    assert read_parcels(world.paths.parcels, world.crs)["parcel_id"].is_unique


def test_true_new_and_grown_buildings_are_flagged_exactly_as_their_case_says(world, tmp_path):
    parcels = read_parcels(world.paths.parcels, world.crs)
    permits = read_permits(world.paths.permits).valid
    new = _new_buildings(world)
    _, captured_on = world.epochs[-1]

    projects = read_projects(world.paths.projects, crs=world.crs).valid

    flags = flag_new_buildings(
        new, parcels, permits, captured_on=captured_on, settings=Settings(), projects=projects
    )

    truth = gpd.read_file(world.paths.truth, layer="buildings_epoch2")
    expected = {
        row.parcel_id: EXPECTED_REASON[row.case]
        for row in truth[truth["building_id"].isin(new["building_id"])].itertuples()
        if row.case in EXPECTED_REASON
    }
    assert expected, "the world should hold at least one case to flag"
    assert "grown" in set(new.loc[new["case"].isin(list(EXPECTED_REASON)), "change"])
    assert dict(zip(flags["parcel_id"], flags["reason"], strict=True)) == expected
    grown = flags[flags["explanation"].str.startswith("Extended structure")]
    assert len(grown) == (new["change"] == "grown").sum()
    path = publish_geopackage(tmp_path / "flags.gpkg", {"flagged_parcels": flags})
    assert list_layers(path) == ["flagged_parcels", "layer_styles"]
