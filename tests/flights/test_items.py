"""Mission items of a planned mission: camera switching, per-waypoint altitudes, the document."""

from __future__ import annotations

import math

from pymavlink.mavutil import mavlink
from pyproj import Geod
from sample_missions import HOME_AMSL_M, berkane_mission, fenced_mission, terrain_mission

from core.types import Mission
from flights.items import (
    FRAME_GLOBAL,
    MissionItem,
    mission_items,
    nan_if_unset,
    plan_document,
    unset_if_nan,
)

WAYPOINT = mavlink.MAV_CMD_NAV_WAYPOINT
CAMERA_DISTANCE = mavlink.MAV_CMD_DO_SET_CAM_TRIGG_DIST
WGS84 = Geod(ellps="WGS84")


def legs_with_camera_on(items: list[MissionItem]) -> list[bool]:
    """For each leg between consecutive waypoints, whether the camera fires on it."""
    legs, camera_on, seen_waypoint = [], False, False
    for item in items[1:]:
        if item.command == WAYPOINT:
            if seen_waypoint:
                legs.append(camera_on)
            seen_waypoint = True
        elif item.command == CAMERA_DISTANCE:
            camera_on = item.p1 > 0
    return legs


def ardupilot_photos(items: list[MissionItem]) -> int:
    """Photos ArduPilot takes flying ``items``: a DO_SET_CAM_TRIGG_DIST with p3 = 1 shoots
    at once (whatever its distance), then one whenever the horizontal distance from the
    last photo reaches the trigger distance (AP_Mission / AP_Camera)."""
    photos, distance_m, since_m, here = 0, 0.0, 0.0, None
    for item in items[1:]:
        if item.command == CAMERA_DISTANCE:
            distance_m, since_m = item.p1, 0.0
            if item.p3 == 1:
                photos += 1
        elif item.command == WAYPOINT:
            if here is not None and distance_m > 0:
                _, _, leg_m = WGS84.inv(here[1], here[0], item.lon, item.lat)
                shots = math.floor((since_m + leg_m + 1e-6) / distance_m)
                photos += shots
                since_m = since_m + leg_m - shots * distance_m
            here = (item.lat, item.lon)
    return photos


def expected_legs(mission: Mission) -> list[bool]:
    return [w.photos for w in mission.waypoints[:-1]]


def test_camera_fires_on_the_legs_the_planner_flags_and_stops_before_home() -> None:
    mission = berkane_mission()
    items = mission_items(mission)
    assert legs_with_camera_on(items) == expected_legs(mission)
    legs = expected_legs(mission)
    runs = sum(1 for before, now in zip([False, *legs], legs, strict=False) if now and not before)
    triggers = [item.p1 for item in items if item.command == CAMERA_DISTANCE]
    assert runs >= 1 and triggers == [mission.trigger_distance_m, 0.0] * runs


def test_camera_stops_on_transit_legs_and_restarts_after() -> None:
    mission = terrain_mission()
    items = mission_items(mission)
    assert legs_with_camera_on(items) == expected_legs(mission)
    assert expected_legs(mission).count(False) == 1
    assert [t.p1 > 0 for t in items if t.command == CAMERA_DISTANCE] == [True, False, True, False]


def test_only_the_camera_start_shoots_at_once() -> None:
    triggers = [i for i in mission_items(terrain_mission()) if i.command == CAMERA_DISTANCE]
    assert [(t.p1 > 0, t.p3) for t in triggers] == [(True, 1.0), (False, 0.0)] * 2


def test_ardupilot_takes_the_planned_photo_count() -> None:
    mission = berkane_mission()
    assert ardupilot_photos(mission_items(mission)) == mission.photo_count


def test_waypoints_keep_their_own_altitudes() -> None:
    mission = terrain_mission()
    waypoints = [item for item in mission_items(mission)[2:] if item.command == WAYPOINT]
    assert [(w.lat, w.lon, w.alt) for w in waypoints] == [
        (w.lat_deg, w.lon_deg, w.altitude_m) for w in mission.waypoints
    ]
    assert len({w.alt for w in waypoints}) == len(waypoints)


def test_our_items_leave_no_value_unset() -> None:
    items = mission_items(terrain_mission())
    assert all(value is not None for item in items for value in item.params)
    assert {item.p4 for item in items} == {0.0}


def test_items_are_numbered_from_home() -> None:
    items = mission_items(berkane_mission(), home_alt_amsl_m=HOME_AMSL_M)
    assert [item.seq for item in items] == list(range(len(items)))
    assert (items[0].frame, items[0].alt, items[0].current) == (FRAME_GLOBAL, HOME_AMSL_M, True)
    assert not any(item.current for item in items[1:])


def test_an_unknown_home_height_is_a_placeholder_the_document_flags() -> None:
    mission = berkane_mission()
    unknown, known = plan_document(mission), plan_document(mission, HOME_AMSL_M)
    assert (unknown.items[0].alt, unknown.home_alt_known) == (0.0, False)
    assert (known.items[0].alt, known.home_alt_known) == (HOME_AMSL_M, True)
    assert unknown.items[1:] == known.items[1:]


def test_unset_values_travel_as_nan() -> None:
    assert math.isnan(nan_if_unset(None)) and nan_if_unset(2.5) == 2.5
    assert unset_if_nan(math.nan) is None and unset_if_nan(0.0) == 0.0


def test_plan_document_carries_fence_rally_speed_and_aoi() -> None:
    mission = fenced_mission()
    document = plan_document(mission)
    assert document.items == tuple(mission_items(mission))
    assert document.fence == mission.fence and len(document.fence) == 3
    assert document.rally_points == mission.rally_points
    assert document.cruise_speed_m_s == mission.spec.speed_m_s
    assert document.aoi_wkt_lonlat == mission.aoi_wkt_lonlat
