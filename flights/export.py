"""Mission files by suffix: QGroundControl ``.plan``, ArduPilot ``.waypoints``, KML, DJI KMZ.

Each format lives in its own module (:mod:`flights.qgc_plan`, :mod:`flights.wpl`,
:mod:`flights.kml`, :mod:`flights.wpml`); this one picks the reader or writer by suffix.
Every reader returns a :class:`~flights.items.PlanDocument`; every writer takes a
:class:`~core.types.Mission` or a document and writes atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from core.errors import InputError
from flights.items import MissionSource, PlanDocument, as_document
from flights.kml import read_kml, write_kml
from flights.qgc_plan import read_qgc_plan, write_qgc_plan
from flights.wpl import read_waypoints, write_waypoints
from flights.wpml import DjiAircraft, UnsupportedAircraftError, read_dji_kmz, write_dji_kmz

READERS: dict[str, Callable[[Path], PlanDocument]] = {
    ".plan": read_qgc_plan,
    ".waypoints": read_waypoints,
    ".txt": read_waypoints,
    ".kml": read_kml,
    ".kmz": read_dji_kmz,
}
PATH_ONLY = (".kml",)
"""Suffixes of files that hold a path but no commands: they can be drawn, not flown."""
UNKNOWN_HOME_HEIGHT = (
    "ground height at home unknown (no DEM): the .plan and .waypoints give home at 0 m above "
    "sea level (the autopilot puts its own home there when it arms), the .kmz has no "
    "reference take-off point and the .kml draws the path above the ground under it, true "
    "only over flat ground; give a DEM for true heights"
)


@dataclass(frozen=True)
class MissionFiles:
    """The files written for a mission by format (``plan``, ``waypoints``, ``kml``, ``kmz``),
    and notes the operator should read: formats left out, heights that are placeholders."""

    paths: Mapping[str, Path]
    notes: tuple[str, ...] = ()


def read_mission_file(path: str | Path) -> PlanDocument:
    """The document of a mission file, read by its suffix (``.txt`` = ``QGC WPL 110``)."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        supported = ", ".join(READERS)
        raise InputError(path, f"unknown mission file type {path.suffix!r}; supported: {supported}")
    return reader(path)


def read_flyable_mission(path: str | Path) -> PlanDocument:
    """The document of a mission file that holds commands a vehicle can fly (not a KML)."""
    path = Path(path)
    if path.suffix.lower() in PATH_ONLY:
        raise InputError(
            path,
            "KML holds the path only, no take-off/camera commands; "
            "fly the .plan, .waypoints or .kmz written beside it",
        )
    return read_mission_file(path)


def write_mission_files(
    source: MissionSource,
    out_dir: str | Path,
    stem: str,
    *,
    home_alt_amsl_m: float | None = None,
    aircraft: DjiAircraft | None = None,
) -> MissionFiles:
    """``stem.plan``, ``stem.waypoints``, ``stem.kml`` and ``stem.kmz`` in ``out_dir``.

    The DJI route declares ``aircraft``, else the aircraft of a Mission's camera
    (:func:`flights.wpml.aircraft_for`); when DJI Pilot 2 cannot fly it, no ``.kmz`` is
    written and a note says why. ``home_alt_amsl_m`` is the ground height at home above
    mean sea level; unknown (``None``), a note says which heights are placeholders.
    """
    document = as_document(source, home_alt_amsl_m)
    out_dir = Path(out_dir)
    paths = {
        "plan": write_qgc_plan(document, out_dir / f"{stem}.plan"),
        "waypoints": write_waypoints(document, out_dir / f"{stem}.waypoints"),
        "kml": write_kml(document, out_dir / f"{stem}.kml"),
    }
    notes = [] if document.home_alt_known else [UNKNOWN_HOME_HEIGHT]
    kmz = out_dir / f"{stem}.kmz"
    try:
        paths["kmz"] = write_dji_kmz(
            source, kmz, aircraft=aircraft, home_alt_amsl_m=home_alt_amsl_m
        )
    except UnsupportedAircraftError as exc:
        kmz.unlink(missing_ok=True)  # a route of an earlier plan would be taken for this one
        notes.append(str(exc))
    return MissionFiles(paths=paths, notes=tuple(notes))


__all__ = [
    "MissionFiles",
    "read_dji_kmz",
    "read_flyable_mission",
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
