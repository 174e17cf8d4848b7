"""Survey planning: a lawnmower (boustrophedon) grid of flight lines over an AOI polygon."""

from __future__ import annotations

import math
from itertools import pairwise, product

import shapely
from shapely import affinity
from shapely.geometry import LineString, Point, Polygon, box

from core.errors import PlanError
from core.types import Mission, SurveySpec, Waypoint
from flights.aoi import LONLAT, check_aoi, reproject

MAX_ALTITUDE_M = 120.0
"""Open-category height cap above ground (EU 2019/947, and Morocco's drone rules)."""

ACCELERATION_M_S2 = 2.5
"""Horizontal acceleration of a multirotor between waypoints (ArduCopter WPNAV_ACCEL)."""

MAX_OVERLAP = 0.9

Swath = list[tuple[float, float, float]]
"""One flight line in the rotated frame: its x and the (y_start, y_end) of each segment."""


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


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _swaths(area: Polygon, spacing_m: float, extension_m: float) -> list[Swath]:
    """South-north lines ``spacing_m`` apart over ``area``, the first half a spacing in.

    Each line flies wherever the polygon lies within its swath (half a spacing each side),
    not only where the line itself crosses the polygon: concave edges and notches stay
    covered. Segments are lengthened by ``extension_m`` at both ends, then merged.
    """
    minx, miny, maxx, maxy = area.bounds
    count = max(1, math.ceil((maxx - minx) / spacing_m))
    swaths = []
    for k in range(count):
        x = minx + (k + 0.5) * spacing_m
        strip = box(x - spacing_m / 2, miny - 1.0, x + spacing_m / 2, maxy + 1.0)
        parts = [p for p in shapely.get_parts(area.intersection(strip)) if p.area > 0.0]
        spans = [(p.bounds[1] - extension_m, p.bounds[3] + extension_m) for p in parts]
        swaths.append([(x, lo, hi) for lo, hi in _merge(spans)])
    return [s for s in swaths if s]


def _boustrophedon(swaths: list[Swath], east_first: bool, north_first: bool) -> list[Point]:
    """The line ends in flying order, turning back on every other line."""
    ordered = swaths[::-1] if east_first else swaths
    points: list[Point] = []
    for k, swath in enumerate(ordered):
        northward = (k % 2 == 0) != north_first
        segments = swath if northward else swath[::-1]
        for x, lo, hi in segments:
            ends = [Point(x, lo), Point(x, hi)]
            points.extend(ends if northward else ends[::-1])
    return points


def survey_path(area: Polygon, spec: SurveySpec, home: Point) -> list[Point]:
    """Line ends of a lawnmower grid over ``area`` (projected CRS), starting nearest ``home``.

    Lines run ``grid_angle_deg`` clockwise from north (QGroundControl's transect angle), are
    extended by half the along-track footprint (edge coverage) plus ``spec.turnaround_m``.
    """
    angle_deg = spec.grid_angle_deg
    origin = area.centroid
    # Rotating counter-clockwise by the heading brings the lines onto the south-north axis.
    rotated = affinity.rotate(area, angle_deg, origin=origin)
    home_rotated = affinity.rotate(home, angle_deg, origin=origin)
    _, along_m = spec.camera.footprint_m(spec.altitude_m)
    swaths = _swaths(rotated, spec.line_spacing_m, along_m / 2 + spec.turnaround_m)

    variants = (_boustrophedon(swaths, *flags) for flags in product((False, True), repeat=2))
    best = min(variants, key=lambda points: home_rotated.distance(points[0]))
    return [affinity.rotate(p, -angle_deg, origin=origin) for p in best]


def plan_survey(
    aoi: Polygon, spec: SurveySpec, home: Waypoint, *, name: str, crs: str = "EPSG:32630"
) -> Mission:
    """A survey mission over ``aoi`` (lon/lat polygon), planned in the projected ``crs``.

    The camera fires every ``spec.trigger_distance_m`` from the first waypoint to the last,
    so ``photo_count`` counts the photos on turns too. Distance includes the climb, the
    transit from and back to ``home`` and the descent; the time adds a stop-and-go penalty
    at each waypoint.
    """
    check_spec(spec)
    aoi = check_aoi(aoi)
    area = reproject(aoi, LONLAT, crs)
    home_xy = reproject(Point(home.lon_deg, home.lat_deg), LONLAT, crs)
    path = survey_path(area, spec, home_xy)

    lines_m = sum(a.distance(b) for a, b in pairwise(path))
    transit_m = home_xy.distance(path[0]) + path[-1].distance(home_xy)
    distance_m = lines_m + transit_m + 2 * spec.altitude_m
    stop_penalty_s = spec.speed_m_s / ACCELERATION_M_S2
    lonlat = reproject(LineString(path), crs, LONLAT).coords
    return Mission(
        name=name,
        spec=spec,
        home=home,
        waypoints=tuple(Waypoint(lat, lon, spec.altitude_m) for lon, lat in lonlat),
        distance_m=distance_m,
        estimated_time_s=distance_m / spec.speed_m_s + len(path) * stop_penalty_s,
        photo_count=math.floor(lines_m / spec.trigger_distance_m) + 1,
        aoi_wkt_lonlat=aoi.wkt,
    )
