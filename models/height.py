"""Height above ground from a surface model (DSM), and what it says about buildings.

A DSM (GeoTIFF, band 1, metres, any CRS and grid) is read through GDAL's warper onto the
image grid. The ground under it is estimated by a morphological opening (a minimum then a
maximum over a disc of ``ground_window_m``, wider than a building, so roofs and crowns drop
out while slopes are kept) on cells of ``ground_cell_m`` (averaging there first, so noise
does not drag the minimum down), then smoothed; the normalised DSM (nDSM) is the DSM minus
that ground.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from shapely.geometry import box

from core.errors import InputError
from core.types import Grid
from models.windows import open_georaster

GROUND_WINDOW_M = 40.0
"""Wider than a building (or a row of houses 30 m deep between two streets)."""
GROUND_CELL_M = 1.0
GROUND_SMOOTHING_M = 5.0
RAISED_M = 2.0
FLAT_M = 0.25
"""Below this a pixel is on the ground; a fresh slab (0.3-0.4 m) is still above it."""
RAISED_ODDS = 16.0
EDGE_M = 0.5
FLAT_FACTOR = 0.2
GREEN_EXG = 0.05
"""Normalised excess green ``(2g - r - b) / (r + g + b)`` above which a pixel looks like
vegetation (crowns 0.2-0.3; grey, beige and white roofs under 0.03)."""


def check_dsm(dsm_path: str | Path, grid: Grid) -> None:
    """InputError naming ``dsm_path`` unless it is a georeferenced raster overlapping ``grid``."""
    with open_georaster(dsm_path) as src:
        bounds = transform_bounds(src.crs, grid.crs, *src.bounds, densify_pts=21)
    left, top = grid.transform.c, grid.transform.f
    right = left + grid.width * grid.transform.a
    bottom = top + grid.height * grid.transform.e
    image = box(min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    if box(*bounds).intersection(image).area <= 0:
        raise InputError(
            dsm_path,
            "surface model does not overlap the image: extents "
            f"({', '.join(f'{v:.0f}' for v in bounds)}) and "
            f"({', '.join(f'{v:.0f}' for v in image.bounds)}) in {grid.crs}",
        )


def normalised_dsm(
    dsm_path: str | Path,
    grid: Grid,
    window: Window | None = None,
    *,
    pixel_m: float | None = None,
    ground_window_m: float = GROUND_WINDOW_M,
    ground_cell_m: float = GROUND_CELL_M,
) -> np.ndarray:
    """Height above ground (m, float32) of ``window`` of ``grid`` (all of it by default; a
    window reaching past the grid is cut to it); NaN where the DSM has no data. ``pixel_m``:
    the grid's pixel width in metres (default: its transform's, for a grid in metres).

    Within ``ground_window_m / 2`` of the DSM's edge the opening sees one side only: on a
    slope the ground there comes out low by up to the slope times that distance.
    """
    whole = Window(0, 0, grid.width, grid.height)
    window = whole if window is None else window.intersection(whole)
    pixel_m = pixel_m or abs(grid.transform.a)
    factor = max(1, round(ground_cell_m / pixel_m))
    with open_georaster(dsm_path) as src:
        surface = _warped(src, grid, window, Resampling.bilinear)
        coarse_grid = Grid(
            grid.crs,
            grid.transform @ Affine.scale(factor),
            -(-grid.width // factor),
            -(-grid.height // factor),
        )
        margin = math.ceil((ground_window_m + 3 * GROUND_SMOOTHING_M) / (pixel_m * factor))
        row0 = max(0, int(window.row_off) // factor - margin)
        col0 = max(0, int(window.col_off) // factor - margin)
        row1 = min(coarse_grid.height, -(-int(window.row_off + window.height) // factor) + margin)
        col1 = min(coarse_grid.width, -(-int(window.col_off + window.width) // factor) + margin)
        coarse = _warped(
            src, coarse_grid, Window(col0, row0, col1 - col0, row1 - row0), Resampling.average
        )
    cell_m = pixel_m * factor
    ground = ground_surface(coarse, ground_window_m / cell_m, GROUND_SMOOTHING_M / cell_m)
    rows = (np.arange(window.height) + window.row_off + 0.5) / factor - 0.5 - row0
    cols = (np.arange(window.width) + window.col_off + 0.5) / factor - 0.5 - col0
    map_x, map_y = np.meshgrid(cols.astype(np.float32), rows.astype(np.float32))
    fine_ground = cv2.remap(ground, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return surface - fine_ground


def ground_surface(surface: np.ndarray, window_px: float, smoothing_px: float) -> np.ndarray:
    """The ground under ``surface`` (NaN = no data): a grey opening over a disc
    ``window_px`` across, then a Gaussian of ``smoothing_px`` (NaN-aware)."""
    size = max(3, int(round(window_px)) | 1)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    lowest = cv2.erode(np.where(np.isnan(surface), np.inf, surface).astype(np.float32), disc)
    opened = cv2.dilate(np.where(np.isinf(lowest), -np.inf, lowest).astype(np.float32), disc)
    known = np.isfinite(opened)
    weights = cv2.GaussianBlur(known.astype(np.float32), (0, 0), smoothing_px)
    total = cv2.GaussianBlur(np.where(known, opened, 0).astype(np.float32), (0, 0), smoothing_px)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weights > 1e-3, total / weights, np.nan).astype(np.float32)


def vegetation_like(rgb: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of a (3, H, W) RGB array greener than :data:`GREEN_EXG`."""
    r, g, b = (band.astype(np.float32) for band in rgb[:3])
    total = r + g + b
    exg = np.divide(2 * g - r - b, total, out=np.zeros_like(total), where=total > 0)
    return exg > GREEN_EXG


