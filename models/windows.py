"""Windowed raster I/O shared by the models: blocks with a margin, validity masks, atomic writes.

Mosaics can be province-sized, so every model reads and writes them block by block. A block
is read with a margin so that neighbourhood filters give the same result on either side of a
block seam.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
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


def output_profile(src: DatasetReader, *, dtype: str, count: int, nodata: float | None) -> dict:
    """A tiled, compressed GeoTIFF profile on the grid of ``src``."""
    return {
        "driver": "GTiff",
        "width": src.width,
        "height": src.height,
        "count": count,
        "dtype": dtype,
        "crs": src.crs,
        "transform": src.transform,
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
