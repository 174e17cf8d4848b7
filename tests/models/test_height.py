"""Height above ground from a DSM (a box on a slope, any CRS) and the rule that revises a
building probability with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import calculate_default_transform, reproject

from core.types import Grid
from models.height import FLAT_M, normalised_dsm, with_height

LEFT, TOP = 564000.0, 3865400.0
IMAGE = Grid("EPSG:32630", Affine(0.1, 0, LEFT, 0, -0.1, TOP), 1200, 1000)  # 120 x 100 m
BOX = (slice(400, 550), slice(500, 700))  # rows, cols of IMAGE: 15 x 20 m


def sloped_dsm(path: Path, *, crs: str = "EPSG:32630") -> Path:
    """A 0.25 m DSM over IMAGE: ground rising 3 % to the east (3.6 m across), 0.1 m noise, and
    a 6 m box over ``BOX``; warped to ``crs`` when it is another."""
    rng = np.random.default_rng(4)
    cols = np.arange(480) * 0.25 + 0.125
    heights = 150.0 + 0.03 * np.tile(cols, (400, 1)) + rng.normal(0, 0.1, (400, 480))
    heights[160:220, 200:280] += 6.0
    transform = Affine(0.25, 0, LEFT, 0, -0.25, TOP)
    profile = {"driver": "GTiff", "count": 1, "dtype": "float32", "nodata": -9999.0}
    if crs != "EPSG:32630":
        dst_transform, width, height = calculate_default_transform(
            "EPSG:32630", crs, 480, 400, LEFT, TOP - 100, LEFT + 120, TOP
        )
        warped = np.full((height, width), -9999.0, np.float32)
        reproject(heights.astype(np.float32), warped, src_transform=transform,
                  src_crs="EPSG:32630", dst_transform=dst_transform, dst_crs=crs,
                  dst_nodata=-9999.0)  # fmt: skip
        heights, transform = warped, dst_transform
    with rasterio.open(path, "w", width=heights.shape[1], height=heights.shape[0], crs=crs,
                       transform=transform, **profile) as dst:  # fmt: skip
        dst.write(heights.astype(np.float32), 1)
    return path


def test_a_box_on_a_slope_stands_6_m_and_the_slope_is_ground(tmp_path: Path) -> None:
    ndsm = normalised_dsm(sloped_dsm(tmp_path / "dsm.tif"), IMAGE)
    assert ndsm.shape == (IMAGE.height, IMAGE.width)
    inside = ndsm[BOX[0].start + 10 : BOX[0].stop - 10, BOX[1].start + 10 : BOX[1].stop - 10]
    assert abs(np.median(inside) - 6.0) < 0.2
    ground = np.zeros(ndsm.shape, bool)
    ground[200:-200, 200:-200] = True  # 20 m from the edges, where the opening sees both sides
    ground[BOX[0].start - 20 : BOX[0].stop + 20, BOX[1].start - 20 : BOX[1].stop + 20] = False
    assert abs(np.median(ndsm[ground])) < 0.1
    assert np.percentile(np.abs(ndsm[ground]), 99) < FLAT_M  # the 3.6 m rise is gone


def test_a_window_gives_the_same_heights_as_the_whole(tmp_path: Path) -> None:
    dsm = sloped_dsm(tmp_path / "dsm.tif")
    whole = normalised_dsm(dsm, IMAGE)
    window = rasterio.windows.Window(450, 350, 300, 250)
    part = normalised_dsm(dsm, IMAGE, window)
    np.testing.assert_allclose(part, whole[350:600, 450:750], atol=0.02)


def test_a_dsm_in_lon_lat_gives_the_same_box(tmp_path: Path) -> None:
    ndsm = normalised_dsm(sloped_dsm(tmp_path / "dsm_4326.tif", crs="EPSG:4326"), IMAGE)
    inside = ndsm[BOX[0].start + 10 : BOX[0].stop - 10, BOX[1].start + 10 : BOX[1].stop - 10]
    assert abs(np.nanmedian(inside) - 6.0) < 0.25


def test_height_raises_roofs_keeps_crowns_and_lowers_flat_ground() -> None:
    grey, green = np.full((3, 40, 40), 180, np.uint8), np.zeros((3, 40, 40), np.uint8)
    green[:] = np.array([50, 80, 40], np.uint8)[:, None, None]
    unsure = np.full((40, 40), 0.3, np.float32)
    tall, flat = np.full((40, 40), 4.0, np.float32), np.zeros((40, 40), np.float32)
    assert with_height(unsure, tall, grey, 0.1)[20, 20] > 0.6  # a roof the model doubted
    assert with_height(unsure, tall, green, 0.1)[20, 20] == np.float32(0.3)  # a crown
    roof_like = np.full((40, 40), 0.99, np.float32)
    assert with_height(roof_like, flat, grey, 0.1)[20, 20] < 0.25  # a grey yard
    slab = np.full((40, 40), 0.4, np.float32)
    assert with_height(roof_like, slab, grey, 0.1)[20, 20] == np.float32(0.99)
    unknown = np.full((40, 40), np.nan, np.float32)
    np.testing.assert_array_equal(with_height(roof_like, unknown, grey, 0.1), roof_like)
