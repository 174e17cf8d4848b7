"""The camera database: real survey cameras, loaded from ``cameras.toml`` (data, not code).

A user may keep cameras of their own in a TOML file of the same format; ``get_camera``
looks there first, then in the built-in database. Keys and aliases are matched without
regard to case.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from functools import cache
from pathlib import Path

from core.errors import InputError
from core.types import Camera

DATABASE = Path(__file__).with_name("cameras.toml")

_REQUIRED = ("name", "make", "model", "sensor_width_mm", "sensor_height_mm")
_REQUIRED += ("image_width_px", "image_height_px", "focal_length_mm")
_POSITIVE = ("sensor_width_mm", "sensor_height_mm", "focal_length_mm", "min_trigger_interval_s")
_POSITIVE += ("photo_mb", "endurance_s")
_FIELDS = {f.name for f in dataclasses.fields(Camera)}
_MAX_ASPECT_MISMATCH = 0.05
"""Sensor and image aspect ratios may differ this much (masked sensor edges), not more."""


@dataclasses.dataclass(frozen=True)
class CameraDatabase:
    """The cameras of one TOML file, by key, and the aliases that name them."""

    source: Path
    cameras: dict[str, Camera]
    aliases: dict[str, str]

    def find(self, key: str) -> Camera | None:
        """The camera called ``key`` (a key or an alias, any case), else ``None``."""
        wanted = key.strip().lower()
        return self.cameras.get(self.aliases.get(wanted, wanted))


def _problem(source: Path, key: str, problem: str) -> InputError:
    return InputError(source, f"camera [{key}]: {problem}")


def _check_values(source: Path, key: str, fields: dict[str, object]) -> None:
    for name in _REQUIRED:
        if name not in fields:
            raise _problem(source, key, f"missing field {name!r}")
    for name in ("name", "make", "model"):
        if not isinstance(fields[name], str) or not fields[name]:
            raise _problem(source, key, f"{name} must be a non-empty string")
    for name in ("image_width_px", "image_height_px"):
        value = fields[name]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise _problem(source, key, f"{name} must be a positive whole number, got {value!r}")
    for name in _POSITIVE:
        value = fields.get(name, 1.0)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value <= 0:  # type: ignore[arg-type]
            raise _problem(source, key, f"{name} must be a positive number, got {value!r}")
    bands = fields.get("bands", ["red", "green", "blue"])
    if (
        not isinstance(bands, list)
        or not bands
        or not all(isinstance(b, str) and b for b in bands)
        or len(set(bands)) != len(bands)
    ):
        raise _problem(source, key, f"bands must be a list of distinct names, got {bands!r}")
    sensor_ratio = fields["sensor_width_mm"] / fields["sensor_height_mm"]  # type: ignore[operator]
    image_ratio = fields["image_width_px"] / fields["image_height_px"]  # type: ignore[operator]
    if abs(sensor_ratio / image_ratio - 1.0) > _MAX_ASPECT_MISMATCH:
        raise _problem(
            source,
            key,
            f"sensor {fields['sensor_width_mm']} x {fields['sensor_height_mm']} mm and image "
            f"{fields['image_width_px']} x {fields['image_height_px']} px have different shapes; "
            "give both as width (long side) x height",
        )


def _camera_from_entry(source: Path, key: str, entry: object) -> tuple[Camera, list[str]]:
    """The camera of one TOML table and its aliases, checked field by field."""
    if not isinstance(entry, dict):
        raise _problem(source, key, "must be a table of fields ([key] then name = value lines)")
    fields = dict(entry)
    aliases = fields.pop("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise _problem(source, key, f"aliases must be a list of names, got {aliases!r}")
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        raise _problem(
            source, key, f"unknown field {unknown[0]!r}; fields are {', '.join(sorted(_FIELDS))}"
        )
    _check_values(source, key, fields)
    if "bands" in fields:
        fields["bands"] = tuple(fields["bands"])  # type: ignore[arg-type]
    for name in ("sensor_width_mm", "sensor_height_mm", "focal_length_mm", "endurance_s"):
        if name in fields:
            fields[name] = float(fields[name])  # type: ignore[arg-type]
    return Camera(**fields), aliases  # type: ignore[arg-type]


def load_camera_database(path: Path = DATABASE) -> CameraDatabase:
    """Every camera of a TOML file with its aliases; :class:`InputError` names a bad entry."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(path, f"cannot read camera database: {exc}") from exc
    cameras: dict[str, Camera] = {}
    aliases: dict[str, str] = {}
    for key, entry in data.items():
        camera, names = _camera_from_entry(path, key, entry)
        cameras[key.lower()] = camera
        for alias in (a.lower() for a in names):
            if alias in aliases or (alias in cameras and alias != key.lower()):
                raise _problem(path, key, f"alias {alias!r} already names another camera")
            aliases[alias] = key.lower()
    return CameraDatabase(source=path, cameras=cameras, aliases=aliases)


def load_cameras(path: Path = DATABASE) -> dict[str, Camera]:
    """Cameras of a TOML database, by key (e.g. ``dji_mavic_3e``)."""
    return load_camera_database(path).cameras


@cache
def _builtin() -> CameraDatabase:
    return load_camera_database(DATABASE)


def get_camera(key: str, database: Path | None = None) -> Camera:
    """The camera ``key`` (or alias): from the user ``database`` if given, else built in."""
    databases = [load_camera_database(Path(database))] if database is not None else []
    databases.append(_builtin())
    for db in databases:
        camera = db.find(key)
        if camera is not None:
            return camera
    known = sorted({*databases[0].cameras, *_builtin().cameras})
    aliases = sorted({*databases[0].aliases, *_builtin().aliases})
    raise InputError(
        databases[0].source,
        f"unknown camera {key!r}; known: {', '.join(known)} (or aliases {', '.join(aliases)})",
    )


def preview(camera: Camera, factor: int) -> Camera:
    """The same optics read out at ``1/factor`` of the resolution (same footprint, coarser GSD).

    Used by the simulator and the demo so that a whole flight renders in seconds.
    """
    if factor < 1:
        raise ValueError("factor must be >= 1")
    return dataclasses.replace(
        camera,
        name=f"{camera.name} (1/{factor} preview)" if factor > 1 else camera.name,
        image_width_px=camera.image_width_px // factor,
        image_height_px=camera.image_height_px // factor,
    )
