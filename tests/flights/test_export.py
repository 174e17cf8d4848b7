"""Mission files by suffix: every real file reads, every written set reads back the same."""

from __future__ import annotations

import zipfile
from dataclasses import replace

import pytest
from sample_missions import fenced_mission

from core.errors import InputError
from flights.camera import get_camera
from flights.export import read_mission_file, write_mission_files
from flights.items import plan_document
from flights.kml import flight_path
from flights.wpml import WAYLINES

REAL_FILES = [
    "mavsdk/qgroundcontrol_sample.plan",
    "mavsdk/qgroundcontrol_sample_with_survey.plan",
    "mavsdk/mission_planner_sample.txt",
    "ardupilot/copter_AVC2013_mission.txt",
    "ardupilot/copter_CANGPS_mission.txt",
    "qgc/PolygonGood.kml",
]


@pytest.mark.parametrize("name", REAL_FILES)
def test_every_real_mission_file_is_read_by_its_suffix(shared_data, name: str) -> None:
    document = read_mission_file(shared_data / "missions" / name)
    assert document.items or document.aoi_wkt_lonlat


def test_written_mission_files_read_back_as_the_mission(tmp_path) -> None:
    mission = fenced_mission()
    document = plan_document(mission, home_alt_amsl_m=152.5)
    paths = write_mission_files(mission, tmp_path / "out", "survey", home_alt_amsl_m=152.5)
    assert {kind: path.name for kind, path in paths.items()} == {
        "plan": "survey.plan",
        "waypoints": "survey.waypoints",
        "kml": "survey.kml",
        "kmz": "survey.kmz",
    }
    plan, waypoints, kml, kmz = (read_mission_file(paths[k]) for k in paths)
    assert (plan.items, plan.fence, plan.rally_points) == (
        document.items,
        mission.fence,
        mission.rally_points,
    )
    assert waypoints.items == kmz.items == document.items
    assert len(flight_path(kml.items)) == len(flight_path(document.items))
    assert kml.aoi_wkt_lonlat


def test_the_dji_route_declares_the_aircraft_of_the_camera(tmp_path) -> None:
    mission = fenced_mission()
    mavic_3m = replace(mission, spec=replace(mission.spec, camera=get_camera("dji_mavic_3m")))
    path = write_mission_files(mavic_3m, tmp_path, "m3m")["kmz"]
    with zipfile.ZipFile(path) as archive:
        waylines = archive.read(WAYLINES).decode()
    assert "<wpml:droneSubEnumValue>2</wpml:droneSubEnumValue>" in waylines
    assert "<wpml:payloadEnumValue>68</wpml:payloadEnumValue>" in waylines


def test_unknown_suffix_is_refused_listing_the_supported_ones(tmp_path) -> None:
    path = tmp_path / "mission.gpx"
    path.write_text("<gpx/>", encoding="utf-8")
    with pytest.raises(InputError, match=r"mission.gpx: .*'.gpx'; supported: .plan, .waypoints"):
        read_mission_file(path)
