"""Windowed raster I/O shared by the models: blocks with a margin, validity masks, atomic writes.

Mosaics can be province-sized, so every model reads and writes them block by block. A block
is read with a margin so that neighbourhood filters give the same result on either side of a
block seam.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.windows import Window

from core.errors import InputError
from core.io import atomic_path
from core.types import Raster

BLOCK_PX = 1024


@dataclass(frozen=True)
class Block:
    """One block of a raster: the window it covers and the window read around it."""

    window: Window
    padded: Window

    @property
    def inner(self) -> tuple[slice, slice]:
        """Slices of the padded array that hold ``window``."""
        row0 = int(self.window.row_off - self.padded.row_off)
        col0 = int(self.window.col_off - self.padded.col_off)
        return (
            slice(row0, row0 + int(self.window.height)),
            slice(col0, col0 + int(self.window.width)),
        )


def blocks(
    width: int, height: int, *, size_px: int = BLOCK_PX, margin_px: int = 0
) -> Iterator[Block]:
    """Blocks of at most ``size_px`` covering a ``width`` x ``height`` raster, with margins."""
    for row in range(0, height, size_px):
        for col in range(0, width, size_px):
            window = Window(col, row, min(size_px, width - col), min(size_px, height - row))
            top, left = max(0, row - margin_px), max(0, col - margin_px)
            bottom = min(height, row + window.height + margin_px)
            right = min(width, col + window.width + margin_px)
            yield Block(window, Window(left, top, right - left, bottom - top))


def open_georaster(path: str | Path, *, north_up: bool = False) -> DatasetReader:
    """Open a raster that has a CRS (and, with ``north_up``, no rotation); InputError
    naming ``path`` otherwise."""
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(path, f"cannot open raster ({exc})") from exc
    problem = None
    if src.crs is None:
        problem = "raster has no CRS"
    elif north_up and (src.transform.b != 0 or src.transform.d != 0):
        problem = "rotated rasters are not supported"
    if problem:
        src.close()
        raise InputError(path, problem)
    return src


def open_rgb(path: str | Path) -> DatasetReader:
    """Open an RGB(A) image, raising :class:`InputError` when it is not one."""
    src = open_georaster(path)
    if src.count < 3 or src.dtypes[0] != "uint8":
        src.close()
        raise InputError(
            path, f"expected 3 or 4 uint8 bands (RGB[A]), got {src.count} {src.dtypes[0]}"
        )
    return src


def read_rgb(src: DatasetReader, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Bands 1-3 as (3, H, W) uint8 and a (H, W) bool of valid pixels (alpha / mask / nodata)."""
    rgb = src.read((1, 2, 3), window=window)
    valid = src.dataset_mask(window=window) > 0
    return rgb, valid


@dataclass(frozen=True)
class WorkingGrid:
    """A grid ``factor`` times coarser than a raster's, on the same origin (its last row and
    column may reach past the raster's edge)."""

    factor: int
    width: int
    height: int
    transform: Affine


def working_grid(src: DatasetReader, pixel_m: float | None) -> WorkingGrid:
    """The coarsening of ``src`` whose pixels are closest to ``pixel_m`` (never finer than
    ``src``'s; ``src``'s own grid when ``pixel_m`` is None)."""
    factor = 1 if pixel_m is None else max(1, round(pixel_m / pixel_size_m(src)))
    return WorkingGrid(
        factor=factor,
        width=-(-src.width // factor),
        height=-(-src.height // factor),
        transform=src.transform * Affine.scale(factor),
    )


def pixel_size_m(src: DatasetReader) -> float:
    """The ground width (m) of a pixel of ``src`` (at its centre, for a lon/lat raster)."""
    if src.crs.is_geographic:
        latitude = src.xy(src.height / 2, src.width / 2)[1]
        return abs(src.transform.a) * 111_320.0 * math.cos(math.radians(latitude))
    return abs(src.transform.a) * src.crs.linear_units_factor[1]


def read_rgb_on(
    src: DatasetReader, grid: WorkingGrid, window: Window
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_rgb` of ``window`` of ``grid``: ``src``'s pixels averaged over each cell
    (area-weighted, so no aliasing); a cell is valid when most of its pixels are."""
    f = grid.factor
    if f == 1:
        return read_rgb(src, window)
    full = Window(window.col_off * f, window.row_off * f, window.width * f, window.height * f)
    inside = full.intersection(Window(0, 0, src.width, src.height))
    rgb, valid = read_rgb(src, inside)
    short = ((0, int(full.height - inside.height)), (0, int(full.width - inside.width)))
    rgb = np.pad(rgb, ((0, 0), *short), mode="edge")
    valid = np.pad(valid.astype(np.uint8) * 255, short)
    size = (int(window.width), int(window.height))
    coarse = cv2.resize(
        np.ascontiguousarray(np.moveaxis(rgb, 0, -1)), size, interpolation=cv2.INTER_AREA
    )
    coarse_valid = cv2.resize(valid, size, interpolation=cv2.INTER_AREA) >= 128
    return np.moveaxis(coarse, -1, 0), coarse_valid


def raster_ref(path: str | Path) -> Raster:
    """A :class:`Raster` reference to an existing file."""
    with rasterio.open(path) as src:
        return Raster(
            path=Path(path),
            crs=src.crs.to_string(),
            transform=src.transform,
            width=src.width,
            height=src.height,
            count=src.count,
            nodata=src.nodata,
        )


def output_profile(
    src: DatasetReader,
    *,
    dtype: str,
    count: int,
    nodata: float | None,
    grid: WorkingGrid | None = None,
) -> dict:
    """A tiled, compressed GeoTIFF profile on the grid of ``src``, or on ``grid``."""
    grid = grid or WorkingGrid(1, src.width, src.height, src.transform)
    return {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": count,
        "dtype": dtype,
        "crs": src.crs,
        "transform": grid.transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }


@contextmanager
def atomic_writer(out_path: str | Path, profile: dict) -> Iterator[DatasetWriter]:
    """Open a GeoTIFF for writing beside ``out_path``; rename it into place only on success."""
    with atomic_path(out_path) as tmp_path, rasterio.open(tmp_path, "w", **profile) as dst:
        yield dst
