"""Mission files: QGroundControl plans, ArduPilot waypoint files and KML, real and our own."""

from __future__ import annotations

import json

import pyogrio
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import Point, Polygon, box

from core.errors import InputError
from core.types import Mission, SurveySpec, Waypoint
from flights.camera import get_camera, preview
from flights.export import (
    GEOFENCE_MARGIN_M,
    read_qgc_plan,
    read_waypoints,
    write_kml,
    write_qgc_plan,
    write_waypoints,
)
from flights.items import mission_items
from flights.plan import plan_survey

WAYPOINT, TAKEOFF, RTL, CAMERA_DISTANCE = 16, 22, 20, 206

REAL_PLANS = ["qgroundcontrol_sample.plan", "qgroundcontrol_sample_with_survey.plan"]
REAL_WAYPOINT_FILES = [
    "mavsdk/mission_planner_sample.txt",
    "ardupilot/copter_AVC2013_mission.txt",
    "ardupilot/copter_CANGPS_mission.txt",
]


def berkane_mission() -> Mission:
    """A 300 m × 200 m survey near Berkane at 10 cm/px with the preview camera."""
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32630", always_xy=True)
    to_lonlat = Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True)
    x, y = to_utm.transform(-2.30, 34.93)
    corners = [
        to_lonlat.transform(cx, cy) for cx, cy in box(x, y, x + 300, y + 200).exterior.coords
    ]
    spec = SurveySpec(camera=preview(get_camera("dji_mavic_3e"), 4), gsd_cm=10.0)
    home = Waypoint(lat_deg=34.9295, lon_deg=-2.3005, altitude_m=0.0)
    return plan_survey(Polygon(corners), spec, home, name="berkane-test")


@pytest.mark.parametrize("name", REAL_PLANS)
def test_real_qgc_plans_round_trip(shared_data, tmp_path, name: str) -> None:
    items = read_qgc_plan(shared_data / "missions/mavsdk" / name)
    assert read_qgc_plan(write_qgc_plan(items, tmp_path / name)) == items
    assert read_waypoints(write_waypoints(items, tmp_path / "as.waypoints")) == items


def test_survey_complex_item_is_expanded_into_its_waypoints(shared_data) -> None:
    items = read_qgc_plan(shared_data / "missions/mavsdk/qgroundcontrol_sample_with_survey.plan")
    assert items[0].current and items[0].lat == pytest.approx(47.39801775617688)
    commands = [item.command for item in items[1:]]
    assert commands[0] == 530  # SET_CAMERA_MODE, then the survey's own items
    assert commands.count(WAYPOINT) == 8 and commands.count(CAMERA_DISTANCE) == 4
    assert [item.seq for item in items] == list(range(len(items)))


@pytest.mark.parametrize("name", REAL_WAYPOINT_FILES)
def test_real_waypoint_files_round_trip(shared_data, tmp_path, name: str) -> None:
    items = read_waypoints(shared_data / "missions" / name)
    assert len(items) >= 4
    assert read_waypoints(write_waypoints(items, tmp_path / "copy.waypoints")) == items


def test_ardupilot_waypoint_file_values(shared_data) -> None:
    items = read_waypoints(shared_data / "missions/ardupilot/copter_CANGPS_mission.txt")
    home, takeoff, loiter = items[0], items[1], items[4]
    assert (home.command, home.current, home.alt) == (WAYPOINT, True, 582.0)
    assert (takeoff.command, takeoff.frame, takeoff.alt) == (TAKEOFF, 3, 20.0)
    assert (loiter.command, loiter.p1, loiter.p4) == (19, 5.0, 1.0)
    assert items[-1].command == RTL


def test_qgc_plan_of_a_mission_has_the_structure_of_a_real_plan(shared_data, tmp_path) -> None:
    mission = berkane_mission()
    plan = json.loads(write_qgc_plan(mission, tmp_path / "survey.plan").read_text())
    real = json.loads((shared_data / "missions/mavsdk/qgroundcontrol_sample.plan").read_text())
    assert plan.keys() == real.keys()
    assert plan["mission"].keys() == real["mission"].keys()
    assert (plan["fileType"], plan["version"], plan["groundStation"]) == (
        "Plan",
        1,
        "QGroundControl",
    )
    body = plan["mission"]
    assert (body["firmwareType"], body["vehicleType"], body["globalPlanAltitudeMode"]) == (3, 2, 1)
    assert body["cruiseSpeed"] == mission.spec.speed_m_s
    assert body["plannedHomePosition"] == [mission.home.lat_deg, mission.home.lon_deg, 0.0]

    items = body["items"]
    real_waypoint = real["mission"]["items"][1]
    assert [i["doJumpId"] for i in items] == list(range(1, len(items) + 1))
    assert all(len(i["params"]) == 7 and i["type"] == "SimpleItem" for i in items)
    waypoints = [i for i in items if i["command"] == WAYPOINT]
    assert all(i.keys() == real_waypoint.keys() and i["frame"] == 3 for i in waypoints)
    assert len(waypoints) == len(mission.waypoints)
    assert [i["command"] for i in items[:3]] == [TAKEOFF, WAYPOINT, CAMERA_DISTANCE]
    assert [i["command"] for i in items[-2:]] == [CAMERA_DISTANCE, RTL]
    assert items[2]["params"][0] == pytest.approx(mission.trigger_distance_m)
    assert items[-2]["params"][0] == 0
    assert waypoints[0]["Altitude"] == pytest.approx(mission.altitude_m)


