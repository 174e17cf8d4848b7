"""Campaign planning: a layer of AOIs (a commune, a province) -> battery sorties -> days.

Each AOI (split into strips when larger than the maximum mission area) gets a launch site:
the nearest point of a launch-site layer, or else a point on its own boundary (see
:func:`_launch_points`). Sites are visited in a short order (nearest neighbour + 2-opt);
each AOI's survey is cut into sorties that fit on one battery (:mod:`flights.sorties`), each
sortie is fenced and checked like a single mission (:mod:`flights.safety`), and the sorties
are packed into days by daylight, set-up, battery-swap and road-transit times. An area with
an unsafe or impossible sortie (a no-fly zone on its way, out of reach) is left out whole
and listed with the reason, never silently dropped.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import geopandas as gpd
import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import Point, Polygon, box
from shapely.ops import nearest_points

from core.errors import PlanError
from core.types import Camera, Mission, SurveySpec, Waypoint
from flights.aoi import LONLAT, reproject
from flights.aoi_layer import SurveyArea
from flights.daylight import MOROCCO_TZ, flying_window
from flights.grid_angle import best_grid_angle_m
from flights.plan import check_spec, plan_survey
from flights.route import order_points
from flights.safety import GEOFENCE_MARGIN_M, check_mission, load_no_fly_zones, with_geofence
from flights.sorties import split_mission
from flights.terrain import Dem, flat_terrain, follow_terrain

JPEG_BYTES_PER_PIXEL = 0.5
"""An RGB JPEG of a survey camera: ~10-11 MB for the Mavic 3E's 20.9 Mpx."""

RAW_BAND_BYTES_PER_PIXEL = 2.0
"""A multispectral band stored as a 16-bit TIFF (MicaSense, Mavic 3M, Sequoia)."""

_RGB = frozenset({"red", "green", "blue"})


@dataclass(frozen=True)
class CampaignOptions:
    """How a crew works in the field. Times in seconds, local clock times for the window."""

    reserve: float = 0.25
    """Share of the battery kept for landing safely: usable time = endurance x (1 - reserve)."""
    endurance_s: float | None = None
    """Flight time of one battery; default: the camera's ``endurance_s``."""
    max_mission_area_ha: float | None = None
    """AOIs larger than this are cut into strips along the flight lines before planning."""
    sun_margin_s: float = 1800.0
    earliest: time | None = None
    latest: time | None = None
    timezone: str = MOROCCO_TZ
    battery_swap_s: float = 300.0
    setup_s: float = 900.0
    """Unpack, GNSS fix, pre-flight checks at each new launch site."""
    road_speed_m_s: float = 40 / 3.6
    detour_factor: float = 1.4
    """Road distance over straight-line distance between two sites."""
    site_reach_m: float = 300.0
    """An AOI this close to the current launch site is flown from it (no move, no set-up)."""
    auto_angle: bool = False
    """Fly each area at its fastest grid angle (:func:`flights.grid_angle.best_grid_angle_m`)
    instead of ``spec.grid_angle_deg``."""
    geofence_margin_m: float = GEOFENCE_MARGIN_M


@dataclass(frozen=True)
class LaunchSite:
    """Where the crew sets up and the drone takes off and lands (lon/lat)."""

    site_id: str
    lon_deg: float
    lat_deg: float


@dataclass(frozen=True)
class Sortie:
    """One flight on one battery: a Mission from a launch site, scheduled on a day."""

    aoi_id: str
    commune: str
    site_id: str
    mission: Mission
    data_mb: float
    takeoff: datetime
    landing: datetime
    battery_swap: bool
    """A fresh battery goes in before this flight (else it flies on what is left)."""

    @property
    def flight_time_s(self) -> float:
        return self.mission.estimated_time_s

    @property
    def photo_count(self) -> int:
        return self.mission.photo_count

    @property
    def resume(self) -> Waypoint:
        """Where this sortie picks up the survey (its first waypoint)."""
        return self.mission.waypoints[0]


