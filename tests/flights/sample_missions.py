"""Missions for the mission-file tests: a planned Berkane survey and hand-made variants."""

from __future__ import annotations

from dataclasses import replace

from pyproj import Transformer
from shapely.geometry import Polygon, box

from core.types import FenceZone, Mission, SurveySpec, Waypoint
from flights.camera import get_camera, preview
from flights.plan import plan_survey

HOME = Waypoint(lat_deg=34.9295, lon_deg=-2.3005, altitude_m=0.0)
HOME_AMSL_M = 152.5
"""A ground height at home, as a DEM would give it."""
TRANSIT_LEG = 3
"""In :func:`terrain_mission`, the leg from waypoint 3 to 4 takes no photos."""


def berkane_mission() -> Mission:
    """A 300 m × 200 m survey near Berkane at 10 cm/px with the preview camera."""
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32630", always_xy=True)
    to_lonlat = Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True)
    x, y = to_utm.transform(-2.30, 34.93)
    corners = [
        to_lonlat.transform(cx, cy) for cx, cy in box(x, y, x + 300, y + 200).exterior.coords
    ]
    spec = SurveySpec(camera=preview(get_camera("dji_mavic_3e"), 4), gsd_cm=10.0)
    return plan_survey(Polygon(corners), spec, HOME, name="berkane-test")


def fenced_mission() -> Mission:
    """The Berkane survey with an inclusion polygon, an exclusion polygon and circle, rally."""
    mission = berkane_mission()
    lons = [w.lon_deg for w in mission.waypoints] + [HOME.lon_deg]
    lats = [w.lat_deg for w in mission.waypoints] + [HOME.lat_deg]
    margin_deg = 0.001
    west, east = min(lons) - margin_deg, max(lons) + margin_deg
    south, north = min(lats) - margin_deg, max(lats) + margin_deg
    fence = (
        FenceZone(inclusion=True, polygon_lonlat=((west, south), (east, south), (east, north))),
        FenceZone(
            inclusion=False,
            polygon_lonlat=((-2.31, 34.94), (-2.309, 34.94), (-2.309, 34.941), (-2.31, 34.941)),
        ),
        FenceZone(inclusion=False, centre_lonlat=(-2.28, 34.95), radius_m=150.0),
    )
    rally = (Waypoint(34.9291, -2.3009, 30.0), Waypoint(34.9331, -2.2952, 25.5))
    return replace(mission, fence=fence, rally_points=rally)


def terrain_mission() -> Mission:
    """The Berkane survey with per-waypoint altitudes, photos on every leg but one transit."""
    mission = berkane_mission()
    waypoints = [
        replace(w, altitude_m=mission.altitude_m + 3.0 * k, photos=k != TRANSIT_LEG)
        for k, w in enumerate(mission.waypoints)
    ]
    return replace(mission, waypoints=tuple(waypoints))


def with_camera(mission: Mission, key: str) -> Mission:
    """``mission`` as if planned for the database camera ``key`` (same waypoints)."""
    return replace(mission, spec=replace(mission.spec, camera=get_camera(key)))
