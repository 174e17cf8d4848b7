"""Flying around the holes of an AOI: a leg that would cut across one takes the shortest
way around it instead, keeping ``HOLE_CLEARANCE_M`` from it, camera off.

A visibility graph over the convex corners of the holes grown by the clearance, solved for
all pairs once per AOI and cached (the grid-angle search plans one AOI at many angles).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely
from scipy.sparse.csgraph import csgraph_from_dense, shortest_path
from shapely.geometry import Polygon

HOLE_CLEARANCE_M = 5.0
"""How far a detour keeps from a hole: ArduCopter cuts corners by up to ``WPNAV_RADIUS``
(2 m by default). Where holes lie too close together for it, detours follow their edges."""

_OUTLINE_TOLERANCE_M = 1.0
"""Detours with clearance go around the holes' outlines simplified to within this."""

_CLEARANCES_M = (HOLE_CLEARANCE_M, 0.0)
"""Detours tried in turn: the last, along the holes' edges, always finds a way."""

_CROSSING_DEPTH_M = 1e-3
"""A leg crosses a hole when it enters it deeper than this; a leg along its edge does not."""


def _legs(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Straight legs from ``starts`` to ``ends`` (both n x 2), as shapely line strings."""
    return shapely.linestrings(np.stack([starts, ends], axis=1))


def _convex_corners(zone: shapely.Geometry) -> np.ndarray:
    """Corners (n x 2) where the outline of ``zone`` turns around it: the only places where a
    shortest way around ``zone`` bends."""
    corners = []
    for part in shapely.get_parts(shapely.orient_polygons(zone)):
        for ring in shapely.get_rings(part):  # the polygon on the left of every ring
            xy = shapely.get_coordinates(ring)[:-1]
            into, out = xy - np.roll(xy, 1, axis=0), np.roll(xy, -1, axis=0) - xy
            corners.append(xy[into[:, 0] * out[:, 1] - into[:, 1] * out[:, 0] > 1e-9])
    return np.vstack(corners)


class _Detours:
    """Shortest ways around holes keeping ``clearance_m`` from them: a visibility graph
    over the corners of the holes grown by the clearance, solved for all pairs once."""

    def __init__(self, holes: shapely.Geometry, clearance_m: float) -> None:
        zone = holes
        if clearance_m > 0.0:  # a few corners where a detailed outline (a circle) has many
            outline = shapely.simplify(holes, _OUTLINE_TOLERANCE_M)
            zone = shapely.buffer(outline, clearance_m + _OUTLINE_TOLERANCE_M, join_style="mitre")
        self.holes = shapely.buffer(holes, -_CROSSING_DEPTH_M)
        self.zone = shapely.buffer(zone, -_CROSSING_DEPTH_M)
        shapely.prepare([self.holes, self.zone])
        self.corners = _convex_corners(zone)
        i, j = np.triu_indices(len(self.corners), k=1)
        seen = ~shapely.intersects(_legs(self.corners[i], self.corners[j]), self.zone)
        weights = np.full((len(self.corners),) * 2, np.inf)
        weights[i[seen], j[seen]] = np.hypot(*(self.corners[j[seen]] - self.corners[i[seen]]).T)
        graph = csgraph_from_dense(weights, null_value=np.inf)
        self.way_m, self.previous = shortest_path(graph, directed=False, return_predecessors=True)

    def _reach_m(self, point: np.ndarray) -> np.ndarray:
        """Straight distance from ``point`` to each corner, infinite where the holes grown by
        the clearance block it (only the holes themselves from within the clearance)."""
        near = shapely.contains_xy(self.zone, *point)
        starts = np.broadcast_to(point, self.corners.shape)
        blocked = shapely.intersects(_legs(starts, self.corners), self.holes if near else self.zone)
        return np.where(blocked, np.inf, np.hypot(*(self.corners - point).T))

    def around(self, start: np.ndarray, end: np.ndarray) -> np.ndarray | None:
        """The corners to fly through from ``start`` to ``end`` (neither in a hole), or
        ``None`` if the clearance leaves no way."""
        total_m = self._reach_m(start)[:, None] + self.way_m + self._reach_m(end)[None, :]
        first, last = np.unravel_index(np.argmin(total_m), total_m.shape)
        if not np.isfinite(total_m[first, last]):
            return None
        way = [int(last)]
        while way[-1] != first:
            way.append(int(self.previous[first, way[-1]]))
        return self.corners[way[::-1]]


@lru_cache(maxsize=16)
def _detours(area: Polygon, clearance_m: float) -> _Detours:
    """Detours around the holes of ``area``. Cached: the grid-angle search plans one area at
    many angles."""
    return _Detours(shapely.union_all([Polygon(ring) for ring in area.interiors]), clearance_m)


def around_holes(
    xy: np.ndarray, photos: np.ndarray, area: Polygon, home_xy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Waypoints ``xy`` (photo flags ``photos``) with every camera-off leg that crosses a hole
    of ``area``, the transits from and back to ``home_xy`` included, flown around it (camera
    off). A transit from or to a home inside a hole stays straight: the drone takes off and
    lands there."""
    if not area.interiors:
        return xy, photos
    home = np.asarray(home_xy, dtype=float).reshape(1, 2)
    stops = np.vstack([home, xy, home])
    camera_off = np.concatenate([[True], ~photos[:-1], [True]])
    holes = _detours(area, HOLE_CLEARANCE_M).holes
    crossing = camera_off & shapely.intersects(_legs(stops[:-1], stops[1:]), holes)
    if shapely.contains_xy(holes, *home[0]):  # the drone takes off and lands there
        crossing[[0, -1]] = False
    at: list[int] = []
    corners = [np.empty((0, 2))]
    for leg in np.flatnonzero(crossing).tolist():
        # Along the holes' edges only where holes too close together leave no other way.
        ways = (_detours(area, c).around(stops[leg], stops[leg + 1]) for c in _CLEARANCES_M)
        way = next((w for w in ways if w is not None), None)
        if way is not None:
            at += [leg + 1] * len(way)
            corners.append(way)
    routed = np.insert(stops, at, np.vstack(corners), axis=0)[1:-1]
    flags = np.insert(np.concatenate([[False], photos, [False]]), at, False)[1:-1]
    return routed, flags
