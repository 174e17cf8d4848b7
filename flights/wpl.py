"""ArduPilot ``QGC WPL 110`` waypoint files (Mission Planner's ``.waypoints``), via pymavlink.

The format holds the mission items only (item 0 = home); the geofence and rally points
travel in the ``.plan``.
"""

from __future__ import annotations

from pathlib import Path

from pymavlink import mavutil, mavwp

from core.errors import InputError
from core.io import atomic_path
from flights.items import (
    MissionItem,
    MissionSource,
    PlanDocument,
    as_document,
    nan_if_unset,
    unset_if_nan,
)

WPL_HEADER = "QGC WPL 110"


class _WaypointFile(mavwp.MAVWPLoader):
    """pymavlink's loader, saving every value at full precision.

    Its own ``save`` rounds positions to 1e-6 degree (about 0.1 m) and so cannot round-trip
    Mission Planner's or QGroundControl's coordinates.
    """

    def save(self, filename: str) -> None:
        lines = [WPL_HEADER]
        for w in self.wpoints:
            values = (w.param1, w.param2, w.param3, w.param4, w.x, w.y, w.z)
            fields = [w.seq, w.current, w.frame, w.command, *map(float, values), w.autocontinue]
            lines.append("\t".join(map(str, fields)))
        Path(filename).write_text("\n".join(lines) + "\n", encoding="ascii")


def write_waypoints(
    source: MissionSource, path: str | Path, *, home_alt_amsl_m: float | None = None
) -> Path:
    """A ``QGC WPL 110`` waypoint file of the mission items (item 0 = home).

    An unset value is written ``nan``, as pymavlink writes it; the
    items Raqib plans have none (see :func:`flights.items.waypoint_item`).
    """
    loader = _WaypointFile()
    for item in as_document(source, home_alt_amsl_m).items:
        loader.add(
            mavutil.mavlink.MAVLink_mission_item_message(
                0,
                0,
                item.seq,
                item.frame,
                item.command,
                int(item.current),
                int(item.autocontinue),
                *(nan_if_unset(v) for v in item.params),
            )
        )
    with atomic_path(path) as tmp:
        loader.save(str(tmp))
    return Path(path)


def read_waypoints(path: str | Path) -> PlanDocument:
    """The mission items of a ``QGC WPL 110`` file, parsed by pymavlink."""
    path = Path(path)
    loader = mavwp.MAVWPLoader()
    try:
        loader.load(str(path))
    except (OSError, UnicodeDecodeError, ValueError, mavwp.MAVWPError) as exc:
        raise InputError(path, f"not a readable {WPL_HEADER} waypoint file: {exc}") from exc
    if not loader.wpoints:
        raise InputError(path, f"{WPL_HEADER} file has no mission items (not even home)")
    items = tuple(
        MissionItem(
            w.seq,
            w.command,
            w.frame,
            *(unset_if_nan(v) for v in (w.param1, w.param2, w.param3, w.param4, w.x, w.y, w.z)),
            current=bool(w.current),
            autocontinue=bool(w.autocontinue),
        )
        for w in loader.wpoints
    )
    return PlanDocument(items=items)
