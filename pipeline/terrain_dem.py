"""Frames on a DEM: ground heights on the mosaic's grid, camera heights, grown footprints.

For a nadir pinhole camera the flat-ground affine of :func:`pipeline.footprint.frame_to_ground`
(a plane ``altitude_m`` below the camera) stays exact over relief after one scaling about
the nadir point C: a ground point P that the camera sees from ``h`` metres above it appears
where the flat model puts ``C + (P - C) * altitude_m / h``.

The DEM is a GeoTIFF in any CRS (band 1, metres; Copernicus GLO-30, SRTM, a drone DSM). It
is read through GDAL's warper into the grid's CRS, bilinear, only where asked, on a lattice
:data:`HEIGHT_SPACING_M` apart (or one grid pixel, if coarser), then interpolated to pixels.
Where it has no height (nodata, outside it), the mosaic has no pixel.

How high the camera is (:data:`HeightRule`):

- ``"absolute"``: at the record's ``absolute_altitude_m`` (DJI ``AbsoluteAltitude``, else EXIF
  GPSAltitude). The DEM must then be in the same vertical datum as those altitudes: GPS
  heights above the WGS84 ellipsoid and a DEM above the geoid (EGM96/EGM2008: GLO-30, SRTM)
  differ by the geoid's height, about 50 m at Berkane, and barometric altitudes drift.
  Records without an absolute altitude fall back to ``"nadir"``.
- ``"nadir"``: ``altitude_m`` above the DEM at the nadir point. Datum-free (only height
  differences within the DEM count); exact when ``altitude_m`` is the height above the
  ground under the camera. With DJI ``RelativeAltitude`` (above the take-off point) the
  camera is off by the ground's rise from take-off to the nadir point, as on flat ground,
  and the relief around the nadir point is still corrected. Prefer it when the photos'
  absolute altitudes are not trustworthy or not in the DEM's datum.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.features import geometry_mask
from rasterio.io import DatasetReader
from rasterio.warp import reproject
from rasterio.windows import Window
from shapely import affinity
from shapely.geometry import Polygon

from core.errors import InputError
from core.types import Grid, ImageRecord
from pipeline.footprint import footprint, nadir_point

HeightRule = Literal["absolute", "nadir"]
"""Where the camera is, in the DEM's heights: see the module's docstring."""
HEIGHT_SPACING_M = 1.0
"""Spacing of the lattice the DEM is sampled on before interpolation to pixels. Relief finer
than this (a kerb, a furrow) is smoothed away; it would move a pixel by its height times the
pixel's distance from the nadir point over the camera's height: centimetres."""
MAX_FOOTPRINT_CELLS = 512
"""Cells a side when looking for the lowest ground under a footprint (coarser than
:data:`HEIGHT_SPACING_M` only for footprints over 512 m)."""
_GROWTH_STEPS = 8


@contextmanager
def open_dem(path: Path) -> Iterator[DatasetReader]:
    """The DEM open for reading; InputError naming it if it is not a raster or has no CRS."""
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(path, f"cannot read the DEM GeoTIFF: {exc}") from exc
    with src:
        if src.crs is None:
            raise InputError(path, "the DEM has no CRS; assign one (e.g. gdal_edit -a_srs)")
        yield src


def check_dem(path: Path) -> None:
    """InputError naming ``path`` unless it is a raster with a CRS: refused before any work."""
    with open_dem(path):
        pass


def heights_on(
    dem: DatasetReader, crs: str, transform: Affine, width: int, height: int
) -> np.ndarray:
    """Ground heights (m, float32) at the pixel centres of a grid; NaN where the DEM has none."""
    heights = np.full((height, width), np.nan, np.float32)
    reproject(
        source=rasterio.band(dem, 1),
        destination=heights,
        src_nodata=dem.nodata,
        dst_transform=transform,
        dst_crs=crs,
        dst_nodata=np.nan,
        resampling=Resampling.bilinear,
    )
    return heights


def height_at(dem: DatasetReader, crs: str, x: float, y: float) -> float:
    """The ground height (m) at one point of ``crs``, bilinear; NaN where the DEM has none."""
    pixel_m = 0.01  # a pixel centred on the point: bilinear sampling at its centre
    transform = Affine.translation(x - pixel_m / 2, y + pixel_m / 2) @ Affine.scale(
        pixel_m, -pixel_m
    )
    return float(heights_on(dem, crs, transform, 1, 1)[0, 0])


def window_heights(dem: DatasetReader, grid: Grid, window: Window) -> np.ndarray:
    """Ground heights at every pixel of ``window`` of ``grid`` (float32, NaN where none).

    Sampled on a lattice of whole ``step``-pixel cells anchored at the grid's origin (so
    neighbouring tiles share it and meet without a seam), one cell beyond the window on
    every side, then interpolated bilinearly to pixels.
    """
    step = max(1, round(HEIGHT_SPACING_M / grid.resolution_m))
    col0, row0 = int(window.col_off), int(window.row_off)
    width, height = int(window.width), int(window.height)
    first_col, first_row = col0 // step - 1, row0 // step - 1
    cols = (col0 + width - 1) // step + 2 - first_col
    rows = (row0 + height - 1) // step + 2 - first_row
    lattice_transform = (
        grid.transform @ Affine.translation(first_col * step, first_row * step) @ Affine.scale(step)
    )
    lattice = heights_on(dem, grid.crs, lattice_transform, cols, rows)
    if step > 1:  # pixel-centre aligned: pixel c samples the lattice at (c + 0.5) / step - 0.5
        lattice = cv2.resize(lattice, (cols * step, rows * step), interpolation=cv2.INTER_LINEAR)
    top, left = row0 - first_row * step, col0 - first_col * step
    return lattice[top : top + height, left : left + width]


def lowest_height_m(dem: DatasetReader, crs: str, polygon: Polygon) -> float:
    """The lowest ground height (m) under ``polygon`` (in ``crs``) and one lattice cell
    around it, so that no low point between lattice nodes is missed; NaN if none."""
    extent = max(polygon.bounds[2] - polygon.bounds[0], polygon.bounds[3] - polygon.bounds[1])
    spacing = max(HEIGHT_SPACING_M, extent / MAX_FOOTPRINT_CELLS)
    area = polygon.buffer(spacing)
    left, bottom, right, top = area.bounds
    width = math.ceil((right - left) / spacing) + 1
    height = math.ceil((top - bottom) / spacing) + 1
    transform = Affine.translation(left - spacing / 2, top + spacing / 2) @ Affine.scale(
        spacing, -spacing
    )
    heights = heights_on(dem, crs, transform, width, height)
    inside = geometry_mask([area], heights.shape, transform, all_touched=True, invert=True)
    under = heights[inside & ~np.isnan(heights)]
    return float(under.min()) if under.size else math.nan


def camera_elevation_m(
    record: ImageRecord, dem: DatasetReader, crs: str, rule: HeightRule = "absolute"
) -> float:
    """Height of the camera in the DEM's heights, by ``rule`` (see the module's docstring).

    InputError naming the DEM if it has no height under the camera, or if the camera is
    not above that ground (absolute altitudes in another vertical datum, most likely).
    """
    x, y = nadir_point(record, crs)
    ground_m = height_at(dem, crs, x, y)
    if math.isnan(ground_m):
        raise InputError(
            dem.name,
            f"no height under photo {record.path.name} ({x:.1f}, {y:.1f} in {crs}): "
            "the DEM must cover every frame",
        )
    if rule == "absolute" and record.absolute_altitude_m is not None:
        elevation_m = record.absolute_altitude_m
    else:
        elevation_m = ground_m + record.altitude_m
    if elevation_m <= ground_m:
        raise InputError(
            dem.name,
            f"photo {record.path.name}: its camera at {elevation_m:.1f} m is not above the "
            f"ground under it ({ground_m:.1f} m); are the DEM and the photos' absolute "
            "altitudes in the same vertical datum? (the 'nadir' height rule needs none)",
        )
    return elevation_m


def footprint_on_dem(
    record: ImageRecord, dem: DatasetReader, crs: str, elevation_m: float
) -> Polygon:
    """The flat footprint scaled about the nadir point until it holds all the ground the
    frame sees on the DEM: by ``(elevation - lowest ground under it) / altitude_m`` (> 1 over
    ground lower than the flat model's plane; never shrunk)."""
    flat = footprint(record, crs)
    centre = nadir_point(record, crs)
    scale = 1.0
    for _ in range(_GROWTH_STEPS):
        grown = affinity.scale(flat, scale, scale, origin=centre)
        needed = (elevation_m - lowest_height_m(dem, crs, grown)) / record.altitude_m
        if not needed > scale:  # NaN (no height under it) included
            return grown
        scale = needed
    return affinity.scale(flat, scale, scale, origin=centre)
