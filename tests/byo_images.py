"""Test helpers for the commands on a user's orthophoto: a simulator world and copies of its
orthophotos as users hand them over (another CRS, uint16 multispectral, no-data around)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio import features as rio_features
from rasterio.enums import ColorInterp, Resampling
from rasterio.warp import calculate_default_transform, reproject
from shapely.geometry.base import BaseGeometry

import cli


def run(*args: str | Path, capsys) -> tuple[int, str, str]:  # noqa: ANN001
    """``raqib ARGS`` in this process: exit code, stdout, stderr."""
    code = cli.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def reprojected(image: Path, out: Path, crs: str) -> Path:
    """``image`` (RGB) warped to ``crs`` with an alpha band marking where it has data."""
    with rasterio.open(image) as src:
        transform, width, height = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds
        )
        profile = src.profile | {
            "crs": crs, "transform": transform, "width": width, "height": height, "count": 4,
            "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
            "photometric": "RGB",
        }  # fmt: skip
        with rasterio.open(out, "w", **profile) as dst:
            dst.update_tags(**src.tags())  # as gdalwarp copies metadata (the capture time)
            for band in (1, 2, 3):
                reproject(
                    rasterio.band(src, band), rasterio.band(dst, band),
                    resampling=Resampling.bilinear,
                )  # fmt: skip
            seen = np.zeros((height, width), np.uint8)
            reproject(
                np.full((src.height, src.width), 255, np.uint8), seen,
                src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                dst_crs=crs, resampling=Resampling.nearest,
            )  # fmt: skip
            dst.write(seen, 4)
            dst.colorinterp = [
                ColorInterp.red,
                ColorInterp.green,
                ColorInterp.blue,
                ColorInterp.alpha,
            ]
    return out


def multispectral_copy(image: Path, out: Path) -> Path:
    """``image`` as a 12-bit uint16 camera would give it, unnamed bands NIR, red, green, blue:
    NIR bright where the scene is green (a plausible leaf), dull on soil."""
    with rasterio.open(image) as src:
        red, green, blue = src.read((1, 2, 3)).astype(np.float32) * (4095 / 255)
        profile = src.profile | {"count": 4, "dtype": "uint16", "photometric": "MINISBLACK"}
        tags = src.tags()  # the camera's copy keeps its capture time
    greenness = np.clip((2 * green - red - blue) / np.maximum(red + green + blue, 1), 0, 1)
    nir = np.clip(0.3 * (red + green) + 6000 * greenness, 0, 4095)
    with rasterio.open(out, "w", **profile) as dst:
        dst.update_tags(**tags)
        dst.write(np.stack([nir, red, green, blue]).round().astype(np.uint16))
    return out


def cut_out(image: Path, out: Path, keep: BaseGeometry, how: str) -> Path:
    """``image`` (RGB) with no data outside ``keep``, as orthophotos mark it: ``alpha`` (an
    alpha band, white beneath), ``nodata`` (black, nodata value 0) or ``collar`` (white fill
    and no mask at all, as in the WebODM sample)."""
    with rasterio.open(image) as src:
        pixels, profile, tags = src.read(), src.profile, src.tags()
        inside = rio_features.rasterize(
            [(keep, 1)], out_shape=(src.height, src.width), transform=src.transform
        ).astype(bool)
    pixels[:, ~inside] = 0 if how == "nodata" else 255
    if how == "alpha":
        profile |= {"count": 4, "photometric": "RGB"}
        pixels = np.concatenate([pixels, 255 * inside[None].astype(np.uint8)])
    elif how == "nodata":
        profile |= {"nodata": 0}
    with rasterio.open(out, "w", **profile) as dst:
        dst.update_tags(**tags)
        if how == "alpha":
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue,
                               ColorInterp.alpha]  # fmt: skip
        dst.write(pixels)
    return out
