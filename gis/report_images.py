"""The report's pictures: a coverage map (matplotlib) and a mosaic preview read from the COG's
overviews (rasterio), both returned as encoded bytes for the report to store."""

from __future__ import annotations

import io
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from PIL import Image
from rasterio.enums import Resampling

PREVIEW_MAX_PX = 1200
"""Longest side of the mosaic preview; GDAL reads the overview nearest to it."""
MAP_SIZE_IN = (8.0, 6.0)
MAP_DPI = 110
# layer -> (legend label, face colour, edge colour, line width)
_MAP_STYLE = {
    "images": ("photo footprints", (0.2, 0.45, 0.85, 0.06), (0.2, 0.45, 0.85, 0.5), 0.5),
    "crop_health_parcels": ("farm parcels", (0.6, 0.8, 0.5, 0.35), (0.25, 0.4, 0.2, 1.0), 0.8),
    "projects": ("public projects", (1.0, 0.85, 0.0, 0.25), (0.8, 0.6, 0.0, 1.0), 1.2),
    "flagged_parcels": ("flagged parcels", (0.9, 0.1, 0.1, 0.25), (0.8, 0.0, 0.0, 1.0), 1.5),
}


def coverage_map_png(layers: dict[str, pd.DataFrame]) -> bytes:
    """The flight's photo footprints and path over the parcels, flags and projects (PNG)."""
    figure = Figure(figsize=MAP_SIZE_IN, dpi=MAP_DPI, layout="tight")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    crs = next((f.crs for f in layers.values() if isinstance(f, gpd.GeoDataFrame) and f.crs), None)
    handles: list[Patch | Line2D] = []
    for name, (label, face, edge, width) in _MAP_STYLE.items():
        frame = _drawable(layers.get(name), crs)
        if frame is not None:
            frame.plot(ax=axes, facecolor=face, edgecolor=edge, linewidth=width)
            handles.append(Patch(facecolor=face, edgecolor=edge, label=f"{label} ({len(frame)})"))
    mission = _drawable(layers.get("mission"), crs)
    if mission is not None:
        mission.plot(ax=axes, color="black", linewidth=0.7, linestyle="--")
        handles.append(
            Line2D([], [], color="black", linewidth=0.7, linestyle="--", label="flight path")
        )
    if handles:
        axes.legend(
            handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=3, fontsize=8
        )
    else:
        axes.text(0.5, 0.5, "nothing was published for this epoch", ha="center", va="center")
    axes.set_aspect("equal")
    axes.ticklabel_format(useOffset=False, style="plain")
    axes.tick_params(labelsize=7)
    axes.set_title(f"Coverage ({crs.to_string() if crs else 'no CRS'})", fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _drawable(frame: pd.DataFrame | None, crs: object) -> gpd.GeoDataFrame | None:
    if not isinstance(frame, gpd.GeoDataFrame) or frame.crs is None:
        return None
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    return frame.to_crs(crs) if len(frame) else None


def mosaic_preview_jpeg(mosaic: Path, max_px: int = PREVIEW_MAX_PX) -> bytes:
    """A downsampled colour view of ``mosaic`` (JPEG, no-data white), read through its
    overviews; float or multispectral mosaics are stretched between their 2nd and 98th
    percentiles."""
    with rasterio.open(mosaic) as src:
        scale = max(src.width, src.height) / max_px
        shape = (
            max(1, round(src.height / max(scale, 1))),
            max(1, round(src.width / max(scale, 1))),
        )
        bands = _colour_bands(src.descriptions, src.count)
        pixels = src.read(bands, out_shape=(len(bands), *shape), resampling=Resampling.average)
        valid = src.dataset_mask(out_shape=shape, resampling=Resampling.nearest) > 0
    if pixels.dtype != np.uint8:
        pixels = _stretch(pixels.astype(np.float64), valid)
    rgb = np.repeat(pixels, 3, axis=0) if len(bands) == 1 else pixels
    rgb = np.where(valid, rgb, 255).transpose(1, 2, 0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _colour_bands(descriptions: tuple[str | None, ...], count: int) -> list[int]:
    """Band numbers of red, green and blue (by description, else the first three)."""
    named = {(text or "").lower(): i + 1 for i, text in enumerate(descriptions)}
    if {"red", "green", "blue"} <= set(named):
        return [named["red"], named["green"], named["blue"]]
    return [1, 2, 3] if count >= 3 else [1]


def _stretch(pixels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    values = pixels[:, valid & np.isfinite(pixels).all(axis=0)]
    if values.size == 0:
        return np.zeros(pixels.shape, dtype=np.uint8)
    low, high = np.percentile(values, (2, 98))
    scaled = (pixels - low) / (high - low if high > low else 1.0)
    return np.clip(np.nan_to_num(scaled) * 255, 0, 255).astype(np.uint8)
