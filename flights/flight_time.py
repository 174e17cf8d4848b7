"""How long a multirotor takes to fly a path, how far it goes and how many photos it takes.

The model: climb at home, fly the horizontal path home -> waypoints -> home at cruise speed,
descend. Every change of heading costs the time lost slowing down and speeding up again:
a full reversal costs ``speed / acceleration`` (stop and go), a straight pass nothing, and
a turn of angle θ in between ``(1 - cos θ) / 2`` of it. The camera fires by distance on the
legs flagged for photos: once at the start of each run of such legs, then every trigger
distance (ArduPilot's ``DO_SET_CAM_TRIGG_DIST``, as ``flights.preview`` places them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACCELERATION_M_S2 = 2.5
"""Horizontal acceleration of a multirotor between waypoints (ArduCopter WPNAV_ACCEL)."""

CLIMB_SPEED_M_S = 2.5
"""Vertical speed climbing to survey height (ArduCopter WPNAV_SPEED_UP default)."""

DESCENT_SPEED_M_S = 1.5
"""Vertical speed landing back at home (ArduCopter WPNAV_SPEED_DN default)."""

_EPS_M = 1e-9


@dataclass(frozen=True)
class FlightEstimate:
    """Distance flown (climb and descent included), time from take-off to landing, photos."""

    distance_m: float
    time_s: float
    photo_count: int


def photo_count(leg_lengths_m: np.ndarray, photos: np.ndarray, trigger_distance_m: float) -> int:
    """Photos taken on legs flagged ``photos``: one at each run's start, then by distance."""
    flags = np.concatenate([[False], photos.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(flags.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    along_m = np.concatenate([[0.0], np.cumsum(leg_lengths_m)])
    run_lengths_m = along_m[ends] - along_m[starts]
    run_lengths_m = run_lengths_m[run_lengths_m > 0.0]
    return int(np.sum(np.floor((run_lengths_m + _EPS_M) / trigger_distance_m) + 1))


def turn_penalty_s(xy: np.ndarray, speed_m_s: float) -> float:
    """Time lost to heading changes along the open path ``xy`` (n x 2), from rest to rest."""
    steps = np.diff(xy, axis=0)
    lengths = np.hypot(steps[:, 0], steps[:, 1])
    steps = steps[lengths > _EPS_M] / lengths[lengths > _EPS_M, None]
    stop_and_go_s = speed_m_s / ACCELERATION_M_S2
    if len(steps) == 0:
        return 0.0
    cos_turn = np.clip(np.einsum("ij,ij->i", steps[:-1], steps[1:]), -1.0, 1.0)
    # Starting from rest and stopping at the end cost half a stop-and-go each.
    return float(stop_and_go_s * (1.0 + np.sum((1.0 - cos_turn) / 2.0)))


def estimate_flight(
    xy: np.ndarray,
    photos: np.ndarray,
    home_xy: np.ndarray,
    *,
    altitude_m: float,
    speed_m_s: float,
    trigger_distance_m: float,
) -> FlightEstimate:
    """Estimate for waypoints ``xy`` (n x 2, projected CRS) flown from and back to ``home_xy``.

    ``photos[i]`` says whether the camera fires on the leg from waypoint ``i`` to ``i + 1``.
    """
    home = np.asarray(home_xy, dtype=float).reshape(1, 2)
    path = np.vstack([home, xy, home])
    steps = np.diff(path, axis=0)
    legs_m = np.hypot(steps[:, 0], steps[:, 1])
    horizontal_m = float(legs_m.sum())
    time_s = (
        altitude_m / CLIMB_SPEED_M_S
        + horizontal_m / speed_m_s
        + turn_penalty_s(path, speed_m_s)
        + altitude_m / DESCENT_SPEED_M_S
    )
    return FlightEstimate(
        distance_m=horizontal_m + 2.0 * altitude_m,
        time_s=time_s,
        photo_count=photo_count(legs_m[1:-1], np.asarray(photos[:-1]), trigger_distance_m),
    )