@dataclass(frozen=True)
class DayPlan:
    """The sorties of one day inside its flying window, and the road driven to and between
    its sites (the first drive happens before the window opens)."""

    day: date
    window_start: datetime
    window_end: datetime
    sorties: tuple[Sortie, ...]
    road_m: float

    @property
    def flight_time_s(self) -> float:
        return sum(s.flight_time_s for s in self.sorties)

    @property
    def photo_count(self) -> int:
        return sum(s.photo_count for s in self.sorties)

    @property
    def batteries(self) -> int:
        """Battery charges used (the first one of the day and each swap)."""
        return 1 + sum(s.battery_swap for s in self.sorties[1:])


@dataclass(frozen=True)
class RefusedArea:
    """An area left out of a campaign, and why (the :class:`PlanError` it raised)."""

    area: SurveyArea
    reason: str


@dataclass(frozen=True)
class Campaign:
    """Every sortie of a campaign, by day, with its launch sites and totals."""

    name: str
    crs: str
    spec: SurveySpec
    usable_endurance_s: float
    sites: tuple[LaunchSite, ...]
    days: tuple[DayPlan, ...]
    warnings: tuple[str, ...] = ()
    """Mission warnings (with how many missions have each), areas left out, estimates."""
    refused: tuple[RefusedArea, ...] = ()

    @property
    def sorties(self) -> tuple[Sortie, ...]:
        return tuple(s for d in self.days for s in d.sorties)

    @property
    def flight_time_s(self) -> float:
        return sum(d.flight_time_s for d in self.days)

    @property
    def photo_count(self) -> int:
        return sum(d.photo_count for d in self.days)

    @property
    def data_mb(self) -> float:
        return sum(s.data_mb for s in self.sorties)

    @property
    def road_m(self) -> float:
        return sum(d.road_m for d in self.days)


def photo_size_mb(camera: Camera) -> tuple[float, bool]:
    """Size of one capture (MB) and whether it is estimated (no ``photo_mb`` for the camera):
    RGB bands as a JPEG, every other band as a 16-bit TIFF."""
    if camera.photo_mb is not None:
        return camera.photo_mb, False
    pixels = camera.image_width_px * camera.image_height_px
    raw_bands = len(set(camera.bands) - _RGB)
    size_b = pixels * (JPEG_BYTES_PER_PIXEL * bool(_RGB & set(camera.bands)))
    return (size_b + pixels * RAW_BAND_BYTES_PER_PIXEL * raw_bands) / 1e6, True


# ---- areas, sites and order ----------------------------------------------------------------


def split_area(polygon_m: Polygon, max_area_m2: float, grid_angle_deg: float) -> list[Polygon]:
    """``polygon_m`` cut into strips of equal area, at most ``max_area_m2`` each, along the
    flight lines (``grid_angle_deg`` clockwise from north) so that no line is cut short."""
    count = math.ceil(polygon_m.area / max_area_m2 - 1e-9)
    if count <= 1:
        return [polygon_m]
    origin = polygon_m.centroid
    rotated = affinity.rotate(polygon_m, grid_angle_deg, origin=origin)
    minx, miny, maxx, maxy = rotated.bounds

    def west_area_m2(x: float) -> float:
        return rotated.intersection(box(minx - 1, miny - 1, x, maxy + 1)).area

    cuts = [minx - 1.0]
    for k in range(1, count):
        target_m2, lo, hi = rotated.area * k / count, cuts[-1], maxx
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if west_area_m2(mid) < target_m2 else (lo, mid)
        cuts.append((lo + hi) / 2)
    cuts.append(maxx + 1.0)
    strips = []
    for west, east in zip(cuts[:-1], cuts[1:], strict=True):
        piece = rotated.intersection(box(west, miny - 1, east, maxy + 1))
        strips.extend(
            p for p in shapely.get_parts(piece) if isinstance(p, Polygon) and p.area > 1.0
        )
    return [affinity.rotate(p, -grid_angle_deg, origin=origin) for p in strips]


