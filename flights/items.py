"""MAVLink mission items: the common form of every mission file and of a vehicle upload."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pymavlink import mavutil

from core.types import Mission, Waypoint

MAV = mavutil.mavlink
FRAME_GLOBAL = MAV.MAV_FRAME_GLOBAL  # 0: absolute altitude (the home item)
FRAME_MISSION = MAV.MAV_FRAME_MISSION  # 2: no position (DO commands)
FRAME_RELATIVE = MAV.MAV_FRAME_GLOBAL_RELATIVE_ALT  # 3: altitude above home


@dataclass(frozen=True)
class MissionItem:
    """One MAVLink MISSION_ITEM. ``None`` stands for an unset value (NaN on the wire).

    Item 0 is the home position, as in ArduPilot's ``QGC WPL 110`` files.
    """

    seq: int
    command: int
    frame: int
    p1: float | None = 0.0
    p2: float | None = 0.0
    p3: float | None = 0.0
    p4: float | None = 0.0
    lat: float | None = 0.0
    lon: float | None = 0.0
    alt: float | None = 0.0
    current: bool = False
    autocontinue: bool = True

    @property
    def params(self) -> tuple[float | None, ...]:
        """The seven parameters in MAVLink order (p1..p4, lat, lon, alt)."""
        return (self.p1, self.p2, self.p3, self.p4, self.lat, self.lon, self.alt)

    @property
    def has_position(self) -> bool:
        return self.frame != FRAME_MISSION and self.lat is not None and self.lon is not None


def mission_items(mission: Mission, home_alt_amsl_m: float | None = None) -> list[MissionItem]:
    """The items to upload or export for ``mission``: home, take-off, survey, return.

    The camera is switched on by distance at the first waypoint (no photos on the way out)
    and off at the last one. The home item's altitude is ``home_alt_amsl_m`` (AMSL) if
    given, else ``mission.home.altitude_m``.
    """
    home, altitude_m = mission.home, mission.altitude_m
    home_alt = home.altitude_m if home_alt_amsl_m is None else home_alt_amsl_m
    first, *rest = mission.waypoints
    items = [
        MissionItem(
            0,
            MAV.MAV_CMD_NAV_WAYPOINT,
            FRAME_GLOBAL,
            lat=home.lat_deg,
            lon=home.lon_deg,
            alt=home_alt,
            current=True,
        ),
        MissionItem(
            0,
            MAV.MAV_CMD_NAV_TAKEOFF,
            FRAME_RELATIVE,
            p4=None,
            lat=home.lat_deg,
            lon=home.lon_deg,
            alt=altitude_m,
        ),
        _waypoint(first),
        _trigger(mission.trigger_distance_m),
        *(_waypoint(w) for w in rest),
        _trigger(0.0),
        MissionItem(0, MAV.MAV_CMD_NAV_RETURN_TO_LAUNCH, FRAME_MISSION),
    ]
    return [replace(item, seq=seq) for seq, item in enumerate(items)]


def _waypoint(w: Waypoint) -> MissionItem:
    return MissionItem(
        0,
        MAV.MAV_CMD_NAV_WAYPOINT,
        FRAME_RELATIVE,
        p4=None,
        lat=w.lat_deg,
        lon=w.lon_deg,
        alt=w.altitude_m,
    )


def _trigger(distance_m: float) -> MissionItem:
    """DO_SET_CAM_TRIGG_DIST every ``distance_m`` (0 stops); p3=1 shoots at once, as QGC does."""
    return MissionItem(0, MAV.MAV_CMD_DO_SET_CAM_TRIGG_DIST, FRAME_MISSION, p1=distance_m, p3=1.0)
