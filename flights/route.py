"""Visiting order of sites: nearest neighbour, then 2-opt, over points in a projected CRS."""

from __future__ import annotations

import numpy as np


def path_length_m(
    points_m: np.ndarray, order: list[int], start_m: np.ndarray | None = None
) -> float:
    """Length of the open path visiting ``points_m`` (n x 2) in ``order``, from ``start_m``."""
    path = points_m[order]
    if start_m is not None:
        path = np.vstack([np.asarray(start_m, dtype=float)[None, :], path])
    return float(np.hypot(*np.diff(path, axis=0).T).sum())


def _nearest_neighbour(points_m: np.ndarray, start_m: np.ndarray) -> list[int]:
    left = np.ones(len(points_m), dtype=bool)
    order: list[int] = []
    here = start_m
    for _ in range(len(points_m)):
        distance_m = np.where(left, np.hypot(*(points_m - here).T), np.inf)
        nearest = int(np.argmin(distance_m))
        order.append(nearest)
        left[nearest] = False
        here = points_m[nearest]
    return order


def _two_opt(path: np.ndarray) -> list[int]:
    """Indices into ``path`` (its first row fixed, its end free) after 2-opt reversals."""
    route = list(range(len(path)))
    improved = True
    while improved:
        improved = False
        for i in range(1, len(route) - 1):
            p = path[route]
            before, first = p[i - 1], p[i]
            after = p[i + 1 :]  # candidate segment ends j = i+1 .. n-1
            nexts = np.vstack([p[i + 2 :], np.full((1, 2), np.nan)])  # p[j+1] (none at the end)
            old_m = np.hypot(*(first - before)) + np.nan_to_num(np.hypot(*(nexts - after).T))
            new_m = np.hypot(*(after - before).T) + np.nan_to_num(np.hypot(*(nexts - first).T))
            gain_m = old_m - new_m
            best = int(np.argmax(gain_m))
            if gain_m[best] > 1e-6:
                j = i + 1 + best
                route[i : j + 1] = route[i : j + 1][::-1]
                improved = True
    return route


def order_points(points_m: np.ndarray, start_m: np.ndarray | None = None) -> list[int]:
    """A short open path over ``points_m`` (n x 2): indices in visiting order.

    Starts at the point nearest ``start_m`` (or at the first point), then nearest neighbour,
    improved by 2-opt until no reversal of a stretch shortens the path.
    """
    points_m = np.asarray(points_m, dtype=float)
    if len(points_m) < 2:
        return list(range(len(points_m)))
    origin = points_m[0] if start_m is None else np.asarray(start_m, dtype=float)
    greedy = _nearest_neighbour(points_m, origin)
    path = np.vstack([origin[None, :], points_m[greedy]])
    improved = _two_opt(path)
    return [greedy[k - 1] for k in improved[1:]]