def _split_areas(
    areas: list[SurveyArea], max_area_m2: float, grid_angle_deg: float
) -> list[SurveyArea]:
    """Areas cut to at most ``max_area_m2``; the parts of an AOI are numbered 1, 2, ..."""
    parts: Counter[str] = Counter()
    pieces = []
    for area in areas:
        for polygon_m in split_area(area.polygon_m, max_area_m2, grid_angle_deg):
            parts[area.aoi_id] += 1
            pieces.append(dataclasses.replace(area, polygon_m=polygon_m, part=parts[area.aoi_id]))
    return pieces


def _launch_points(
    areas: list[SurveyArea], base_m: Point | None, reach_m: float
) -> tuple[list[SurveyArea], list[tuple[str, Point]]]:
    """Areas in visiting order and their launch site, with no launch-site layer.

    Areas are ordered by their centres; each is flown from the current site if within
    ``reach_m`` of it, else from the point of its boundary nearest the current site (a field
    edge, which is where a track usually runs; roads are not known). The first site is the
    boundary point nearest ``base_m``, or nearest the middle of all areas.
    """
    centres = np.array([a.polygon_m.centroid.coords[0] for a in areas])
    start = None if base_m is None else np.array(base_m.coords[0])
    ordered = [areas[i] for i in order_points(centres, start)]
    here = base_m if base_m is not None else Point(centres.mean(axis=0))
    sites = 0
    launches = []
    for area in ordered:
        if not sites or area.polygon_m.distance(here) > reach_m:
            here = nearest_points(area.polygon_m.exterior, here)[0]
            sites += 1
        launches.append((f"S{sites:03d}", here))
    return ordered, launches


def _nearest_sites(
    areas: list[SurveyArea], sites: gpd.GeoDataFrame, base_m: Point | None
) -> tuple[list[SurveyArea], list[tuple[str, Point]]]:
    """Areas in visiting order, each flown from its nearest site of the launch-site layer."""
    points = list(sites.geometry)
    nearest = [int(np.argmin(shapely.distance(a.polygon_m, sites.geometry.values))) for a in areas]
    used = sorted(set(nearest))
    xy = np.array([points[i].coords[0] for i in used])
    start = None if base_m is None else np.array(base_m.coords[0])
    ordered: list[SurveyArea] = []
    launches = []
    for k in order_points(xy, start):
        site = used[k]
        mine = [a for a, n in zip(areas, nearest, strict=True) if n == site]
        centres = np.array([a.polygon_m.centroid.coords[0] for a in mine])
        for i in order_points(centres, np.array(points[site].coords[0])):
            ordered.append(mine[i])
            launches.append((str(sites.site_id.iloc[site]), points[site]))
    return ordered, launches


# ---- days ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Flight:
    area: SurveyArea
    site_id: str
    site_m: Point
    mission: Mission
    data_mb: float


