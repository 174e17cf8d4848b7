"""QGroundControl plans: real ones round-trip; ours carry the geofence and rally points."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sample_missions import HOME_AMSL_M, berkane_mission, fenced_mission

from core.errors import InputError, PlanError
from core.types import FenceZone
from flights.items import PlanDocument, plan_document
from flights.qgc_plan import read_qgc_plan, write_qgc_plan
from flights.wpl import read_waypoints

WAYPOINT, TAKEOFF, RTL, CAMERA_DISTANCE = 16, 22, 20, 206
REAL_PLANS = ["qgroundcontrol_sample.plan", "qgroundcontrol_sample_with_survey.plan"]


@pytest.mark.parametrize("name", REAL_PLANS)
def test_real_plans_round_trip(shared_data, tmp_path, name: str) -> None:
    document = read_qgc_plan(shared_data / "missions/mavsdk" / name)
    assert document.cruise_speed_m_s == 15.0
    assert read_qgc_plan(write_qgc_plan(document, tmp_path / name)) == document


@pytest.mark.parametrize("name", ["copter_AVC2013_mission.txt", "copter_CANGPS_mission.txt"])
def test_ardupilot_waypoint_files_keep_their_items_as_plans(shared_data, tmp_path, name) -> None:
    items = read_waypoints(shared_data / "missions/ardupilot" / name).items
    assert read_qgc_plan(write_qgc_plan(PlanDocument(items), tmp_path / "copy.plan")).items == items


def test_a_file_without_home_is_not_written_as_a_plan(shared_data, tmp_path) -> None:
    document = read_waypoints(shared_data / "missions/mavsdk/mission_planner_sample.txt")
    with pytest.raises(PlanError, match="item 0 must be the home position .* got command 22"):
        write_qgc_plan(document, tmp_path / "no_home.plan")


def test_survey_complex_item_is_expanded_into_its_waypoints(shared_data) -> None:
    document = read_qgc_plan(shared_data / "missions/mavsdk/qgroundcontrol_sample_with_survey.plan")
    items = document.items
    assert items[0].current and items[0].lat == pytest.approx(47.39801775617688)
    commands = [item.command for item in items[1:]]
    assert commands[0] == 530  # SET_CAMERA_MODE, then the survey's own items
    assert commands.count(WAYPOINT) == 8 and commands.count(CAMERA_DISTANCE) == 4
    assert [item.seq for item in items] == list(range(len(items)))
    assert (document.fence, document.rally_points) == ((), ())


def test_mission_plan_has_the_structure_of_a_real_plan(shared_data, tmp_path) -> None:
    mission = berkane_mission()
    plan = json.loads(write_qgc_plan(mission, tmp_path / "survey.plan").read_text())
    real = json.loads((shared_data / "missions/mavsdk/qgroundcontrol_sample.plan").read_text())
    assert plan.keys() == real.keys()
    assert plan["mission"].keys() == real["mission"].keys()
    assert plan["geoFence"].keys() == real["geoFence"].keys()
    assert plan["rallyPoints"].keys() == real["rallyPoints"].keys()
    body = plan["mission"]
    assert (body["firmwareType"], body["vehicleType"], body["globalPlanAltitudeMode"]) == (3, 2, 1)
    assert body["cruiseSpeed"] == body["hoverSpeed"] == mission.spec.speed_m_s
    assert body["plannedHomePosition"] == [mission.home.lat_deg, mission.home.lon_deg, 0.0]

    items = body["items"]
    real_waypoint = real["mission"]["items"][1]
    assert [i["doJumpId"] for i in items] == list(range(1, len(items) + 1))
    waypoints = [i for i in items if i["command"] == WAYPOINT]
    assert all(i.keys() == real_waypoint.keys() and i["frame"] == 3 for i in waypoints)
    assert len(waypoints) == len(mission.waypoints)
    assert [i["command"] for i in items[:2]] == [TAKEOFF, WAYPOINT]
    assert items[-1]["command"] == RTL
    triggers = [i["params"][0] for i in items if i["command"] == CAMERA_DISTANCE]
    assert triggers[0] == pytest.approx(mission.trigger_distance_m) and triggers[-1] == 0


def test_geofence_and_rally_points_are_written_as_qgroundcontrol_does(tmp_path) -> None:
    mission = fenced_mission()
    plan = json.loads(write_qgc_plan(mission, tmp_path / "fenced.plan").read_text())
    inclusion, exclusion = plan["geoFence"]["polygons"]
    (circle,) = plan["geoFence"]["circles"]
    assert (inclusion["inclusion"], exclusion["inclusion"], circle["inclusion"]) == (
        True,
        False,
        False,
    )
    lon, lat = mission.fence[0].polygon_lonlat[0]
    assert inclusion["polygon"][0] == [lat, lon] and inclusion["version"] == 1
    assert circle["circle"] == {"center": [34.95, -2.28], "radius": 150.0}
    assert plan["rallyPoints"]["points"][1] == [34.9331, -2.2952, 25.5]


def test_geofence_and_rally_points_read_back_equal(tmp_path) -> None:
    mission = fenced_mission()
    path = write_qgc_plan(mission, tmp_path / "fenced.plan", home_alt_amsl_m=HOME_AMSL_M)
    document = read_qgc_plan(path)
    assert document == replace(plan_document(mission, HOME_AMSL_M), aoi_wkt_lonlat="")
    zone_kinds = {(z.inclusion, z.centre_lonlat is None) for z in document.fence}
    assert zone_kinds == {(True, True), (False, True), (False, False)}


def test_a_closed_fence_ring_is_written_open(tmp_path) -> None:
    ring = ((-2.30, 34.92), (-2.29, 34.92), (-2.29, 34.93), (-2.30, 34.92))
    mission = replace(berkane_mission(), fence=(FenceZone(inclusion=True, polygon_lonlat=ring),))
    document = read_qgc_plan(write_qgc_plan(mission, tmp_path / "closed.plan"))
    assert document.fence[0].polygon_lonlat == ring[:-1]


def test_a_degenerate_fence_is_refused_when_writing(tmp_path) -> None:
    zone = FenceZone(inclusion=True, polygon_lonlat=((-2.30, 34.92), (-2.29, 34.92)))
    mission = replace(berkane_mission(), fence=(zone,))
    with pytest.raises(PlanError, match="at least 3 vertices, got 2"):
        write_qgc_plan(mission, tmp_path / "bad.plan")
    assert not list(tmp_path.iterdir())


def test_home_altitude_can_be_given_above_sea_level(tmp_path) -> None:
    mission = berkane_mission()
    path = write_qgc_plan(mission, tmp_path / "m.plan", home_alt_amsl_m=HOME_AMSL_M)
    items = read_qgc_plan(path).items
    assert items[0].alt == HOME_AMSL_M
    assert items[1].alt == pytest.approx(mission.altitude_m)
    plan = json.loads(path.read_text())
    assert plan["mission"]["plannedHomePosition"][2] == HOME_AMSL_M


MISSION = '"mission": {"plannedHomePosition": [1, 2, 3], "items": []}'
SIMPLE = '{"type": "SimpleItem", "command": 16, "frame": 3, "params": [0, 0, 0, 0, 1, 2, 3]}'
SHORT_PARAMS = SIMPLE.replace("[0, 0, 0, 0, 1, 2, 3]", "[0, 0]")
TEXT_COMMAND = SIMPLE.replace("16", '"16"')
TEXT_LONGITUDE = SIMPLE.replace("0, 1, 2", '0, 1, "a"')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a readable QGroundControl plan"),
        ('{"fileType": "Plan", "x": NaN}', "NaN is not a number JSON allows"),
        ('{"fileType": "GeoFence"}', "fileType is 'GeoFence'"),
        ('{"fileType": "Plan"}', "plan: missing key 'mission'"),
        ('{"fileType": "Plan", "mission": []}', "plan.mission: expected an object, got a list"),
        (
            '{"fileType": "Plan", "mission": {"plannedHomePosition": [1, 2], "items": []}}',
            r"mission.plannedHomePosition: expected \[lat, lon, alt\], got 2 values",
        ),
        (
            '{"fileType": "Plan", "mission": {"plannedHomePosition": [91, 2, 3], "items": []}}',
            "mission.plannedHomePosition: latitude/longitude out of range",
        ),
        (
            '{"fileType": "Plan", "mission": {"plannedHomePosition": [1, 2, 3], "items": '
            f"[{SIMPLE}, {SHORT_PARAMS}]}}}}",
            r"mission.items\[1\].params: must be a list of 7 values, got 2",
        ),
        (
            '{"fileType": "Plan", "mission": {"plannedHomePosition": [1, 2, 3], "items": '
            f"[{TEXT_COMMAND}]}}}}",
            r"mission.items\[0\].command: expected a number, got a string",
        ),
        (
            '{"fileType": "Plan", "mission": {"plannedHomePosition": [1, 2, 3], "items": '
            f"[{TEXT_LONGITUDE}]}}}}",
            r"mission.items\[0\].params\[5\]: expected a number, got a string",
        ),
        (
            '{"fileType": "Plan", "mission": {"plannedHomePosition": [1, 2, 3], "items": '
            '[{"type": "ComplexItem", "complexItemType": "fwLandingPattern"}]}}',
            r"mission.items\[0\]: ComplexItem 'fwLandingPattern' has no "
            "TransectStyleComplexItem.Items",
        ),
        (
            f'{{"fileType": "Plan", {MISSION}, "geoFence": {{"polygons": ['
            '{"inclusion": true, "polygon": [[1, 2], [1, 3], [2, 3]], "version": 1}, '
            '{"inclusion": false, "polygon": [[1, 2], [1, 3]], "version": 1}]}}',
            r"geoFence.polygons\[1\].polygon: needs at least 3 vertices, got 2",
        ),
        (
            f'{{"fileType": "Plan", {MISSION}, "geoFence": {{"polygons": ['
            '{"inclusion": "yes", "polygon": [[1, 2], [1, 3], [2, 3]]}]}}',
            r"geoFence.polygons\[0\].inclusion: expected a boolean, got a string",
        ),
        (
            f'{{"fileType": "Plan", {MISSION}, "geoFence": {{"circles": ['
            '{"inclusion": true, "circle": {"center": [1, 2], "radius": -5}}]}}',
            r"geoFence.circles\[0\].circle.radius: must be > 0 m, got -5.0",
        ),
        (
            f'{{"fileType": "Plan", {MISSION}, "rallyPoints": {{"points": [[1, 2, 3], [1, 2]]}}}}',
            r"rallyPoints.points\[1\]: expected \[lat, lon, alt\], got 2 values",
        ),
    ],
)
def test_malformed_plan_is_refused_naming_file_and_location(
    tmp_path, text: str, message: str
) -> None:
    path = tmp_path / "bad.plan"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="bad.plan: .*" + message):
        read_qgc_plan(path)
