"""The survey grid as a flight path: cells in flying order, flown back and forth.

``grid_path`` turns an AOI (projected CRS) and a survey spec into waypoints with a photo
flag per leg: photo legs along the lines, camera off on turnarounds, on the turns between
lines, on transits between cells and between the two passes of a crosshatch.

Lines stop at the edge of a hole; a leg that would cut across a hole (a turn around a
round one, a transit between cells, the transits from and back to home) flies around it
instead, camera off, by the shortest way that keeps ``flights.detours.HOLE_CLEARANCE_M`` from it.

Entry corners are named in the grid frame, where lines run "north" along the grid angle:
``sw`` starts on the first (left-most) line at its near end, ``se`` on the last line at its
near end, ``nw`` and ``ne`` at the far ends. At a grid angle of 0 these are the compass
corners. ``nearest`` starts at the line end nearest home.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import shapely
from shapely.geometry import Polygon

from core.types import SurveySpec
from flights.cells import Cell, decompose, survey_lines
from flights.detours import around_holes

ENTRY_CORNERS = ("nearest", "sw", "se", "nw", "ne")


class GridPath(NamedTuple):
    """Waypoints (n x 2, projected CRS) and whether the camera fires on the leg after each."""

    xy: np.ndarray
    photos: np.ndarray


class _Way(NamedTuple):
    """How to fly one cell: which cell, from its east end or west end, first line northward."""

    cell: int
    from_east: bool
    northward: bool


def _rotation(angle_deg: float) -> np.ndarray:
    """Counter-clockwise by ``angle_deg``: brings lines heading ``angle_deg`` onto +y."""
    a = math.radians(angle_deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def _end(cell: Cell, way: _Way, first: bool) -> tuple[float, float]:
    """Where flying ``cell`` the ``way`` way starts (``first``) or ends."""
    if first:
        segment, north = (cell[-1] if way.from_east else cell[0]), way.northward
    else:
        segment = cell[0] if way.from_east else cell[-1]
        north = way.northward == (len(cell) % 2 == 1)
    if north == first:
        return segment.x_m, segment.lo_m - segment.lo_runout_m
    return segment.x_m, segment.hi_m + segment.hi_runout_m


def _fly(cell: Cell, way: _Way) -> list[tuple[float, float, bool]]:
    """The waypoints of one cell flown back and forth, with the camera on the photo legs."""
    points = []
    for k, s in enumerate(cell[::-1] if way.from_east else cell):
        if (k % 2 == 0) == way.northward:
            ends = [(s.lo_m - s.lo_runout_m, False), (s.lo_m, True), (s.hi_m, False)]
            ends.append((s.hi_m + s.hi_runout_m, False))
            runouts = (s.lo_runout_m, s.hi_runout_m)
        else:
            ends = [(s.hi_m + s.hi_runout_m, False), (s.hi_m, True), (s.lo_m, False)]
            ends.append((s.lo_m - s.lo_runout_m, False))
            runouts = (s.hi_runout_m, s.lo_runout_m)
        keep = [runouts[0] > 0.0, True, True, runouts[1] > 0.0]
        points.extend((s.x_m, y, on) for (y, on), kept in zip(ends, keep, strict=True) if kept)
    return points


def _entry_target(cells: list[Cell], corner: str, home: np.ndarray) -> tuple[float, float]:
    if corner == "nearest":
        return float(home[0]), float(home[1])
    segments = [s for cell in cells for s in cell]
    x = min(s.x_m for s in segments) if corner[1] == "w" else max(s.x_m for s in segments)
    south = corner[0] == "s"
    y = (
        min(s.lo_m - s.lo_runout_m for s in segments)
        if south
        else max(s.hi_m + s.hi_runout_m for s in segments)
    )
    return x, y


def order_cells(cells: list[Cell], home: np.ndarray, corner: str) -> list[_Way]:
    """Cells in flying order: the first entered at ``corner``, then always the nearest."""
    ways = [
        _Way(c, east, north)
        for c in range(len(cells))
        for east in (False, True)
        for north in (True, False)
    ]
    entries = np.array([_end(cells[w.cell], w, True) for w in ways])
    exits = np.array([_end(cells[w.cell], w, False) for w in ways])
    cell_of = np.array([w.cell for w in ways])
    left = np.ones(len(ways), dtype=bool)
    here = np.array(_entry_target(cells, corner, home))
    order = []
    for _ in cells:
        distance_m = np.where(left, np.hypot(*(entries - here).T), np.inf)
        best = int(np.argmin(distance_m))
        order.append(ways[best])
        left &= cell_of != ways[best].cell
        here = exits[best]
    return order


def _one_pass(
    area: Polygon, spec: SurveySpec, start_xy: np.ndarray, angle_deg: float, corner: str
) -> GridPath:
    origin = np.array(area.centroid.coords[0])
    rotation = _rotation(angle_deg)
    grid_area = shapely.transform(area, lambda xy: (xy - origin) @ rotation.T)
    _, along_m = spec.camera.footprint_m(spec.altitude_m)
    lines = survey_lines(grid_area, spec.line_spacing_m, along_m / 2, spec.turnaround_m)
    cells = decompose(lines)
    home = (np.asarray(start_xy, dtype=float) - origin) @ rotation.T
    points = [p for way in order_cells(cells, home, corner) for p in _fly(cells[way.cell], way)]
    grid_xy = np.array([(x, y) for x, y, _ in points], dtype=float).reshape(-1, 2)
    return GridPath(grid_xy @ rotation + origin, np.array([on for *_, on in points], dtype=bool))


def _drop_repeats(path: GridPath) -> GridPath:
    """Without zero-length legs (a repeated point keeps the photo flag of its last copy)."""
    steps = np.hypot(*np.diff(path.xy, axis=0).T)
    keep = np.append(steps > 1e-6, True)
    return GridPath(path.xy[keep], path.photos[keep])


def grid_path(
    area: Polygon, spec: SurveySpec, home_xy: np.ndarray, angle_deg: float | None = None
) -> GridPath:
    """The survey path over ``area`` (projected CRS) at ``angle_deg`` (default: the spec's).

    Lines head ``angle_deg`` clockwise from grid north (QGroundControl's transect angle). With
    ``spec.crosshatch`` a second pass at ``angle_deg + 90`` follows, from its line end
    nearest the end of the first. Legs that would cross a hole of ``area`` fly around it.
    The last waypoint's photo flag is always ``False``.
    """
    angle_deg = spec.grid_angle_deg if angle_deg is None else angle_deg
    path = _one_pass(area, spec, home_xy, angle_deg, spec.entry_corner)
    if spec.crosshatch:
        second = _one_pass(area, spec, path.xy[-1], angle_deg + 90.0, "nearest")
        path = GridPath(
            np.vstack([path.xy, second.xy]), np.concatenate([path.photos, second.photos])
        )
    path = _drop_repeats(GridPath(*around_holes(path.xy, path.photos, area, home_xy)))
    path.photos[-1] = False
    return path