def _pack_days(
    flights: list[_Flight],
    start_date: date,
    usable_s: float,
    opts: CampaignOptions,
    lonlat: tuple[float, float],
) -> list[DayPlan]:
    """Days of sorties in order: a sortie that would land after the window waits for the next
    day. The crew starts each day at its first site, set up: they drove there (counted in the
    day's road) before the window opened."""
    days: list[DayPlan] = []
    day, next_flight, site = start_date, 0, flights[0].site_m
    while next_flight < len(flights):
        start, end = flying_window(
            day,
            *lonlat,
            margin_s=opts.sun_margin_s,
            earliest=opts.earliest,
            latest=opts.latest,
            timezone=opts.timezone,
        )
        first_site = flights[next_flight].site_m
        road_m = first_site.distance(site) * opts.detour_factor
        clock, site, battery_s = start, first_site, usable_s
        sorties: list[Sortie] = []
        for flight in flights[next_flight:]:
            delay_s, moved_m = 0.0, 0.0
            if not flight.site_m.equals(site):
                moved_m = flight.site_m.distance(site) * opts.detour_factor
                delay_s += moved_m / opts.road_speed_m_s + opts.setup_s
            duration_s = flight.mission.estimated_time_s
            swap = duration_s > battery_s
            delay_s += opts.battery_swap_s if swap else 0.0
            takeoff = clock + timedelta(seconds=delay_s)
            landing = takeoff + timedelta(seconds=duration_s)
            if landing > end:
                if not sorties:
                    raise PlanError(
                        f"{flight.mission.name}: a {duration_s / 60:.0f} min sortie does not fit "
                        f"in the {start:%H:%M}-{end:%H:%M} flying window of {day}"
                    )
                break
            sorties.append(
                Sortie(
                    flight.area.aoi_id,
                    flight.area.commune,
                    flight.site_id,
                    flight.mission,
                    flight.data_mb,
                    takeoff,
                    landing,
                    swap,
                )
            )
            battery_s = (usable_s if swap else battery_s) - duration_s
            clock, site, road_m = landing, flight.site_m, road_m + moved_m
        next_flight += len(sorties)
        days.append(DayPlan(day, start, end, tuple(sorties), road_m))
        day += timedelta(days=1)
    return days


# ---- the campaign --------------------------------------------------------------------------


def _endurance_s(spec: SurveySpec, opts: CampaignOptions) -> float:
    endurance_s = opts.endurance_s or spec.camera.endurance_s
    if endurance_s is None:
        raise PlanError(
            f"no battery endurance for {spec.camera.name}: give CampaignOptions(endurance_s=...)"
        )
    if not 0.0 <= opts.reserve < 1.0:
        raise PlanError(f"battery reserve must be within [0, 1), got {opts.reserve}")
    return endurance_s


def _fastest_angle_deg(polygon_m: Polygon, spec: SurveySpec, home_m: Point) -> float:
    return best_grid_angle_m(polygon_m, spec, np.array(home_m.coords[0])).angle_deg


def _split_by_angle(
    areas: list[SurveyArea], max_area_m2: float, spec: SurveySpec, auto_angle: bool
) -> list[SurveyArea]:
    """Areas cut into strips along their lines: the spec's angle, or each area's fastest
    (from its centre, as its launch site is not chosen yet)."""
    if not auto_angle:
        return _split_areas(areas, max_area_m2, spec.grid_angle_deg)
    pieces = []
    for area in areas:
        if area.polygon_m.area <= max_area_m2:
            pieces.append(area)
            continue
        angle_deg = _fastest_angle_deg(area.polygon_m, spec, area.polygon_m.centroid)
        pieces += _split_areas([area], max_area_m2, angle_deg)
    return pieces


def _safe_sorties(
    area: SurveyArea,
    site_m: Point,
    spec: SurveySpec,
    endurance_s: float,
    no_fly: gpd.GeoDataFrame,
    dem: Dem | None,
    options: CampaignOptions,
    crs: str,
) -> tuple[Mission, ...]:
    """The sorties of one area flown from ``site_m``, each fenced and safety-checked;
    :class:`PlanError` if any of them is unsafe or impossible."""
    site_ll = reproject(site_m, crs, LONLAT)
    home = Waypoint(lat_deg=site_ll.y, lon_deg=site_ll.x, altitude_m=0.0)
    if options.auto_angle:
        spec = dataclasses.replace(
            spec, grid_angle_deg=_fastest_angle_deg(area.polygon_m, spec, site_m)
        )
    mission = plan_survey(
        reproject(area.polygon_m, crs, LONLAT), spec, home, name=area.name, crs=crs
    )
    mission = follow_terrain(mission, dem, crs=crs) if dem else flat_terrain(mission)
    checked = []
    usable_s = endurance_s * (1.0 - options.reserve)
    for sortie in split_mission(mission, usable_s, crs=crs):
        fenced = with_geofence(sortie, options.geofence_margin_m, no_fly=no_fly)
        checked.append(
            check_mission(
                fenced,
                no_fly=no_fly,
                dem=dem,
                endurance_s=endurance_s,
                reserve=options.reserve,
            )
        )
    return tuple(checked)


