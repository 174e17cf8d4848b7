"""Mission files by suffix: QGroundControl ``.plan``, ArduPilot ``.waypoints``, KML, DJI KMZ.

Each format lives in its own module (:mod:`flights.qgc_plan`, :mod:`flights.wpl`,
:mod:`flights.kml`, :mod:`flights.wpml`); this one picks the reader or writer by suffix.
Every reader returns a :class:`~flights.items.PlanDocument`; every writer takes a
:class:`~core.types.Mission` or a document and writes atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.errors import InputError
from core.types import Mission
from flights.items import MissionSource, PlanDocument, as_document
from flights.kml import read_kml, write_kml
from flights.qgc_plan import read_qgc_plan, write_qgc_plan
from flights.wpl import read_waypoints, write_waypoints
from flights.wpml import MAVIC_3E, aircraft_for, read_dji_kmz, write_dji_kmz

READERS: dict[str, Callable[[Path], PlanDocument]] = {
    ".plan": read_qgc_plan,
    ".waypoints": read_waypoints,
    ".txt": read_waypoints,
    ".kml": read_kml,
    ".kmz": read_dji_kmz,
}


def read_mission_file(path: str | Path) -> PlanDocument:
    """The document of a mission file, read by its suffix (``.txt`` = ``QGC WPL 110``)."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        supported = ", ".join(READERS)
        raise InputError(path, f"unknown mission file type {path.suffix!r}; supported: {supported}")
    return reader(path)


def write_mission_files(
    source: MissionSource,
    out_dir: str | Path,
    stem: str,
    *,
    home_alt_amsl_m: float | None = None,
) -> dict[str, Path]:
    """``stem.plan``, ``stem.waypoints``, ``stem.kml`` and ``stem.kmz`` in ``out_dir``.

    Returns the paths by format (``plan``, ``waypoints``, ``kml``, ``kmz``). The DJI route
    declares the aircraft of a Mission's camera (see :func:`flights.wpml.aircraft_for`).
    """
    document = as_document(source, home_alt_amsl_m)
    aircraft = aircraft_for(source.spec.camera) if isinstance(source, Mission) else MAVIC_3E
    out_dir = Path(out_dir)
    return {
        "plan": write_qgc_plan(document, out_dir / f"{stem}.plan"),
        "waypoints": write_waypoints(document, out_dir / f"{stem}.waypoints"),
        "kml": write_kml(document, out_dir / f"{stem}.kml"),
        "kmz": write_dji_kmz(document, out_dir / f"{stem}.kmz", aircraft=aircraft),
    }


__all__ = [
    "read_dji_kmz",
    "read_kml",
    "read_mission_file",
    "read_qgc_plan",
    "read_waypoints",
    "write_dji_kmz",
    "write_kml",
    "write_mission_files",
    "write_qgc_plan",
    "write_waypoints",
]
