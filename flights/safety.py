"""Mission safety: no-fly zones, the geofence, the height cap, battery endurance and wind.

The default no-fly layer (``no_fly_zones.geojson``, beside this module) holds the two
airports near Berkane province: Oujda Angads (GMFO) and Nador Al Aroui (GMMW). Each zone is
a circle of 6.5 km around the aerodrome reference point, i.e. 5 km beyond the ends of their
3000 m runways: 5 km is the distance commonly reported for Moroccan drone flights near an
airport (we found no official text), and the ICAO aerodrome traffic zone (2 NM = 3.7 km)
lies within it. The reference points are those of Wikipedia's infoboxes, credited to DAFIF
(GMFO 34°47'14"N 1°55'26"W, GMMW 34°59'20"N 3°01'42"W); each feature's ``source`` says so.
Operators add their own zones (helipads, prisons, military sites, NOTAMs) from a GeoPackage
or GeoJSON with a ``name`` column.

Checks run in an azimuthal equidistant CRS centred on home (metres, true distances).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from shapely.geometry import LineString, MultiPoint, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from core.errors import InputError, PlanError
from core.types import FenceZone, Mission, Waypoint
from flights.aoi import LONLAT
from flights.plan import MAX_ALTITUDE_M
from flights.terrain import Dem, local_metric_crs, local_transformers

DEFAULT_NO_FLY = Path(__file__).with_name("no_fly_zones.geojson")
ZONE_COLUMNS = ["name", "icao", "reason", "source"]

GEOFENCE_MARGIN_M = 50.0
"""The inclusion fence surrounds the AOI, the flight path and home by this margin."""

NEAR_ZONE_M = 5000.0
"""No-fly zones within this distance of the fence travel with the mission as exclusion fences."""

WIND_WARNING_SHARE = 0.8
"""Wind above this share of the drone's limit gets a warning."""

CHECK_STEP_M = 5.0
"""Spacing of the points checked along the path (fence, height above ground)."""