def plan_campaign(
    aois: Sequence[SurveyArea],
    spec: SurveySpec,
    start_date: date,
    *,
    name: str = "campaign",
    launch_sites: gpd.GeoDataFrame | None = None,
    base_lonlat: tuple[float, float] | None = None,
    options: CampaignOptions | None = None,
    no_fly: gpd.GeoDataFrame | None = None,
    dem: Dem | None = None,
    crs: str = "EPSG:32630",
) -> Campaign:
    """Sorties over every area of ``aois`` (from :func:`load_aois`), ordered and packed into
    days from ``start_date``.

    ``launch_sites`` (from :func:`load_launch_sites`) are optional; without them each area
    is flown from a point of its boundary. ``base_lonlat`` is where the crew starts.
    Every sortie gets a geofence and the checks of :func:`flights.safety.check_mission`
    against ``no_fly`` (from :func:`flights.safety.load_no_fly_zones`; default: the airport
    zones) and ``dem`` (terrain followed if given, else flat terrain and a warning). An area
    with a sortie that fails them is left out and listed in ``refused`` and ``warnings``;
    :class:`PlanError` if no area is left.
    """
    if not aois:
        raise PlanError(f"{name}: no AOI to plan")
    check_spec(spec)
    options = options or CampaignOptions()
    endurance_s = _endurance_s(spec, options)
    usable_s = endurance_s * (1.0 - options.reserve)
    zones = load_no_fly_zones() if no_fly is None else no_fly
    areas = list(aois)
    if options.max_mission_area_ha is not None:
        max_area_m2 = options.max_mission_area_ha * 1e4
        areas = _split_by_angle(areas, max_area_m2, spec, options.auto_angle)
    base_m = None if base_lonlat is None else reproject(Point(base_lonlat), LONLAT, crs)
    if launch_sites is None:
        ordered, launches = _launch_points(areas, base_m, options.site_reach_m)
    else:
        ordered, launches = _nearest_sites(areas, launch_sites, base_m)

    photo_mb, estimated = photo_size_mb(spec.camera)
    flights: list[_Flight] = []
    refused: list[RefusedArea] = []
    for area, (site_id, site_m) in zip(ordered, launches, strict=True):
        try:
            sorties = _safe_sorties(area, site_m, spec, endurance_s, zones, dem, options, crs)
        except PlanError as exc:
            refused.append(RefusedArea(area, str(exc)))
            continue
        flights += [_Flight(area, site_id, site_m, s, s.photo_count * photo_mb) for s in sorties]
    if not flights:
        reasons = "; ".join(f"{r.area.name}: {r.reason}" for r in refused[:3])
        raise PlanError(f"{name}: no AOI can be flown safely ({reasons})")

    sites_ll: dict[str, LaunchSite] = {}
    for flight in flights:
        ll = reproject(flight.site_m, crs, LONLAT)
        sites_ll.setdefault(flight.site_id, LaunchSite(flight.site_id, ll.x, ll.y))
    centre = np.mean([(s.lon_deg, s.lat_deg) for s in sites_ll.values()], axis=0)
    days = _pack_days(flights, start_date, usable_s, options, (centre[0], centre[1]))
    warnings = Counter(w for f in flights for w in f.mission.warnings)
    notes = [f"{text} ({count} missions)" for text, count in warnings.items()]
    notes += [f"AOI {r.area.name} left out: {r.reason}" for r in refused]
    if estimated:
        notes.append(
            f"data volume estimated at {photo_mb:.1f} MB per photo from {spec.camera.name}'s "
            "pixels and bands (no photo_mb in the camera database)"
        )
    return Campaign(
        name,
        crs,
        spec,
        usable_s,
        tuple(sites_ll.values()),
        tuple(days),
        tuple(notes),
        tuple(refused),
    )