def with_height(
    probability: np.ndarray, ndsm_m: np.ndarray, rgb: np.ndarray, pixel_m: float
) -> np.ndarray:
    """Building ``probability`` revised by height above ground ``ndsm_m`` (same grid, pixels
    ``pixel_m`` wide).

    The rule, a likelihood ratio on the classifier's odds: a pixel at least ``RAISED_M`` above
    ground that does not look like vegetation has its odds multiplied by ``RAISED_ODDS``
    (walls and roofs rise; crowns do too, so there the classifier keeps its say); a pixel
    below ``FLAT_M`` has its probability multiplied by ``FLAT_FACTOR``, under any threshold
    the detector uses (a flat grey yard is not a roof, however roof-like it looks). Between
    the two (slabs, low walls, vines) and where the DSM has no data, it is left as it is.
    Heights are median-filtered over ``EDGE_M``, and raised areas trusted only ``EDGE_M``
    inside their edge: a DSM's edges are blurred, and a roof must not spill onto its
    neighbour's lot.
    """
    size = max(3, int(round(EDGE_M / pixel_m)) | 1)
    known = np.isfinite(ndsm_m)
    height = cv2.medianBlur(np.where(known, ndsm_m, RAISED_M / 2).astype(np.float32), min(size, 5))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    raised = cv2.erode(((height >= RAISED_M) & known).astype(np.uint8), disc) > 0
    raised &= ~vegetation_like(rgb)
    revised = probability.astype(np.float32, copy=True)
    odds = revised[raised] / np.maximum(1.0 - revised[raised], 1e-6)
    revised[raised] = RAISED_ODDS * odds / (1.0 + RAISED_ODDS * odds)
    revised[(height < FLAT_M) & known] *= FLAT_FACTOR
    return revised


def _warped(src: DatasetReader, grid: Grid, window: Window, resampling: Resampling) -> np.ndarray:
    """Band 1 of ``src`` warped onto ``window`` of ``grid``, float32, NaN where it has no data."""
    with WarpedVRT(
        src,
        crs=grid.crs,
        transform=grid.transform,
        width=grid.width,
        height=grid.height,
        resampling=resampling,
        nodata=np.nan,
        dtype="float32",
    ) as vrt:
        return vrt.read(1, window=window)
