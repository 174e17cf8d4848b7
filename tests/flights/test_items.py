"""Mission items of a planned mission: camera switching, per-waypoint altitudes, the document."""

from __future__ import annotations

from pymavlink.mavutil import mavlink
from sample_missions import berkane_mission, fenced_mission, terrain_mission

from core.types import Mission
from flights.items import FRAME_GLOBAL, MissionItem, mission_items, plan_document

WAYPOINT = mavlink.MAV_CMD_NAV_WAYPOINT
CAMERA_DISTANCE = mavlink.MAV_CMD_DO_SET_CAM_TRIGG_DIST


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


def test_waypoints_keep_their_own_altitudes() -> None:
    mission = terrain_mission()
    waypoints = [item for item in mission_items(mission)[2:] if item.command == WAYPOINT]
    assert [(w.lat, w.lon, w.alt) for w in waypoints] == [
        (w.lat_deg, w.lon_deg, w.altitude_m) for w in mission.waypoints
    ]
    assert len({w.alt for w in waypoints}) == len(waypoints)


def test_items_are_numbered_from_home() -> None:
    items = mission_items(berkane_mission(), home_alt_amsl_m=152.5)
    assert [item.seq for item in items] == list(range(len(items)))
    assert (items[0].frame, items[0].alt, items[0].current) == (FRAME_GLOBAL, 152.5, True)
    assert not any(item.current for item in items[1:])


def test_plan_document_carries_fence_rally_speed_and_aoi() -> None:
    mission = fenced_mission()
    document = plan_document(mission)
    assert document.items == tuple(mission_items(mission))
    assert document.fence == mission.fence and len(document.fence) == 3
    assert document.rally_points == mission.rally_points
    assert document.cruise_speed_m_s == mission.spec.speed_m_s
    assert document.aoi_wkt_lonlat == mission.aoi_wkt_lonlat
