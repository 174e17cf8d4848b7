"""A small seeded synthetic orchard: round crowns in rows on bare soil, their cast shadows,
trees missing inside rows and at row ends, optionally a NIR band. Used by the canopy and tree
tests; the painted masks and the planting are its truth."""

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
ORIGIN = (600_000.0, 3_870_000.0)
SIZE_M = (64.0, 40.0)
ROW_SPACING_M = 6.0
TREE_SPACING_M = 5.0
SOIL = (150.0, 112.0, 84.0)
CROWN = (52.0, 88.0, 40.0)
SHADOW_OFFSET_M = (-1.6, 1.2)  # north-west of the trunk, a winter-morning sun
SHIFT = 4


@dataclass(frozen=True)
class Orchard:
    image: Path
    trees: gpd.GeoDataFrame
    """Planting positions: ``status`` alive or removed, ``crown_radius_m``."""
    parcel: gpd.GeoDataFrame
    vegetation: np.ndarray
    shadow: np.ndarray


def make_orchard(
    path: Path,
    *,
    seed: int = 0,
    gsd_m: float = 0.1,
    nir: bool = False,
    rotation_deg: float = 0.0,
) -> Orchard:
    """Write the orchard as a GeoTIFF at ``gsd_m`` (rows turned by ``rotation_deg``)."""
    rng = np.random.default_rng(seed)
    width_m, height_m = SIZE_M
    w, h = round(width_m / gsd_m), round(height_m / gsd_m)
    centre = np.array([width_m / 2, height_m / 2])
    turn = np.radians(rotation_deg)
    rotate = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    along = np.arange(-22.5, 23.0, TREE_SPACING_M)
    across = np.arange(-12.0, 12.5, ROW_SPACING_M)
    grid = np.array([(a, c) for c in across for a in along])
    planted = grid @ rotate.T + centre + rng.normal(0, 0.1, grid.shape)
    radius = rng.uniform(1.2, 1.9, len(planted))
    removed = np.zeros(len(planted), bool)
    removed[rng.choice(len(planted), 5, replace=False)] = True
    removed[[0, len(along)]] = True  # the first tree of two rows
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = SOIL
    shade = np.ones((h, w), np.float32)
    vegetation = np.zeros((h, w), np.uint8)
    for (x, y), r, gone in zip(planted, radius, removed, strict=True):
        if gone:
            continue
        sx, sy = x + SHADOW_OFFSET_M[0] * r, y + SHADOW_OFFSET_M[1] * r
        cv2.circle(
            shade, _px(sx, sy, gsd_m, height_m), _len(1.1 * r, gsd_m), 0.4, -1, cv2.LINE_8, SHIFT
        )
    rgb *= shade[..., None]
    shadow = shade < 1
    for (x, y), r, gone in zip(planted, radius, removed, strict=True):
        if gone:
            continue
        colour = np.array(CROWN) * rng.uniform(0.8, 1.2)
        cv2.circle(
            rgb, _px(x, y, gsd_m, height_m), _len(r, gsd_m), colour.tolist(), -1, cv2.LINE_8, SHIFT
        )
        cv2.circle(vegetation, _px(x, y, gsd_m, height_m), _len(r, gsd_m), 1, -1, cv2.LINE_8, SHIFT)
    vegetation = vegetation.astype(bool)
    shadow &= ~vegetation
    rgb *= rng.normal(1.0, 0.06, (h, w, 1)).astype(np.float32)
    bands = list(np.clip(rgb + 0.5, 0, 255).astype(np.uint8).transpose(2, 0, 1))
    if nir:
        infrared = np.where(vegetation, 180.0, 90.0) * shade * rng.normal(1.0, 0.05, (h, w))
        bands.append(np.clip(infrared, 0, 255).astype(np.uint8))
    left, top = ORIGIN[0], ORIGIN[1] + height_m
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": len(bands),
        "dtype": "uint8",
        "crs": CRS,
        "transform": from_origin(left, top, gsd_m, gsd_m),
        "photometric": "RGB" if not nir else "MINISBLACK",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack(bands))
        dst.descriptions = ("Red", "Green", "Blue", "NIR")[: len(bands)]
    trees = gpd.GeoDataFrame(
        {
            "status": np.where(removed, "removed", "alive"),
            "crown_radius_m": radius,
        },
        geometry=gpd.points_from_xy(planted[:, 0] + ORIGIN[0], planted[:, 1] + ORIGIN[1]),
        crs=CRS,
    )
    parcel = gpd.GeoDataFrame(
        {"parcel_id": ["P-1"]},
        geometry=[
            box(ORIGIN[0] + 1, ORIGIN[1] + 1, ORIGIN[0] + width_m - 1, ORIGIN[1] + height_m - 1)
        ],
        crs=CRS,
    )
    return Orchard(path, trees, parcel, vegetation, shadow)


def _px(x_m: float, y_m: float, gsd_m: float, height_m: float) -> tuple[int, int]:
    """Fixed-point pixel coordinates (OpenCV ``shift``) of a point in scene metres."""
    return (_len(x_m, gsd_m, -0.5), _len(height_m - y_m, gsd_m, -0.5))


def _len(metres: float, gsd_m: float, offset_px: float = 0.0) -> int:
    return round((metres / gsd_m + offset_px) * (1 << SHIFT))
