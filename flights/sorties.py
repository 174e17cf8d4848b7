"""Battery sorties: cut a survey mission into flights that each fit on one battery.

A sortie takes off at the launch point (home), climbs, flies to where the survey resumes,
flies lines, returns to the launch point and lands, where the battery is swapped. Cuts fall
at line ends (a line = a run of legs on which the camera fires); only a line longer than one
battery is cut inside, at a photo position, and the next sortie resumes there. Times are
those of :mod:`flights.flight_time`, the one flight-time model.
"""

from __future__ import annotations

import dataclasses
import math
from functools import cache
from typing import NamedTuple

import numpy as np
from pyproj import Transformer

from core.errors import PlanError
from core.types import Mission, Waypoint
from flights.flight_time import flight_time_s, flown_path, mission_estimate

_EPS_M = 1e-6


@cache
def _transformer(src_crs: str, dst_crs: str) -> Transformer:
    return Transformer.from_crs(src_crs, dst_crs, always_xy=True)


def _xy_m(waypoints: tuple[Waypoint, ...], crs: str) -> np.ndarray:
    lon = np.array([w.lon_deg for w in waypoints])
    lat = np.array([w.lat_deg for w in waypoints])
    return np.column_stack(_transformer("EPSG:4326", crs).transform(lon, lat))


class _Line(NamedTuple):
    """A survey line, in metres along the path: flown from start to end, photos in between."""

    start_m: float
    end_m: float
    photos_start_m: float
    photos_end_m: float


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

    def lines(self) -> list[_Line]:
        """The survey lines in flying order: each maximal run of photo legs, with the straight
        legs without photos just before and after it (its turnarounds)."""
        edges = np.diff(np.concatenate([[0], self.photos.astype(int), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        steps = np.diff(self.xy, axis=0)
        units = steps / np.maximum(np.hypot(*steps.T), _EPS_M)[:, None]

        def turnaround(leg: int, line_leg: int) -> bool:
            inside = 0 <= leg < len(self.photos)
            return inside and not self.photos[leg] and units[leg] @ units[line_leg] > 1 - 1e-9

        lines: list[_Line] = []
        for a, b in zip(starts, ends, strict=True):  # photo legs a .. b - 1
            first, last = a, b  # the line runs from waypoint ``first`` to waypoint ``last``
            while turnaround(first - 1, a):
                first -= 1
            while turnaround(last, b - 1):
                last += 1
            line = _Line(self.along_m[first], self.along_m[last], self.along_m[a], self.along_m[b])
            if lines and line.start_m < lines[-1].end_m:  # two lines in a row: no turnaround
                lines[-1] = lines[-1]._replace(end_m=lines[-1].photos_end_m)
                line = line._replace(start_m=line.photos_start_m)
            lines.append(line)
        return lines

    def time_s(self, start_m: float, end_m: float) -> float:
        """Flight time of the sortie flying the path from ``start_m`` to ``end_m``."""
        (start, start_alt_m), (end, end_alt_m) = self.at(start_m), self.at(end_m)
        inner = self.inner(start_m, end_m)
        xy = np.vstack([start, self.xy[inner], end])
        altitudes_m = np.concatenate([[start_alt_m], self.altitude_m[inner], [end_alt_m]])
        path = flown_path(self.home, xy, altitudes_m, self.mission.altitude_m)
        return flight_time_s(path, self.mission.spec.speed_m_s)


def _photo_count(lines: list[_Line], start_m: float, end_m: float, step_m: float) -> int:
    """Photos fired between ``start_m`` and ``end_m``: a cut inside a line is a photo position,
    whose photo belongs to the sortie that resumes there."""
    count = 0
    for line in lines:
        line_start_m, line_end_m = line.photos_start_m, line.photos_end_m
        if end_m <= line_start_m + _EPS_M or start_m >= line_end_m - _EPS_M:
            continue
        first = 0 if start_m <= line_start_m + _EPS_M else round((start_m - line_start_m) / step_m)
        if end_m >= line_end_m - _EPS_M:
            stop = math.floor((line_end_m - line_start_m) / step_m + _EPS_M) + 1
        else:
            stop = round((end_m - line_start_m) / step_m)
        count += stop - first
    return count


def _cut_inside_line(path: _Path, start_m: float, line: _Line, usable_s: float) -> float:
    """The farthest photo position of ``line`` after ``start_m`` reachable on one battery."""
    step_m = path.mission.spec.trigger_distance_m
    line_start_m, line_end_m = line.photos_start_m, line.photos_end_m
    first = max(0, round((start_m - line_start_m) / step_m))
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
    index, start_m = 0, lines[0].start_m
    speed_m_s = path.mission.spec.speed_m_s
    while index < len(lines):
        last = None
        for k in range(index, len(lines)):
            end_m = lines[k].end_m
            if (end_m - start_m) / speed_m_s > usable_s:
                break
            if path.time_s(start_m, end_m) <= usable_s:
                last = k
        if last is None:
            end_m = _cut_inside_line(path, start_m, lines[index], usable_s)
            spans.append((start_m, end_m))
            start_m = end_m
            continue
        spans.append((start_m, lines[last].end_m))
        index = last + 1
        if index < len(lines):
            start_m = lines[index].start_m
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
    estimate = mission_estimate(sortie, path.crs)
    return dataclasses.replace(
        sortie,
        distance_m=estimate.distance_m,
        estimated_time_s=estimate.time_s,
        photo_count=_photo_count(path.lines(), start_m, end_m, mission.spec.trigger_distance_m),
    )


def split_mission(
    mission: Mission, usable_s: float, *, crs: str = "EPSG:32630"
) -> tuple[Mission, ...]:
    """``mission`` as consecutive sorties of at most ``usable_s`` each, from and to its home.

    Every photo leg of ``mission`` is flown by exactly one sortie; each sortie's first
    waypoint is where the survey resumes. Distance and time are each sortie's
    :func:`~flights.flight_time.mission_estimate`; a photo at a cut inside a line counts for
    the sortie resuming there. A mission that fits is returned as one re-estimated sortie.
    """
    if usable_s <= 0.0:
        raise PlanError(f"usable battery time must be > 0 s, got {usable_s}")
    path = _Path(mission, crs)
    spans = _spans(path, usable_s)
    return tuple(_sortie(path, k, len(spans), s, e) for k, (s, e) in enumerate(spans, start=1))
