"""The camera database: real survey cameras, loaded from ``cameras.toml`` (data, not code)."""

from __future__ import annotations

import dataclasses
import tomllib
from functools import cache
from pathlib import Path

from core.errors import InputError
from core.types import Camera

DATABASE = Path(__file__).with_name("cameras.toml")


def _camera_from_entry(source: Path, key: str, entry: dict[str, object]) -> Camera:
    try:
        fields = dict(entry)
        if "bands" in fields:
            fields["bands"] = tuple(fields["bands"])  # type: ignore[arg-type]
        return Camera(**fields)  # type: ignore[arg-type]
    except TypeError as exc:
        raise InputError(source, f"camera [{key}]: {exc}") from exc


def load_cameras(path: Path = DATABASE) -> dict[str, Camera]:
    """Cameras of a TOML database, by key (e.g. ``dji_mavic_3e``)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(path, f"cannot read camera database: {exc}") from exc
    return {key: _camera_from_entry(path, key, entry) for key, entry in data.items()}


@cache
def _builtin() -> dict[str, Camera]:
    return load_cameras(DATABASE)


def get_camera(key: str) -> Camera:
    """A camera of the built-in database by key, with a clear error listing the known ones."""
    cameras = _builtin()
    if key not in cameras:
        raise InputError(DATABASE, f"unknown camera {key!r}; known: {', '.join(sorted(cameras))}")
    return cameras[key]


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
