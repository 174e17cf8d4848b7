"""How long a multirotor takes to fly a mission, how far it goes and how many photos it takes.

The one flight-time model of ``flights``: the planner, the grid-angle search, battery
sorties, terrain following and the safety check all use it.

The flight: climb at home to the take-off height (the mission's ``NAV_TAKEOFF`` item),
fly straight legs through the waypoints, return to home at the last waypoint's height
(ArduCopter's RTL keeps its altitude above ``RTL_ALT``), descend. A leg takes
``max(horizontal / speed, climb / climb speed)`` (or descent / descent speed): ArduCopter
scales the speed along a 3-D leg so that neither its horizontal nor its vertical component
exceeds its limit (``WPNAV_SPEED``, ``WPNAV_SPEED_UP``, ``WPNAV_SPEED_DN``). Every change
of heading costs the time lost slowing down and speeding up again: a full reversal costs
``speed / acceleration`` (stop and go), a straight pass nothing, and a turn of angle θ in
between ``(1 - cos θ) / 2`` of it; starting from rest and stopping at home cost half each.
The camera fires by horizontal distance on the legs flagged for photos: once at the start
of each run of such legs, then every trigger distance (ArduPilot's ``DO_SET_CAM_TRIGG_DIST``,
as ``flights.preview`` places them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from pyproj import Transformer

from core.types import Mission

ACCELERATION_M_S2 = 2.5
"""Horizontal acceleration of a multirotor between waypoints (ArduCopter WPNAV_ACCEL)."""

CLIMB_SPEED_M_S = 2.5
"""Vertical speed climbing (ArduCopter WPNAV_SPEED_UP default)."""

DESCENT_SPEED_M_S = 1.5
"""Vertical speed descending, landing included (ArduCopter WPNAV_SPEED_DN default)."""

_EPS_M = 1e-9

MIN_HEADING_LEG_M = 1e-3
"""Legs shorter than this have no heading (a waypoint repeated after a CRS round trip)."""


@dataclass(frozen=True)
class FlightEstimate:
    """Distance flown (3-D, climb and descent included), time from take-off to landing, photos."""

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
    kept = lengths > MIN_HEADING_LEG_M
    steps = steps[kept] / lengths[kept, None]
    stop_and_go_s = speed_m_s / ACCELERATION_M_S2
    if len(steps) == 0:
        return 0.0
    cos_turn = np.clip(np.einsum("ij,ij->i", steps[:-1], steps[1:]), -1.0, 1.0)
    return float(stop_and_go_s * (1.0 + np.sum((1.0 - cos_turn) / 2.0)))


def flown_path(
    home_xy: np.ndarray, xy: np.ndarray, altitudes_m: np.ndarray, takeoff_altitude_m: float
) -> np.ndarray:
    """(x, y, height above home) of the flight: home at take-off height, the waypoints
    ``xy`` (n x 2) at ``altitudes_m``, home at the last waypoint's height."""
    home = np.asarray(home_xy, dtype=float).reshape(2)
    altitudes_m = np.asarray(altitudes_m, dtype=float)
    return np.vstack(
        [
            [home[0], home[1], takeoff_altitude_m],
            np.column_stack([xy, altitudes_m]),
            [home[0], home[1], altitudes_m[-1]],
        ]
    )


def flight_time_s(path_xyz: np.ndarray, speed_m_s: float) -> float:
    """Time (s) of a :func:`flown_path`: climb from the ground, legs, turns, descent."""
    steps = np.diff(path_xyz, axis=0)
    horizontal_s = np.hypot(steps[:, 0], steps[:, 1]) / speed_m_s
    vertical_s = np.where(
        steps[:, 2] > 0.0, steps[:, 2] / CLIMB_SPEED_M_S, -steps[:, 2] / DESCENT_SPEED_M_S
    )
    return float(
        path_xyz[0, 2] / CLIMB_SPEED_M_S
        + np.maximum(horizontal_s, vertical_s).sum()
        + turn_penalty_s(path_xyz[:, :2], speed_m_s)
        + path_xyz[-1, 2] / DESCENT_SPEED_M_S
    )


def flight_distance_m(path_xyz: np.ndarray) -> float:
    """3-D length (m) of a :func:`flown_path`, the climb from and descent to the ground included."""
    legs_m = np.linalg.norm(np.diff(path_xyz, axis=0), axis=1)
    return float(path_xyz[0, 2] + legs_m.sum() + path_xyz[-1, 2])


def estimate_flight(
    xy: np.ndarray,
    photos: np.ndarray,
    home_xy: np.ndarray,
    *,
    altitude_m: float,
    speed_m_s: float,
    trigger_distance_m: float,
    altitudes_m: np.ndarray | None = None,
) -> FlightEstimate:
    """Estimate for waypoints ``xy`` (n x 2, projected CRS) flown from and back to ``home_xy``.

    ``photos[i]`` says whether the camera fires on the leg from waypoint ``i`` to ``i + 1``.
    The drone takes off to ``altitude_m``; waypoints fly at ``altitudes_m`` (default: all at
    ``altitude_m``, a flat survey).
    """
    xy = np.asarray(xy, dtype=float)
    heights_m = np.full(len(xy), altitude_m) if altitudes_m is None else altitudes_m
    path = flown_path(home_xy, xy, heights_m, altitude_m)
    steps = np.diff(xy, axis=0)
    return FlightEstimate(
        distance_m=flight_distance_m(path),
        time_s=flight_time_s(path, speed_m_s),
        photo_count=photo_count(
            np.hypot(steps[:, 0], steps[:, 1]), np.asarray(photos[:-1]), trigger_distance_m
        ),
    )


@cache
def _to_crs(crs: str) -> Transformer:
    return Transformer.from_crs("EPSG:4326", crs, always_xy=True)


def mission_estimate(mission: Mission, crs: str = "EPSG:32630") -> FlightEstimate:
    """The estimate of ``mission`` as planned, its waypoints' own altitudes included
    (terrain following), measured in the projected ``crs`` it was planned in."""
    stops = (mission.home, *mission.waypoints)
    x_m, y_m = _to_crs(crs).transform([w.lon_deg for w in stops], [w.lat_deg for w in stops])
    xy = np.column_stack([x_m, y_m])
    return estimate_flight(
        xy[1:],
        np.array([w.photos for w in mission.waypoints], dtype=bool),
        xy[0],
        altitude_m=mission.altitude_m,
        speed_m_s=mission.spec.speed_m_s,
        trigger_distance_m=mission.trigger_distance_m,
        altitudes_m=np.array([w.altitude_m for w in mission.waypoints]),
    )