def test_qgc_plan_geofence_holds_the_flight_with_a_margin(tmp_path) -> None:
    mission = berkane_mission()
    plan = json.loads(write_qgc_plan(mission, tmp_path / "survey.plan").read_text())
    (fence,) = plan["geoFence"]["polygons"]
    assert fence["inclusion"] is True and fence["version"] == 1
    fence_lonlat = Polygon([(lon, lat) for lat, lon in fence["polygon"]])
    flown = [Point(w.lon_deg, w.lat_deg) for w in mission.waypoints]
    home = Point(mission.home.lon_deg, mission.home.lat_deg)
    assert all(fence_lonlat.contains(p) for p in [*flown, home])
    aoi = shapely.from_wkt(mission.aoi_wkt_lonlat)
    assert fence_lonlat.contains(aoi)
    margin_deg = fence_lonlat.exterior.distance(shapely.MultiPoint(flown))
    assert margin_deg * 111_000 == pytest.approx(GEOFENCE_MARGIN_M, rel=0.3)


def test_mission_files_read_back_as_the_mission_items(tmp_path) -> None:
    mission = berkane_mission()
    items = mission_items(mission)
    assert read_qgc_plan(write_qgc_plan(mission, tmp_path / "m.plan")) == items
    waypoint_file = write_waypoints(mission, tmp_path / "m.waypoints")
    assert waypoint_file.read_text().startswith("QGC WPL 110\n")
    assert read_waypoints(waypoint_file) == items
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.plan", "m.waypoints"]


def test_home_altitude_can_be_given_above_sea_level(tmp_path) -> None:
    mission = berkane_mission()
    path = write_qgc_plan(mission, tmp_path / "m.plan", home_alt_amsl_m=152.5)
    assert read_qgc_plan(path)[0].alt == 152.5
    assert read_qgc_plan(path)[1].alt == pytest.approx(mission.altitude_m)


def test_kml_holds_the_flight_path_and_the_aoi(tmp_path) -> None:
    mission = berkane_mission()
    path = write_kml(mission, tmp_path / "survey.kml")
    (layer, _), *_ = pyogrio.list_layers(path)
    frame = pyogrio.read_dataframe(path, layer=layer)
    by_name = dict(zip(frame["Name"], frame.geometry, strict=True))
    flight, aoi = by_name["flight path"], by_name["AOI"]
    assert flight.geom_type == "LineString" and aoi.geom_type == "Polygon"
    assert len(flight.coords) == len(mission.waypoints) + 2
    assert flight.coords[1][2] == pytest.approx(mission.altitude_m, abs=0.01)
    expected = shapely.from_wkt(mission.aoi_wkt_lonlat)
    assert shapely.force_2d(aoi).hausdorff_distance(expected) < 1e-8  # about 1 mm


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a readable QGroundControl plan"),
        ('{"fileType": "GeoFence"}', "fileType is 'GeoFence'"),
        ('{"fileType": "Plan"}', "plan: missing key 'mission'"),
        (
            '{"fileType": "Plan", "mission": {"plannedHomePosition": [1, 2, 3], "items": '
            '[{"type": "SimpleItem", "command": 16, "frame": 3, "params": [0, 0]}]}}',
            "item 1: 'params' must be a list of 7 values",
        ),
        (
            '{"fileType": "Plan", "mission": {"plannedHomePosition": [1, 2, 3], "items": '
            '[{"type": "ComplexItem", "complexItemType": "fwLandingPattern"}]}}',
            "ComplexItem 'fwLandingPattern' has no TransectStyleComplexItem.Items",
        ),
    ],
)
def test_malformed_plan_is_refused_naming_file_and_field(tmp_path, text: str, message) -> None:
    path = tmp_path / "bad.plan"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="bad.plan: .*" + message.replace("[", r"\[")):
        read_qgc_plan(path)


@pytest.mark.parametrize(
    "text",
    [
        "QGC WPL 120\n",
        "QGC WPL 110\n0\t1\t0\t16\t0\t0\t0\n",
        "QGC WPL 110\n0 1 0 16 a b c d e f g 1\n",
    ],
)
def test_malformed_waypoint_file_is_refused(tmp_path, text: str) -> None:
    path = tmp_path / "bad.waypoints"
    path.write_text(text, encoding="ascii")
    with pytest.raises(InputError, match="bad.waypoints: not a readable QGC WPL"):
        read_waypoints(path)
