"""Mission files by suffix: every real file reads, every written set reads back the same."""

from __future__ import annotations

import zipfile

import pytest
from sample_missions import HOME_AMSL_M, berkane_mission, fenced_mission, with_camera

from core.errors import InputError
from flights.export import (
    UNKNOWN_HOME_HEIGHT,
    read_flyable_mission,
    read_mission_file,
    write_mission_files,
)
from flights.items import plan_document
from flights.kml import flight_path
from flights.wpml import MAVIC_3E, WAYLINES

REAL_FILES = [
    "mavsdk/qgroundcontrol_sample.plan",
    "mavsdk/qgroundcontrol_sample_with_survey.plan",
    "mavsdk/mission_planner_sample.txt",
    "ardupilot/copter_AVC2013_mission.txt",
    "ardupilot/copter_CANGPS_mission.txt",
    "qgc/PolygonGood.kml",
]
TAKEOFF = 22


@pytest.mark.parametrize("name", REAL_FILES)
def test_every_real_mission_file_is_read_by_its_suffix(shared_data, name: str) -> None:
    document = read_mission_file(shared_data / "missions" / name)
    assert document.items or document.aoi_wkt_lonlat


def test_written_mission_files_read_back_as_the_mission(tmp_path) -> None:
    mission = fenced_mission()
    document = plan_document(mission, home_alt_amsl_m=HOME_AMSL_M)
    files = write_mission_files(mission, tmp_path / "out", "survey", home_alt_amsl_m=HOME_AMSL_M)
    assert {kind: path.name for kind, path in files.paths.items()} == {
        "plan": "survey.plan",
        "waypoints": "survey.waypoints",
        "kml": "survey.kml",
        "kmz": "survey.kmz",
    }
    assert files.notes == ()
    plan, waypoints, kml, kmz = (read_mission_file(path) for path in files.paths.values())
    assert (plan.items, plan.fence, plan.rally_points) == (
        document.items,
        mission.fence,
        mission.rally_points,
    )
    assert waypoints.items == kmz.items == document.items
    assert kml.items[0].alt == HOME_AMSL_M and kml.home_alt_known
    assert len(flight_path(kml.items)) == len(flight_path(document.items))
    assert kml.aoi_wkt_lonlat


def test_an_unknown_home_height_is_noted(tmp_path) -> None:
    files = write_mission_files(berkane_mission(), tmp_path, "flat")
    assert files.notes == (UNKNOWN_HOME_HEIGHT,)
    assert set(files.paths) == {"plan", "waypoints", "kml", "kmz"}


def test_the_dji_route_declares_the_aircraft_of_the_camera(tmp_path) -> None:
    mavic_3m = with_camera(fenced_mission(), "dji_mavic_3m_multispectral")
    path = write_mission_files(mavic_3m, tmp_path, "m3m", home_alt_amsl_m=HOME_AMSL_M).paths["kmz"]
    with zipfile.ZipFile(path) as archive:
        waylines = archive.read(WAYLINES).decode()
    assert "<wpml:droneSubEnumValue>2</wpml:droneSubEnumValue>" in waylines
    assert "<wpml:payloadEnumValue>68</wpml:payloadEnumValue>" in waylines


def test_no_dji_route_for_a_phantom_4_rtk_and_the_note_says_why(tmp_path) -> None:
    stale = tmp_path / "p4r.kmz"
    stale.write_bytes(b"a route of an earlier plan")
    phantom = with_camera(berkane_mission(), "dji_phantom_4_rtk")
    files = write_mission_files(phantom, tmp_path, "p4r", home_alt_amsl_m=HOME_AMSL_M)
    assert set(files.paths) == {"plan", "waypoints", "kml"}
    (note,) = files.notes
    assert note.startswith("no DJI route (.kmz) for DJI Phantom 4 RTK")
    assert not stale.exists()


def test_a_document_gets_a_route_only_for_the_aircraft_named(tmp_path) -> None:
    document = plan_document(berkane_mission(), HOME_AMSL_M)
    unnamed = write_mission_files(document, tmp_path, "a")
    assert "kmz" not in unnamed.paths and "names no camera" in unnamed.notes[0]
    named = write_mission_files(document, tmp_path, "b", aircraft=MAVIC_3E)
    assert named.paths["kmz"].exists() and named.notes == ()


def test_a_kml_is_not_flown(tmp_path) -> None:
    files = write_mission_files(berkane_mission(), tmp_path, "field")
    with pytest.raises(InputError, match=r"field.kml: KML holds the path only, .*fly the .plan"):
        read_flyable_mission(files.paths["kml"])
    for kind in ("plan", "waypoints", "kmz"):
        items = read_flyable_mission(files.paths[kind]).items
        assert any(item.command == TAKEOFF for item in items)


def test_unknown_suffix_is_refused_listing_the_supported_ones(tmp_path) -> None:
    path = tmp_path / "mission.gpx"
    path.write_text("<gpx/>", encoding="utf-8")
    with pytest.raises(InputError, match=r"mission.gpx: .*'.gpx'; supported: .plan, .waypoints"):
        read_mission_file(path)
