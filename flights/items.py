"""MAVLink mission items and the plan document: the common form of every mission file.

A :class:`PlanDocument` is what every reader in ``flights`` returns and every writer takes:
the mission items (item 0 = home, as in ArduPilot's ``QGC WPL 110`` files), the geofence,
the rally points, the cruise speed and the surveyed area. The item builders here
(:func:`home_item`, :func:`takeoff_item`, ...) are the only place the formats make items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pymavlink import mavutil

from core.types import FenceZone, Mission, Waypoint

MAV = mavutil.mavlink
FRAME_GLOBAL = MAV.MAV_FRAME_GLOBAL  # 0: absolute altitude (the home item)
FRAME_MISSION = MAV.MAV_FRAME_MISSION  # 2: no position (DO commands)
FRAME_RELATIVE = MAV.MAV_FRAME_GLOBAL_RELATIVE_ALT  # 3: altitude above home


def nan_if_unset(value: float | None) -> float:
    """A parameter as MAVLink carries it: NaN for an unset value."""
    return math.nan if value is None else value


def unset_if_nan(value: float) -> float | None:
    """A parameter as :class:`MissionItem` holds it: ``None`` for NaN."""
    return None if math.isnan(value) else value


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


@dataclass(frozen=True)
class PlanDocument:
    """A mission as files hold it: items (item 0 = home), geofence, rally points.

    Fence rings are open (no repeated closing vertex), in lon/lat; rally point altitudes
    are above home. ``cruise_speed_m_s`` is ``None`` when the file does not say it.
    ``home_alt_known`` is false when the home item's altitude (AMSL) is a placeholder 0 m
    because nobody knew the ground height at home (no DEM); formats that can leave the
    height out (KML, DJI WPML) then do.
    """

    items: tuple[MissionItem, ...]
    fence: tuple[FenceZone, ...] = ()
    rally_points: tuple[Waypoint, ...] = ()
    cruise_speed_m_s: float | None = None
    aoi_wkt_lonlat: str = ""
    home_alt_known: bool = True


MissionSource = Mission | PlanDocument
"""What the writers take: a planned mission or a document read from a file."""


def home_item(lat: float, lon: float, alt_amsl_m: float) -> MissionItem:
    """Item 0: the home position, altitude above mean sea level (ArduPilot overwrites it
    with the vehicle's own position when it arms)."""
    return MissionItem(
        0, MAV.MAV_CMD_NAV_WAYPOINT, FRAME_GLOBAL, lat=lat, lon=lon, alt=alt_amsl_m, current=True
    )


def takeoff_item(lat: float, lon: float, height_m: float) -> MissionItem:
    """NAV_TAKEOFF to ``height_m`` above home."""
    return MissionItem(0, MAV.MAV_CMD_NAV_TAKEOFF, FRAME_RELATIVE, lat=lat, lon=lon, alt=height_m)


def waypoint_item(lat: float, lon: float, height_m: float) -> MissionItem:
    """NAV_WAYPOINT at ``height_m`` above home, no hold.

    Yaw (p4) is 0, as Mission Planner writes it, rather than NaN: ArduPilot does not
    store the yaw of NAV_WAYPOINT or NAV_TAKEOFF, and some ground stations cannot parse
    ``nan`` in a ``.waypoints`` file.
    """
    return MissionItem(0, MAV.MAV_CMD_NAV_WAYPOINT, FRAME_RELATIVE, lat=lat, lon=lon, alt=height_m)


def camera_distance_item(distance_m: float) -> MissionItem:
    """DO_SET_CAM_TRIGG_DIST: a photo every ``distance_m`` (0 stops the camera).

    p3 = 1 makes ArduPilot take a photo at once, whatever the distance; it is set only
    when the camera starts. QGroundControl also sets it on the stop item, which makes
    ArduPilot take one more photo at the end of every run than QGC's count says.
    """
    return MissionItem(
        0,
        MAV.MAV_CMD_DO_SET_CAM_TRIGG_DIST,
        FRAME_MISSION,
        p1=distance_m,
        p3=1.0 if distance_m > 0 else 0.0,
    )


def return_item() -> MissionItem:
    """NAV_RETURN_TO_LAUNCH."""
    return MissionItem(0, MAV.MAV_CMD_NAV_RETURN_TO_LAUNCH, FRAME_MISSION)


def numbered(items: Sequence[MissionItem]) -> tuple[MissionItem, ...]:
    """``items`` numbered 0, 1, 2... in order."""
    return tuple(replace(item, seq=seq) for seq, item in enumerate(items))


def mission_items(mission: Mission, home_alt_amsl_m: float | None = None) -> list[MissionItem]:
    """The items to upload or export for ``mission``: home, take-off, survey, return.

    Waypoint altitudes are each waypoint's own (terrain following sets them). The camera
    is switched on by distance at the start of every run of photo legs
    (:attr:`~core.types.Waypoint.photos`) and off at its end, so transit legs between cells
    or crosshatch passes take no photos. The home item's altitude is ``home_alt_amsl_m``
    (the ground height at home above mean sea level); unknown (``None``), it is 0.
    """
    home = mission.home
    items = [
        home_item(home.lat_deg, home.lon_deg, home_alt_amsl_m or 0.0),
        takeoff_item(home.lat_deg, home.lon_deg, mission.altitude_m),
        *_survey_items(mission.waypoints, mission.trigger_distance_m),
        return_item(),
    ]
    return list(numbered(items))


def plan_document(mission: Mission, home_alt_amsl_m: float | None = None) -> PlanDocument:
    """The document every mission file of ``mission`` is written from."""
    return PlanDocument(
        items=tuple(mission_items(mission, home_alt_amsl_m)),
        fence=mission.fence,
        rally_points=mission.rally_points,
        cruise_speed_m_s=mission.spec.speed_m_s,
        aoi_wkt_lonlat=mission.aoi_wkt_lonlat,
        home_alt_known=home_alt_amsl_m is not None,
    )


def as_document(source: MissionSource, home_alt_amsl_m: float | None = None) -> PlanDocument:
    """``source`` as a document (``home_alt_amsl_m`` applies to a Mission only)."""
    if isinstance(source, PlanDocument):
        return source
    return plan_document(source, home_alt_amsl_m)


def _survey_items(waypoints: Sequence[Waypoint], trigger_distance_m: float) -> list[MissionItem]:
    """Each waypoint, with a camera switch where photo legs start and where they stop."""
    items = []
    camera_on = False
    last = len(waypoints) - 1
    for k, w in enumerate(waypoints):
        items.append(waypoint_item(w.lat_deg, w.lon_deg, w.altitude_m))
        shoots = w.photos and k < last
        if shoots != camera_on:
            items.append(camera_distance_item(trigger_distance_m if shoots else 0.0))
            camera_on = shoots
    return items
