"""A small seeded synthetic orthophoto with its truth: fields of three health classes, roofs
with cast shadows, a road and a greenhouse. Used by the model tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

CRS = "EPSG:32630"
GSD_M = 0.1
ORIGIN = (600000.0, 3870000.0)


@dataclass(frozen=True)
class Scene:
    image: Path
    buildings: gpd.GeoDataFrame
    health: gpd.GeoDataFrame


def _to_world(col0: int, row0: int, col1: int, row1: int):
    x0, y0 = ORIGIN
    return box(x0 + col0 * GSD_M, y0 - row1 * GSD_M, x0 + col1 * GSD_M, y0 - row0 * GSD_M)


def make_scene(path: Path, *, seed: int = 0, size_px: int = 600, alpha: bool = False) -> Scene:
    """Write a ``size_px`` square RGB(A) GeoTIFF at 10 cm and return it with its truth."""
    rng = np.random.default_rng(seed)
    h = w = size_px
    img = np.zeros((h, w, 3), np.float32)
    third = w // 3
    health_rows = []
    # Three vertical fields: healthy (dense green rows), stressed (thin yellowish), bare soil.
    colours = {"healthy": (60, 130, 45), "stressed": (150, 150, 70), "bare": (150, 105, 75)}
    for i, (name, colour) in enumerate(colours.items()):
        col0, col1 = i * third, (i + 1) * third if i < 2 else w
        field = np.array(colour, np.float32) * rng.normal(1.0, 0.08, (h, col1 - col0, 1))
        if name != "bare":
            rows = (np.arange(h) % 12 < (9 if name == "healthy" else 5))[:, None, None]
            field = np.where(rows, field, np.array(colours["bare"], np.float32))
        img[:, col0:col1] = field
        health_rows.append(
            {"health": name, "geometry": _to_world(col0 + 5, h // 2 + 5, col1 - 5, h - 5)}
        )
    # Roofs: light concrete rectangles casting a dark bluish shadow to the south-east.
    building_rows = []
    cell_w, cell_h = w // 3, (h // 2 - 30) // 2
    for k in range(6):
        bw, bh = (int(v) for v in rng.integers(cell_w // 3, cell_w - 30, 2).clip(max=cell_h - 25))
        col0 = (k % 3) * cell_w + int(rng.integers(5, cell_w - bw - 15))
        row0 = (k // 3) * cell_h + int(rng.integers(5, cell_h - bh - 15))
        roof = np.array((200, 195, 185), np.float32) * rng.uniform(0.85, 1.1)
        img[row0 + 10 : row0 + bh + 10, col0 + 10 : col0 + bw + 10] = (45, 50, 70)
        img[row0 : row0 + bh, col0 : col0 + bw] = roof + rng.normal(0, 6, (bh, bw, 3))
        building_rows.append(
            {"building_id": k, "geometry": _to_world(col0, row0, col0 + bw, row0 + bh)}
        )
    # Hard negatives: a road and a white greenhouse with regular ribs.
    img[h // 2 - 20 : h // 2 - 5, :] = (120, 115, 110)
    ribs = np.where((np.arange(60) % 8) < 2, 170, 235)[None, :, None]
    img[h - 80 : h - 20, w - 100 : w - 40] = np.broadcast_to(ribs, (60, 60, 3))
    img = cv2.GaussianBlur(img, (3, 3), 0.7) + rng.normal(0, 4, img.shape)
    rgb = np.clip(img, 0, 255).astype(np.uint8).transpose(2, 0, 1)

    bands = [*rgb, np.full((h, w), 255, np.uint8)] if alpha else list(rgb)
    if alpha:
        bands[3][:, :40] = 0
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": len(bands),
        "dtype": "uint8",
        "crs": CRS,
        "transform": from_origin(*ORIGIN, GSD_M, GSD_M),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack(bands))
        if alpha:
            dst.colorinterp = [
                rasterio.enums.ColorInterp.red,
                rasterio.enums.ColorInterp.green,
                rasterio.enums.ColorInterp.blue,
                rasterio.enums.ColorInterp.alpha,
            ]
    return Scene(
        path, gpd.GeoDataFrame(building_rows, crs=CRS), gpd.GeoDataFrame(health_rows, crs=CRS)
    )
