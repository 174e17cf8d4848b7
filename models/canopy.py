"""Canopy mask: vegetation, bare soil and cast shadow, from RGB or NIR, by windows.

Greenness is NDVI when the raster has a NIR band, else Excess Green (ExG, on chromatic
coordinates): both are ratios, unchanged by exposure or by a shadow's darkness. Pixels
greener than a threshold are vegetation; of the others, those darker than ``SHADOW_RATIO``
times the median brightness (HSV value, the largest of R, G, B) of the non-vegetation are
shadow, the rest soil.

The greenness threshold is Otsu's on a decimated sample of the whole raster, so every window
uses the same one (no seams), clamped to a range that keeps it meaningful when a scene is
all soil or all canopy: ExG in [0.05, 0.25] (bare and shaded soil sit near 0 to -0.1, green
canopy at 0.2-0.5; Woebbecke et al. 1995, Meyer & Neto 2008), NDVI in [0.2, 0.5] (soil and
stubble below 0.2, leaves well above). The shadow ratio is fixed: a cast shadow keeps only
the skylight, 20-50 % of the sunlit brightness, while sunlit soil texture seldom falls below
two thirds of its median.

The index is smoothed with a Gaussian of ``SMOOTHING_M`` (pixels from the GSD, 3-50 cm)
before thresholding: it averages sensor noise and fruit or leaf speckle and stays well below
the smallest crown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.windows import Window

from core.errors import InputError
from core.types import Raster
from models.indices import exg, ndvi, raster_bands
from models.windows import atomic_writer, blocks, output_profile, raster_ref

NODATA, VEGETATION, SOIL, SHADOW = 0, 1, 2, 3
GREENNESS_RANGE = {"exg": (0.05, 0.25), "ndvi": (0.2, 0.5)}
SHADOW_RATIO = 0.65
SMOOTHING_M = 0.1
SAMPLE_PX = 1024
VISIBLE = ("red", "green", "blue")


@dataclass(frozen=True)
class CanopyThresholds:
    """The raster-wide split, in the raster's units: greenness index ("exg" or "ndvi"), the
    vegetation threshold on it, the median greenness of the rest (``background``), and the
    brightness below which the rest is shadow."""

    index: str
    greenness: float
    background: float
    shadow_value: float


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (maximum between-class variance) of finite ``values``."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    low, high = np.percentile(values, [0.5, 99.5])
    if high <= low:
        return float(low)
    counts, edges = np.histogram(np.clip(values, low, high), bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)
    above = below[-1] - below
    mass = np.cumsum(counts * centres)
    mean_below = mass / np.maximum(below, 1)
    mean_above = (mass[-1] - mass) / np.maximum(above, 1)
    between = below * above * (mean_below - mean_above) ** 2
    # Well-separated classes leave empty bins between them, all equally good: take the middle.
    return float(centres[np.flatnonzero(between == between.max())].mean())


def greenness_index(bands: Mapping[str, np.ndarray]) -> str:
    """The greenness index of these bands: NDVI with red and NIR, else ExG (red, green, blue)."""
    return "ndvi" if {"red", "nir"} <= set(bands) else "exg"


def greenness(bands: Mapping[str, np.ndarray], index: str) -> np.ndarray:
    """The greenness index of float32 bands (nan where undefined)."""
    if index == "ndvi":
        return ndvi(bands["nir"], bands["red"])
    return exg(bands["red"], bands["green"], bands["blue"])


def brightness(bands: Mapping[str, np.ndarray]) -> np.ndarray:
    """HSV value: the largest visible band (red and green at least)."""
    return np.maximum.reduce([bands[b] for b in VISIBLE if b in bands])


def smoothed(values: np.ndarray, gsd_m: float) -> np.ndarray:
    """``values`` under a Gaussian of ``SMOOTHING_M``, nan treated as 0 and kept nan."""
    sigma_px = SMOOTHING_M / gsd_m
    finite = np.isfinite(values)
    if sigma_px < 0.5:
        return values
    out = cv2.GaussianBlur(
        np.where(finite, values, 0).astype(np.float32),
        (0, 0),
        sigma_px,
        borderType=cv2.BORDER_REFLECT,
    )
    out[~finite] = np.nan
    return out


def canopy_thresholds(bands: Mapping[str, np.ndarray], valid: np.ndarray) -> CanopyThresholds:
    """Thresholds from a (decimated) sample of the whole raster: see the module docstring."""
    index = greenness_index(bands)
    green = greenness(bands, index)[valid]
    low, high = GREENNESS_RANGE[index]
    green_threshold = float(np.clip(otsu_threshold(green), low, high))
    ground = ~(green > green_threshold)
    if not ground.any():
        return CanopyThresholds(index, green_threshold, low, 0.0)
    background = float(np.nanmedian(green[ground]))
    shadow = SHADOW_RATIO * float(np.median(brightness(bands)[valid][ground]))
    return CanopyThresholds(index, green_threshold, background, shadow)


def classify_canopy(
    bands: Mapping[str, np.ndarray],
    valid: np.ndarray,
    thresholds: CanopyThresholds,
    gsd_m: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Canopy classes (uint8, ``NODATA``/``VEGETATION``/``SOIL``/``SHADOW``) and the smoothed
    greenness they were split on, for float32 bands of one window."""
    green = smoothed(greenness(bands, thresholds.index), gsd_m)
    value = smoothed(brightness(bands), gsd_m)
    classes = np.full(valid.shape, SOIL, np.uint8)
    classes[value < thresholds.shadow_value] = SHADOW
    classes[green > thresholds.greenness] = VEGETATION
    classes[~valid | ~np.isfinite(green)] = NODATA
    return classes, green


