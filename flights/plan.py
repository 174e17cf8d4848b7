"""Survey planning: a boustrophedon grid of flight lines over an AOI polygon, as a Mission.

Concave AOIs and AOIs with holes are split into cells (``flights.cells``) flown one after
the other (``flights.grid``), around the holes, never across them; the time, distance and
photo count follow ``flights.flight_time``.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import Point, Polygon

from core.errors import PlanError
from core.types import Mission, SurveySpec, Waypoint
from flights.aoi import LONLAT, check_aoi, reproject
from flights.flight_time import FlightEstimate, estimate_flight
from flights.grid import ENTRY_CORNERS, GridPath, grid_path

MAX_ALTITUDE_M = 120.0
"""Open-category height cap above ground (EU 2019/947, and Morocco's drone rules)."""

MAX_OVERLAP = 0.9

MIN_OVERLAP_AT_HOLES = 0.5
"""Below this front or side overlap, photos may leave gaps at the edge of a hole."""


def check_spec(spec: SurveySpec) -> None:
    """Refuse a survey spec that is impossible or unsafe to fly, saying what to change."""
    overlaps = {"front_overlap": spec.front_overlap, "side_overlap": spec.side_overlap}
    for name, overlap in overlaps.items():
        if not 0.0 <= overlap <= MAX_OVERLAP:
            raise PlanError(f"{name} must be within [0, {MAX_OVERLAP}], got {overlap}")
    if spec.gsd_cm <= 0.0:
        raise PlanError(f"gsd_cm must be > 0, got {spec.gsd_cm}")
    if spec.speed_m_s <= 0.0:
        raise PlanError(f"speed_m_s must be > 0, got {spec.speed_m_s}")
    if spec.turnaround_m < 0.0:
        raise PlanError(f"turnaround_m must be >= 0, got {spec.turnaround_m}")
    if not math.isfinite(spec.grid_angle_deg):
        raise PlanError(f"grid_angle_deg must be a number of degrees, got {spec.grid_angle_deg}")
    if spec.entry_corner not in ENTRY_CORNERS:
        raise PlanError(
            f"entry_corner must be one of {', '.join(ENTRY_CORNERS)} (corners of the grid "
            f"with lines heading 'north' along the grid angle), got {spec.entry_corner!r}"
        )
    camera = spec.camera
    if spec.altitude_m > MAX_ALTITUDE_M:
        finest_gsd_cm = camera.gsd_cm(MAX_ALTITUDE_M)
        raise PlanError(
            f"{spec.gsd_cm} cm/px with {camera.name} needs {spec.altitude_m:.0f} m above ground, "
            f"over the {MAX_ALTITUDE_M:.0f} m cap; ask for at most {finest_gsd_cm:.2f} cm/px"
        )
    interval_s = spec.trigger_distance_m / spec.speed_m_s
    if interval_s < camera.min_trigger_interval_s:
        fastest_m_s = spec.trigger_distance_m / camera.min_trigger_interval_s
        raise PlanError(
            f"{camera.name} needs {camera.min_trigger_interval_s} s between photos, but a photo "
            f"every {spec.trigger_distance_m:.1f} m at {spec.speed_m_s} m/s comes every "
            f"{interval_s:.2f} s; fly at {fastest_m_s:.1f} m/s or slower, or lower front_overlap"
        )


def estimate_path(path: GridPath, spec: SurveySpec, home_xy: np.ndarray) -> FlightEstimate:
    """Distance, time and photos of ``path`` flown from and back to ``home_xy``."""
    return estimate_flight(
        path.xy,
        path.photos,
        home_xy,
        altitude_m=spec.altitude_m,
        speed_m_s=spec.speed_m_s,
        trigger_distance_m=spec.trigger_distance_m,
    )


def _warnings(area: Polygon, spec: SurveySpec) -> tuple[str, ...]:
    low = min(spec.front_overlap, spec.side_overlap)
    if area.interiors and low < MIN_OVERLAP_AT_HOLES:
        return (
            f"the AOI has holes and an overlap of {low:.0%}: lines stop at hole edges, so "
            f"photos may leave gaps there below {MIN_OVERLAP_AT_HOLES:.0%} overlap",
        )
    return ()


def plan_survey(
    aoi: Polygon, spec: SurveySpec, home: Waypoint, *, name: str, crs: str = "EPSG:32630"
) -> Mission:
    """A survey mission over ``aoi`` (lon/lat polygon, holes allowed), planned in ``crs``.

    Lines head ``spec.grid_angle_deg`` clockwise from grid north (use
    ``flights.grid_angle.best_grid_angle`` for the fastest one). Waypoints fly at the altitude
    of the GSD; the camera fires every ``spec.trigger_distance_m`` on the photo legs only.
    Turns, transits and the transits from and back to ``home`` that would cross a hole of
    ``aoi`` fly around it, camera off (unless ``home`` lies in the hole). Distance and time
    include the climb, the transits, the turns, the detours and the descent.
    """
    check_spec(spec)
    aoi = check_aoi(aoi)
    area = reproject(aoi, LONLAT, crs)
    home_point = reproject(Point(home.lon_deg, home.lat_deg), LONLAT, crs)
    home_xy = np.array(home_point.coords[0])
    path = grid_path(area, spec, home_xy)
    estimate = estimate_path(path, spec, home_xy)
    lonlat = shapely.get_coordinates(reproject(shapely.multipoints(path.xy), crs, LONLAT))
    waypoints = tuple(
        Waypoint(float(lat), float(lon), spec.altitude_m, photos=bool(on))
        for (lon, lat), on in zip(lonlat, path.photos, strict=True)
    )
    return Mission(
        name=name,
        spec=spec,
        home=home,
        waypoints=waypoints,
        distance_m=estimate.distance_m,
        estimated_time_s=estimate.time_s,
        photo_count=estimate.photo_count,
        aoi_wkt_lonlat=aoi.wkt,
        warnings=_warnings(area, spec),
    )