def _read_zones(path: Path) -> gpd.GeoDataFrame:
    try:
        frame = pyogrio.read_dataframe(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise InputError(path, f"cannot read the no-fly zones: {exc}") from exc
    if "name" not in frame.columns:
        raise InputError(path, f"no 'name' column (columns: {', '.join(map(str, frame.columns))})")
    if frame.empty:
        raise InputError(path, "the layer has no zones")
    if frame.crs is None:
        raise InputError(path, "the layer has no CRS; save it with one (EPSG:4326 or projected)")
    for index, geom in zip(frame.index, frame.geometry, strict=True):
        if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
            kind = "no geometry" if geom is None else geom.geom_type
            raise InputError(path, f"zone {frame.at[index, 'name']!r}: {kind}, not a polygon")
        if not geom.is_valid:
            problem = explain_validity(geom)
            raise InputError(path, f"zone {frame.at[index, 'name']!r}: invalid polygon ({problem})")
    zones = frame.to_crs(LONLAT)
    for column in ZONE_COLUMNS:
        if column not in zones.columns:
            zones[column] = str(path) if column == "source" else ""
    zones[ZONE_COLUMNS] = zones[ZONE_COLUMNS].fillna("").astype(str)
    zones.loc[zones["reason"] == "", "reason"] = "user no-fly zone"
    return zones[[*ZONE_COLUMNS, "geometry"]]


def load_no_fly_zones(extra: str | Path | None = None) -> gpd.GeoDataFrame:
    """The default airport zones, plus the polygons of ``extra`` (GPKG/GeoJSON), in lon/lat."""
    layers = [_read_zones(DEFAULT_NO_FLY)]
    if extra is not None:
        layers.append(_read_zones(Path(extra)))
    return gpd.GeoDataFrame(pd.concat(layers, ignore_index=True), crs=LONLAT)


class _Frame:
    """Lon/lat ⇄ metres in the local CRS of a mission (centred on home)."""

    def __init__(self, home: Waypoint) -> None:
        self.crs = local_metric_crs(home.lon_deg, home.lat_deg)
        self._to_m, self._to_lonlat = local_transformers(home.lon_deg, home.lat_deg)

    def xy_m(self, lon_deg: object, lat_deg: object) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._to_m.transform(lon_deg, lat_deg)
        return np.atleast_1d(x), np.atleast_1d(y)

    def lonlat_deg(self, x_m: object, y_m: object) -> tuple[np.ndarray, np.ndarray]:
        lon, lat = self._to_lonlat.transform(x_m, y_m)
        return np.atleast_1d(lon), np.atleast_1d(lat)

    def to_m(self, geom: BaseGeometry) -> BaseGeometry:
        return shapely.transform(geom, lambda xy: np.column_stack(self.xy_m(*xy.T)))

    def to_lonlat(self, geom: BaseGeometry) -> BaseGeometry:
        return shapely.transform(geom, lambda xy: np.column_stack(self.lonlat_deg(*xy.T)))

    def zones_m(self, zones: gpd.GeoDataFrame) -> np.ndarray:
        """The geometries of a no-fly layer in this frame."""
        lonlat = zones if zones.crs == LONLAT else zones.to_crs(LONLAT)
        return np.array([self.to_m(g) for g in lonlat.geometry])

    def where(self, x_m: float, y_m: float) -> str:
        lon, lat = self.lonlat_deg(x_m, y_m)
        return f"lon {lon[0]:.5f}, lat {lat[0]:.5f}"


def _fence_polygon_m(zone: FenceZone, frame: _Frame) -> BaseGeometry:
    if zone.centre_lonlat is not None:
        return frame.to_m(Point(zone.centre_lonlat)).buffer(zone.radius_m, quad_segs=16)
    return frame.to_m(Polygon(zone.polygon_lonlat))


def _ring(polygon_lonlat: Polygon) -> tuple[tuple[float, float], ...]:
    """The exterior of a lon/lat polygon as a ring without the closing vertex."""
    return tuple((float(x), float(y)) for x, y in polygon_lonlat.exterior.coords[:-1])


def _outward_buffer(geom: BaseGeometry, margin_m: float, quad_segs: int = 4) -> BaseGeometry:
    """``geom`` grown by at least ``margin_m`` everywhere.

    GEOS draws a corner's arc as chords of up to 1.5 × (90° / ``quad_segs``) each, inside
    the circle: the radius is enlarged so that the chords stay ``margin_m`` away.
    """
    half_chord_rad = 0.75 * (math.pi / 2) / quad_segs
    return geom.buffer(margin_m / math.cos(half_chord_rad), quad_segs=quad_segs)


def geofence(mission: Mission, margin_m: float = GEOFENCE_MARGIN_M) -> FenceZone:
    """An inclusion fence: the convex hull of AOI, waypoints, rally points and home + margin."""
    frame = _Frame(mission.home)
    stops = [mission.home, *mission.waypoints, *mission.rally_points]
    hull = MultiPoint([(w.lon_deg, w.lat_deg) for w in stops])
    if mission.aoi_wkt_lonlat:
        hull = hull.union(shapely.from_wkt(mission.aoi_wkt_lonlat))
    fence_m = _outward_buffer(frame.to_m(hull).convex_hull, margin_m)
    return FenceZone(inclusion=True, polygon_lonlat=_ring(frame.to_lonlat(fence_m)))


def with_geofence(
    mission: Mission,
    margin_m: float = GEOFENCE_MARGIN_M,
    *,
    no_fly: gpd.GeoDataFrame | None = None,
    near_m: float = NEAR_ZONE_M,
) -> Mission:
    """``mission`` with its fence: the inclusion :func:`geofence`, and as exclusion fences
    the no-fly zones (default layer if ``no_fly`` is None) within ``near_m`` of it."""
    inclusion = geofence(mission, margin_m)
    frame = _Frame(mission.home)
    zones = load_no_fly_zones() if no_fly is None else no_fly
    zones_m = frame.zones_m(zones)
    fence_m = frame.to_m(Polygon(inclusion.polygon_lonlat))
    near = shapely.dwithin(zones_m, fence_m, near_m)
    exclusions = []
    for zone_m in zones_m[near]:
        for part in shapely.get_parts(zone_m):
            simple = _outward_buffer(Polygon(part.exterior), 10.0).simplify(10.0)
            exclusions.append(
                FenceZone(inclusion=False, polygon_lonlat=_ring(frame.to_lonlat(simple)))
            )
    return dataclasses.replace(mission, fence=(inclusion, *exclusions))


def _flown_path_m(mission: Mission, frame: _Frame) -> np.ndarray:
    """(x, y, altitude relative to home) of home at take-off height, waypoints, home (RTL)."""
    stops = [mission.home, *mission.waypoints, mission.home]
    x_m, y_m = frame.xy_m([w.lon_deg for w in stops], [w.lat_deg for w in stops])
    altitudes = [mission.altitude_m, *(w.altitude_m for w in mission.waypoints)]
    altitudes.append(altitudes[-1])
    return np.column_stack([x_m, y_m, altitudes])


def _densified(path: np.ndarray, step_m: float) -> np.ndarray:
    """Points at most ``step_m`` apart along the straight legs of ``path`` (x, y, altitude)."""
    parts = [path[:1]]
    for a, b in zip(path[:-1], path[1:], strict=True):
        count = max(1, math.ceil(math.hypot(*(b[:2] - a[:2])) / step_m))
        parts.append(a + np.linspace(0.0, 1.0, count + 1)[1:, None] * (b - a))
    return np.concatenate(parts)


def _no_fly_problems(path_m: LineString, zones: gpd.GeoDataFrame, frame: _Frame) -> list[str]:
    zones_m = frame.zones_m(zones)
    hits = shapely.intersects(zones_m, path_m)
    problems = []
    for zone_m, (_, zone) in zip(zones_m[hits], zones[hits].iterrows(), strict=True):
        inside = shapely.segmentize(path_m.intersection(zone_m), CHECK_STEP_M)
        points = shapely.points(shapely.get_coordinates(inside))
        depth_m = float(shapely.distance(points, zone_m.boundary).max())
        icao, reason = zone.get("icao") or "", zone.get("reason") or "no-fly zone"
        label = f"{zone['name']} ({icao})" if icao else str(zone["name"])
        problems.append(
            f"its path enters the no-fly zone {label} by {depth_m:.0f} m ({reason}); "
            "move the AOI and home out of the zone, or fly it with an authorisation"
        )
    return problems


def _fence_problems(points: np.ndarray, mission: Mission, frame: _Frame) -> list[str]:
    problems = []
    for zone in mission.fence:
        fence_m = _fence_polygon_m(zone, frame)
        inside = shapely.contains_xy(fence_m, points[:, 0], points[:, 1])
        wrong = ~inside if zone.inclusion else inside
        if not wrong.any():
            continue
        xy = shapely.points(points[wrong, :2])
        if zone.inclusion:
            by_m = shapely.distance(xy, fence_m)
            verb = "leaves its geofence"
        else:
            by_m = shapely.distance(xy, fence_m.boundary)
            verb = "enters an exclusion zone of its geofence"
        k = int(np.argmax(by_m))
        where = frame.where(*points[wrong][k, :2])
        problems.append(
            f"it {verb} by {by_m[k]:.0f} m near {where}; re-plan the fence "
            "(flights.safety.with_geofence) or keep the path within it"
        )
    return problems


def _relative_to_home(above_home_m: float) -> str:
    side = "above" if above_home_m >= 0.0 else "below"
    return f"the ground there is {abs(above_home_m):.0f} m {side} home"


def _agl_problems(
    points: np.ndarray, frame: _Frame, dem: Dem | None, max_agl_m: float, min_agl_m: float
) -> list[str]:
    """Height above ground = relative altitude + ground(home) - ground(point), or relative."""
    above_home_m = np.zeros(len(points))
    if dem is not None:
        ground_m = dem.heights_m(*frame.lonlat_deg(points[:, 0], points[:, 1]))
        home_ground_m = dem.heights_m(*frame.lonlat_deg(0.0, 0.0))[0]
        above_home_m = ground_m - home_ground_m
    agl_m = points[:, 2] - above_home_m
    problems = []
    k = int(np.argmax(agl_m))
    if agl_m[k] > max_agl_m + 0.01:
        ground = f" ({_relative_to_home(above_home_m[k])})" if dem else ""
        fix = "follow the terrain (flights.terrain.follow_terrain)" if dem else "fly lower"
        problems.append(
            f"it flies {agl_m[k]:.0f} m above ground near {frame.where(*points[k, :2])}{ground}, "
            f"over the {max_agl_m:.0f} m cap; {fix} or ask for a finer GSD"
        )
    k = int(np.argmin(agl_m))
    if dem is not None and agl_m[k] < min_agl_m:
        problems.append(
            f"it flies {agl_m[k]:.0f} m above ground near {frame.where(*points[k, :2])} "
            f"({_relative_to_home(above_home_m[k])}), under the {min_agl_m:.0f} m clearance; "
            "follow the terrain (flights.terrain.follow_terrain)"
        )
    return problems


def _endurance_problem(
    mission: Mission, endurance_s: float | None, reserve: float
) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the flight time against the usable battery time."""
    if not 0.0 <= reserve < 1.0:
        raise PlanError(f"battery reserve must be within [0, 1), got {reserve}")
    endurance_s = mission.spec.camera.endurance_s if endurance_s is None else endurance_s
    time_min = mission.estimated_time_s / 60.0
    if endurance_s is None:
        return [], [f"battery endurance unknown: the {time_min:.1f} min flight was not checked"]
    usable_min = endurance_s * (1.0 - reserve) / 60.0
    if time_min <= usable_min:
        return [], []
    return [
        f"it needs {time_min:.1f} min of flight, {time_min - usable_min:.1f} min over the "
        f"{usable_min:.1f} min usable of a {endurance_s / 60.0:.0f} min battery with a "
        f"{reserve:.0%} reserve; split the AOI into a campaign of missions of at most "
        f"{usable_min:.0f} min"
    ], []


def _wind(wind_m_s: float | None, max_wind_m_s: float | None) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the forecast wind against the drone's limit."""
    if wind_m_s is None or max_wind_m_s is None:
        return [], []
    if wind_m_s > max_wind_m_s:
        return [f"wind {wind_m_s:.1f} m/s is over the drone's {max_wind_m_s:.1f} m/s limit"], []
    if wind_m_s > WIND_WARNING_SHARE * max_wind_m_s:
        return [], [
            f"wind {wind_m_s:.1f} m/s is {wind_m_s / max_wind_m_s:.0%} of the drone's "
            f"{max_wind_m_s:.1f} m/s limit: expect drift, slower lines and a shorter battery"
        ]
    return [], []


def check_mission(
    mission: Mission,
    *,
    no_fly: gpd.GeoDataFrame | None = None,
    dem: Dem | None = None,
    endurance_s: float | None = None,
    reserve: float = 0.25,
    max_agl_m: float = MAX_ALTITUDE_M,
    min_agl_m: float = 10.0,
    wind_m_s: float | None = None,
    max_wind_m_s: float | None = None,
) -> Mission:
    """``mission`` with safety warnings added, or :class:`PlanError` listing what is unsafe.

    Refused: a path (transit from and back to home included) entering a no-fly zone
    (default layer if ``no_fly`` is None), leaving the mission's fence, flying higher than
    ``max_agl_m`` above ground (or, with a DEM, lower than ``min_agl_m``), a flight longer
    than the battery's endurance (``endurance_s``, else the camera's drone) less
    ``reserve``, or wind over ``max_wind_m_s``. Wind close to it gets a warning.
    """
    frame = _Frame(mission.home)
    path = _flown_path_m(mission, frame)
    step_m = CHECK_STEP_M if dem is None else min(CHECK_STEP_M, dem.resolution_m)
    points = _densified(path, step_m)
    zones = load_no_fly_zones() if no_fly is None else no_fly
    problems = _no_fly_problems(LineString(path[:, :2]), zones, frame)
    problems += _fence_problems(points, mission, frame)
    problems += _agl_problems(points, frame, dem, max_agl_m, min_agl_m)
    battery_problems, warnings = _endurance_problem(mission, endurance_s, reserve)
    wind_problems, wind_warnings = _wind(wind_m_s, max_wind_m_s)
    problems += battery_problems + wind_problems
    if problems:
        raise PlanError(f"mission {mission.name!r} is unsafe: " + "; ".join(problems))
    new_warnings = [w for w in warnings + wind_warnings if w not in mission.warnings]
    return dataclasses.replace(mission, warnings=(*mission.warnings, *new_warnings))