def band_numbers(src: DatasetReader, path: str | Path, band_names: Sequence[str] | None) -> dict:
    """``BANDS`` name -> band number for the bands a canopy mask can use; InputError when
    neither red+green+blue nor red+NIR are there."""
    mapping = raster_bands(src, path, band_names)
    usable = {b: n for b, n in mapping.items() if b in (*VISIBLE, "nir")}
    if not ({"red", "nir"} <= set(usable) or set(VISIBLE) <= set(usable)):
        raise InputError(
            path,
            f"a canopy mask needs red, green and blue or red and NIR bands; "
            f"found {sorted(mapping) or 'none'} (name them with band_names)",
        )
    return usable


def read_bands(
    src: DatasetReader,
    numbers: Mapping[str, int],
    window: Window | None = None,
    out_shape: tuple[int, int] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Float32 bands by name and the valid-pixel mask of a window (or the whole raster,
    averaged down to ``out_shape`` when given)."""
    names = list(numbers)
    shape = None if out_shape is None else (len(names), *out_shape)
    values = src.read(
        [numbers[n] for n in names],
        window=window,
        out_shape=shape,
        out_dtype=np.float32,
        resampling=Resampling.average,
    )
    masks = src.read_masks(
        [numbers[n] for n in names], window=window, out_shape=shape, resampling=Resampling.nearest
    )
    valid = (masks > 0).all(axis=0) & np.isfinite(values).all(axis=0)
    return dict(zip(names, values, strict=True)), valid


def sample_thresholds(src: DatasetReader, numbers: Mapping[str, int]) -> CanopyThresholds:
    """:func:`canopy_thresholds` of the raster read at most ``SAMPLE_PX`` on a side."""
    scale = max(1.0, max(src.width, src.height) / SAMPLE_PX)
    shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
    bands, valid = read_bands(src, numbers, out_shape=shape)
    if not valid.any():
        raise InputError(src.name, "raster has no valid pixels")
    return canopy_thresholds(bands, valid)


def pixel_size_m(src: DatasetReader, path: str | Path) -> float:
    """Ground sample distance in metres; InputError for a raster without a projected CRS."""
    if src.crs is None:
        raise InputError(path, "raster has no CRS")
    if not src.crs.is_projected:
        raise InputError(
            path, f"raster CRS {src.crs.to_string()} is not projected; reproject it (e.g. to UTM)"
        )
    factor = src.crs.linear_units_factor[1]
    return float(np.sqrt(abs(src.transform.determinant))) * factor


def open_raster(path: str | Path) -> DatasetReader:
    """Open a raster, raising :class:`InputError` naming it when it cannot be read."""
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(path, f"cannot open raster ({exc})") from exc


def canopy_raster(
    src_path: str | Path, out_path: str | Path, *, band_names: Sequence[str] | None = None
) -> Raster:
    """Write the canopy classes of a raster as a uint8 GeoTIFF (0 = nodata), block by block."""
    with open_raster(src_path) as src:
        gsd_m = pixel_size_m(src, src_path)
        numbers = band_numbers(src, src_path, band_names)
        thresholds = sample_thresholds(src, numbers)
        margin_px = int(np.ceil(4 * SMOOTHING_M / gsd_m))
        profile = output_profile(src, dtype="uint8", count=1, nodata=NODATA)
        with atomic_writer(out_path, profile) as dst:
            dst.set_band_description(1, "canopy")
            for block in blocks(src.width, src.height, margin_px=margin_px):
                bands, valid = read_bands(src, numbers, block.padded)
                classes, _ = classify_canopy(bands, valid, thresholds, gsd_m)
                dst.write(classes[block.inner], 1, window=block.window)
    return raster_ref(out_path)
