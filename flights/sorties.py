"""Battery sorties: cut a survey mission into flights that each fit on one battery.

A sortie takes off at the launch point (home), climbs, flies to where the survey resumes,
flies lines, returns to the launch point and lands, where the battery is swapped. Cuts fall
at line ends (a line = a run of legs on which the camera fires); only a line longer than one
battery is cut inside, at a photo position, and the next sortie resumes there.
"""

from __future__ import annotations

import dataclasses
import math
from functools import cache

import numpy as np
from pyproj import Transformer

from core.errors import PlanError
from core.types import Mission, SurveySpec, Waypoint

CLIMB_SPEED_M_S = 2.5
"""Vertical speed climbing to survey height (ArduCopter WPNAV_SPEED_UP default)."""

DESCENT_SPEED_M_S = 1.5
"""Vertical speed landing back at the launch point (ArduCopter WPNAV_SPEED_DN default)."""

ACCELERATION_M_S2 = 2.5
"""Horizontal acceleration; each waypoint costs ``speed / acceleration`` (stop and go)."""

_EPS_M = 1e-6


@cache
def _transformer(src_crs: str, dst_crs: str) -> Transformer:
    return Transformer.from_crs(src_crs, dst_crs, always_xy=True)


def _xy_m(waypoints: tuple[Waypoint, ...], crs: str) -> np.ndarray:
    lon = np.array([w.lon_deg for w in waypoints])
    lat = np.array([w.lat_deg for w in waypoints])
    return np.column_stack(_transformer("EPSG:4326", crs).transform(lon, lat))


def _time_s(
    spec: SurveySpec,
    out_m: float,
    path_m: float,
    back_m: float,
    stops: int,
    climb_m: float,
    descent_m: float,
) -> float:
    """Take-off climb, transit out, the path with a stop-and-go per waypoint, back, landing."""
    horizontal_m = out_m + path_m + back_m
    return (
        climb_m / CLIMB_SPEED_M_S
        + horizontal_m / spec.speed_m_s
        + stops * spec.speed_m_s / ACCELERATION_M_S2
        + descent_m / DESCENT_SPEED_M_S
    )


def flight_time_s(mission: Mission, *, crs: str = "EPSG:32630") -> float:
    """Estimated time of ``mission`` from take-off at home to landing there (s)."""
    xy = _xy_m((mission.home, *mission.waypoints, mission.home), crs)
    legs_m = np.hypot(*np.diff(xy, axis=0).T)
    first, last = mission.waypoints[0], mission.waypoints[-1]
    return _time_s(
        mission.spec,
        legs_m[0],
        legs_m[1:-1].sum(),
        legs_m[-1],
        len(mission.waypoints),
        first.altitude_m,
        last.altitude_m,
    )


