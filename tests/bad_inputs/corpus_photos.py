"""Seeded drone photos for the bad-input corpus: small JPEGs with DJI-like EXIF, in Berkane."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from flights.camera import get_camera, preview
from sim.camera import FrameExif, write_jpeg

CAMERA = preview(get_camera("dji_mavic_3e"), 8)
BERKANE = (-2.2975, 34.9290)


def photo(path: Path, *, lon: float = BERKANE[0], lat: float = BERKANE[1], seed: int = 0) -> Path:
    """A noise photo taken straight down at (``lon``, ``lat``), 214 m above sea level."""
    pixels = np.random.default_rng(seed).integers(
        0, 255, (CAMERA.image_height_px, CAMERA.image_width_px, 3), np.uint8
    )
    exif = FrameExif(
        lon,
        lat,
        214.0,
        94.0,
        10.0,
        10.0,
        datetime(2026, 7, 10, 11, 0, tzinfo=timezone(timedelta(hours=1))),
    )
    return write_jpeg(pixels, path, CAMERA, exif)  # fmt: skip
