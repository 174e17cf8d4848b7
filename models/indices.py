"""Visible-band vegetation indices: a registry of pure functions and a windowed raster writer.

Each index takes float32 red, green, blue arrays (any scale: the indices are ratios) and
returns float32, nan where the denominator is zero.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.errors import InputError
from core.types import Raster
from models.windows import atomic_writer, blocks, open_rgb, output_profile, raster_ref, read_rgb

IndexFunction = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` as float32, nan where the denominator is zero."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan, dtype=np.float32)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def vari(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """Visible Atmospherically Resistant Index (Gitelson 2002): (G - R) / (G + R - B)."""
    return safe_ratio(green - red, green + red - blue)


def exg(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """Excess Green (Woebbecke 1995) on chromatic coordinates: 2g - r - b."""
    total = red + green + blue
    return safe_ratio(2 * green - red - blue, total)


def gli(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """Green Leaf Index (Louhaichi 2001): (2G - R - B) / (2G + R + B)."""
    return safe_ratio(2 * green - red - blue, 2 * green + red + blue)


def ngrdi(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """Normalised Green-Red Difference Index (Tucker 1979): (G - R) / (G + R)."""
    return safe_ratio(green - red, green + red)


INDICES: dict[str, IndexFunction] = {"vari": vari, "exg": exg, "gli": gli, "ngrdi": ngrdi}


def compute_index(index: str, rgb: np.ndarray) -> np.ndarray:
    """Index ``index`` of a (3, H, W) RGB array, as (H, W) float32."""
    red, green, blue = (band.astype(np.float32) for band in rgb)
    return INDICES[index](red, green, blue)


def index_raster(src_path: str | Path, index: str, out_path: str | Path) -> Raster:
    """Write index ``index`` of an RGB(A) image as a float32 GeoTIFF (nodata nan), by blocks."""
    if index not in INDICES:
        raise InputError(src_path, f"unknown index {index!r}; choose one of {sorted(INDICES)}")
    with open_rgb(src_path) as src:
        profile = output_profile(src, dtype="float32", count=1, nodata=float("nan"))
        with atomic_writer(out_path, profile) as dst:
            dst.set_band_description(1, index)
            for block in blocks(src.width, src.height):
                rgb, valid = read_rgb(src, block.window)
                values = compute_index(index, rgb)
                values[~valid] = np.nan
                dst.write(values, 1, window=block.window)
    return raster_ref(out_path)