class _Path:
    """A mission's waypoints in metres along the path, to cut it anywhere."""

    def __init__(self, mission: Mission, crs: str) -> None:
        self.mission = mission
        self.crs = crs
        self.xy = _xy_m(mission.waypoints, crs)
        self.home = _xy_m((mission.home,), crs)[0]
        self.altitude_m = np.array([w.altitude_m for w in mission.waypoints])
        self.photos = np.array([w.photos for w in mission.waypoints[:-1]], dtype=bool)
        self.along_m = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(self.xy, axis=0).T))])

    def at(self, along_m: float) -> tuple[np.ndarray, float]:
        """The point (x, y) and altitude ``along_m`` metres into the path."""
        x = np.interp(along_m, self.along_m, self.xy[:, 0])
        y = np.interp(along_m, self.along_m, self.xy[:, 1])
        return np.array([x, y]), float(np.interp(along_m, self.along_m, self.altitude_m))

    def inner(self, start_m: float, end_m: float) -> np.ndarray:
        """Indices of the waypoints strictly between ``start_m`` and ``end_m``."""
        lo = np.searchsorted(self.along_m, start_m + _EPS_M, side="left")
        hi = np.searchsorted(self.along_m, end_m - _EPS_M, side="right")
        return np.arange(lo, hi)

    def lines(self) -> list[tuple[float, float]]:
        """(start, end) along the path of each line: a maximal run of photo legs."""
        edges = np.diff(np.concatenate([[0], self.photos.astype(int), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        return [(self.along_m[a], self.along_m[b]) for a, b in zip(starts, ends, strict=True)]

    def time_s(self, start_m: float, end_m: float) -> float:
        (start, start_alt_m), (end, end_alt_m) = self.at(start_m), self.at(end_m)
        return _time_s(
            self.mission.spec,
            float(np.hypot(*(start - self.home))),
            end_m - start_m,
            float(np.hypot(*(end - self.home))),
            len(self.inner(start_m, end_m)) + 2,
            start_alt_m,
            end_alt_m,
        )


def _photo_count(
    lines: list[tuple[float, float]], start_m: float, end_m: float, step_m: float
) -> int:
    """Photos fired between ``start_m`` and ``end_m``: a cut inside a line is a photo position,
    whose photo belongs to the sortie that resumes there."""
    count = 0
    for line_start_m, line_end_m in lines:
        if end_m <= line_start_m + _EPS_M or start_m >= line_end_m - _EPS_M:
            continue
        first = 0 if start_m <= line_start_m + _EPS_M else round((start_m - line_start_m) / step_m)
        if end_m >= line_end_m - _EPS_M:
            stop = math.floor((line_end_m - line_start_m) / step_m + _EPS_M) + 1
        else:
            stop = round((end_m - line_start_m) / step_m)
        count += stop - first
    return count


def _cut_inside_line(
    path: _Path, start_m: float, line: tuple[float, float], usable_s: float
) -> float:
    """The farthest photo position of ``line`` after ``start_m`` reachable on one battery."""
    step_m = path.mission.spec.trigger_distance_m
    line_start_m, line_end_m = line
    first = round((start_m - line_start_m) / step_m)
    last = math.ceil((line_end_m - line_start_m) / step_m - _EPS_M) - 1
    best = None
    for k in range(first + 1, last + 1):
        end_m = line_start_m + k * step_m
        if path.time_s(start_m, end_m) > usable_s:
            break
        best = end_m
    if best is None:
        distance_m = float(np.hypot(*(path.at(start_m)[0] - path.home)))
        raise PlanError(
            f"{path.mission.name}: not even one photo leg ({step_m:.0f} m) fits in "
            f"{usable_s / 60:.1f} min of usable battery when the survey is {distance_m:.0f} m "
            "from the launch point; launch closer, or fly a drone with more endurance"
        )
    return best


def _spans(path: _Path, usable_s: float) -> list[tuple[float, float]]:
    """(start, end) along the path of each sortie, greedily as long as a battery allows."""
    lines = path.lines()
    if not lines:
        raise PlanError(f"{path.mission.name}: no leg takes photos, nothing to survey")
    spans: list[tuple[float, float]] = []
    index, start_m = 0, lines[0][0]
    speed_m_s = path.mission.spec.speed_m_s
    while index < len(lines):
        last = None
        for k in range(index, len(lines)):
            end_m = lines[k][1]
            if (end_m - start_m) / speed_m_s > usable_s:
                break
            if path.time_s(start_m, end_m) <= usable_s:
                last = k
        if last is None:
            end_m = _cut_inside_line(path, start_m, lines[index], usable_s)
            spans.append((start_m, end_m))
            start_m = end_m
            continue
        spans.append((start_m, lines[last][1]))
        index = last + 1
        if index < len(lines):
            start_m = lines[index][0]
    return spans


def _waypoint(path: _Path, along_m: float, photos: bool) -> Waypoint:
    xy, altitude_m = path.at(along_m)
    lon, lat = _transformer(path.crs, "EPSG:4326").transform(*xy)
    return Waypoint(lat_deg=float(lat), lon_deg=float(lon), altitude_m=altitude_m, photos=photos)


def _sortie(path: _Path, k: int, count: int, start_m: float, end_m: float) -> Mission:
    mission = path.mission
    leg = min(
        int(np.searchsorted(path.along_m, start_m + _EPS_M, side="right")) - 1, len(path.photos) - 1
    )
    waypoints = (
        _waypoint(path, start_m, bool(path.photos[leg])),
        *(mission.waypoints[i] for i in path.inner(start_m, end_m)),
        _waypoint(path, end_m, False),
    )
    sortie = dataclasses.replace(
        mission, name=f"{mission.name}-{k}" if count > 1 else mission.name, waypoints=waypoints
    )
    xy = _xy_m((mission.home, *waypoints, mission.home), path.crs)
    distance_m = float(np.hypot(*np.diff(xy, axis=0).T).sum())
    return dataclasses.replace(
        sortie,
        distance_m=distance_m + waypoints[0].altitude_m + waypoints[-1].altitude_m,
        estimated_time_s=path.time_s(start_m, end_m),
        photo_count=_photo_count(path.lines(), start_m, end_m, mission.spec.trigger_distance_m),
    )


def split_mission(
    mission: Mission, usable_s: float, *, crs: str = "EPSG:32630"
) -> tuple[Mission, ...]:
    """``mission`` as consecutive sorties of at most ``usable_s`` each, from and to its home.

    Every photo leg of ``mission`` is flown by exactly one sortie; each sortie's first
    waypoint is where the survey resumes. Times and photo counts are re-estimated per sortie
    (see :func:`flight_time_s`); a mission that fits is returned as one re-estimated sortie.
    """
    if usable_s <= 0.0:
        raise PlanError(f"usable battery time must be > 0 s, got {usable_s}")
    path = _Path(mission, crs)
    spans = _spans(path, usable_s)
    return tuple(_sortie(path, k, len(spans), s, e) for k, (s, e) in enumerate(spans, start=1))
