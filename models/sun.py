"""The sun at an image's capture time (astral) and where, on the image's grid, shadows fall.

The capture time is given (``--captured-at``) or read from the image's tags
(:mod:`core.capture_time`: the mosaic stamps its photos' EXIF time, the simulator its epoch's);
the place is the image's centre. Unknown time, or a sun below the horizon: no sun (None), and
the features that need it are left missing (see ``models.features``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from astral import Observer
from astral.sun import azimuth, elevation
from rasterio.io import DatasetReader
from rasterio.warp import transform as warp_transform

from core.capture_time import read_capture_time
from models.windows import WorkingGrid, pixel_size_m

MIN_SUN_ELEVATION_DEG = 2.0
"""Below this the sun casts no usable shadow (and refraction makes its position uncertain)."""


@dataclass(frozen=True)
class SunPosition:
    """Where the sun is: azimuth clockwise from true north, elevation above the horizon."""

    azimuth_deg: float
    elevation_deg: float

    def shadow_offset_m(self, height_m: float) -> tuple[float, float]:
        """Ground offset (east, north) from a point ``height_m`` up to its shadow."""
        length = height_m / math.tan(math.radians(self.elevation_deg))
        az = math.radians(self.azimuth_deg)
        return -math.sin(az) * length, -math.cos(az) * length


def sun_position(when: datetime, lon_deg: float, lat_deg: float) -> SunPosition | None:
    """The sun seen from (``lon_deg``, ``lat_deg``) at ``when`` (time-zone aware), or None when
    it is lower than :data:`MIN_SUN_ELEVATION_DEG`."""
    if when.tzinfo is None:
        raise ValueError(f"capture time {when} has no time zone")
    observer = Observer(latitude=lat_deg, longitude=lon_deg)
    sun = SunPosition(azimuth(observer, when), elevation(observer, when))
    return sun if sun.elevation_deg >= MIN_SUN_ELEVATION_DEG else None


def image_sun(src: DatasetReader, captured_at: datetime | None = None) -> SunPosition | None:
    """The sun over ``src``'s centre at ``captured_at``, or at the time its tags state; None
    when neither is known or the sun was down."""
    when = captured_at or read_capture_time(src.tags())
    if when is None or src.crs is None:
        return None
    col, row = src.width / 2, src.height / 2
    x, y = src.transform @ (col, row)
    (lon,), (lat,) = warp_transform(src.crs, "EPSG:4326", [x], [y])
    return sun_position(when, lon, lat)


def shadow_px_per_m(
    sun: SunPosition | None, src: DatasetReader, grid: WorkingGrid
) -> tuple[float, float] | None:
    """The shadow of 1 m of height as (columns, rows) of ``grid`` (north-up or rotated, square
    ground pixels of ``src``'s size times the grid's factor); None without a sun."""
    if sun is None:
        return None
    pixel_m = pixel_size_m(src) * grid.factor
    t = grid.transform
    linear = np.array([[t.a, t.b], [t.d, t.e]], dtype=float)
    linear *= pixel_m / math.hypot(t.a, t.d)  # map units -> metres per pixel step
    east, north = sun.shadow_offset_m(1.0)
    col, row = np.linalg.solve(linear, [east, north])
    return float(col), float(row)
