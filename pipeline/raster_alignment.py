"""Co-registration of two orthophotos of one place: one warped onto the other's grid, then moved
onto it by the similarity their tie points give.

Two users' orthophotos of a place (two dates, two contractors) disagree by their GNSS errors,
a metre or more without ground control: enough to turn every roof edge into a change. The
moving raster is first warped onto the reference's grid (GDAL's warper, block by block), then
the features and matching of :mod:`pipeline.coregister` (SIFT at ``MATCH_GSD_M``, candidates
within ``MAX_OFFSET_M`` on the ground, a ratio test that works across seasons, RANSAC
similarity) run on both over a few patches spread across the overlap (bounded work whatever
the size), one similarity is fitted to the tie points, and the moving raster is warped again
from its own pixels with that correction (one resampling, not two).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from shapely.geometry import Polygon, box

from core.io import atomic_path
from pipeline.coregister import MATCH_GSD_M, MIN_INLIERS, reference_features, tie_points

PATCH_M = 150.0
"""Side of the square patches features are matched in."""
PATCHES_PER_SIDE = 3
"""Patches along each side of the overlap (at most this squared)."""
MIN_MOVE_PX = 0.25
"""A correction that moves no corner of the overlap by more than this (reference pixels)
is not applied: resampling would blur more than it fixes."""
BLOCK_PX = 1024


@dataclass(frozen=True)
class Alignment:
    """Map coordinates of the moving raster -> the reference's (identity when ``tie_points``
    were too few to tell), and the tie points that support it."""

    correction: Affine
    tie_points: int

    def move_at(self, x: float, y: float) -> tuple[float, float]:
        """How far (east, north) the correction moves the point (x, y)."""
        new_x, new_y = self.correction @ (x, y)
        return new_x - x, new_y - y

    def largest_move_m(self, area: Polygon) -> float:
        """How far the correction moves any corner of ``area``'s bounding box."""
        corners = np.asarray(area.envelope.exterior.coords)
        moved = np.array([self.correction @ tuple(c) for c in corners])
        return float(np.max(np.hypot(*(moved - corners).T)))


@dataclass(frozen=True)
class AlignedRaster:
    """A raster warped onto a reference's grid and moved onto it (``applied``) by
    ``alignment``; ``moved_m`` is the largest move over the overlap."""

    path: Path
    alignment: Alignment
    applied: bool
    moved_m: float

    def note(self) -> str:
        """One phrase for a summary line."""
        if self.alignment.tie_points < MIN_INLIERS:
            return f"not co-registered: only {self.alignment.tie_points} tie points"
        verb = "moved" if self.applied else "already aligned, off"
        return f"{verb} by up to {self.moved_m:.2f} m ({self.alignment.tie_points} tie points)"


def aligned_onto(reference: Path, moving: Path, out_path: Path) -> AlignedRaster:
    """``moving`` (8-bit RGB with a mask or alpha, in any CRS) warped onto ``reference``'s
    grid and co-registered to it, written to ``out_path`` (RGB + internal mask)."""
    warp_onto(moving, reference, out_path)
    overlap = _overlap(reference, out_path)
    alignment = align(reference, out_path, overlap)
    with rasterio.open(reference) as ref:
        pixel = abs(ref.transform.a)
    moved_m = alignment.largest_move_m(overlap)
    applied = moved_m > MIN_MOVE_PX * pixel
    if applied:
        warp_onto(moving, reference, out_path, correction=alignment.correction)
    return AlignedRaster(out_path, alignment, applied, moved_m)


def warp_onto(
    moving: Path, reference: Path, out_path: Path, *, correction: Affine | None = None
) -> Path:
    """``moving``'s first three bands warped (bilinear) onto ``reference``'s grid, block by
    block, atomically, with an internal mask of where it has data. ``correction`` (``moving``'s
    map coordinates -> true ones, in ``reference``'s CRS) moves its content where it belongs."""
    with rasterio.open(reference) as ref:
        crs, transform, width, height = ref.crs, ref.transform, ref.width, ref.height
    sampled = transform if correction is None else ~correction @ transform
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 3,
        "dtype": "uint8",
        "crs": crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "photometric": "RGB",
        "BIGTIFF": "IF_SAFER",
    }
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(moving) as src,
        WarpedVRT(
            src,
            crs=crs,
            transform=sampled,
            width=width,
            height=height,
            resampling=Resampling.bilinear,
            add_alpha=ColorInterp.alpha not in src.colorinterp,
        ) as vrt,
        atomic_path(out_path) as tmp,
        rasterio.open(tmp, "w", **profile) as dst,
    ):
        for window in _windows(width, height):
            dst.write(vrt.read((1, 2, 3), window=window), window=window)
            valid = vrt.dataset_mask(window=window) > 0  # src's alpha, nodata or mask
            dst.write_mask(valid.astype(np.uint8) * 255, window=window)
    return out_path


def align(reference: Path, moving: Path, overlap: Polygon) -> Alignment:
    """The similarity that brings ``moving`` onto ``reference`` (both in one CRS, e.g. on one
    grid), from tie points within ``overlap``."""
    patches = _patches(overlap)
    points_moving, points_reference = tie_points(
        reference_features(moving, patches), reference_features(reference, patches)
    )
    if len(points_moving) < MIN_INLIERS:
        return Alignment(Affine.identity(), len(points_moving))
    centre = np.asarray(overlap.centroid.coords[0])
    model, inliers = cv2.estimateAffinePartial2D(
        points_moving - centre,
        points_reference - centre,
        method=cv2.RANSAC,
        ransacReprojThreshold=2.0 * MATCH_GSD_M,
    )
    if model is None:
        return Alignment(Affine.identity(), 0)
    about_centre = Affine(*model[0], *model[1])
    correction = Affine.translation(*centre) @ about_centre @ Affine.translation(*(-centre))
    return Alignment(correction, int(inliers.sum()))


def _overlap(reference: Path, warped: Path) -> Polygon:
    """The bounding box of the pixels valid in both rasters (one grid)."""
    with rasterio.open(reference) as ref, rasterio.open(warped) as other:
        scale = max(1.0, max(ref.width, ref.height) / 512)
        shape = (max(1, round(ref.height / scale)), max(1, round(ref.width / scale)))
        both = (ref.dataset_mask(out_shape=shape) > 0) & (other.dataset_mask(out_shape=shape) > 0)
        transform = ref.transform @ Affine.scale(ref.width / shape[1], ref.height / shape[0])
    rows, cols = np.nonzero(both)
    if rows.size == 0:
        return box(0, 0, 0, 0)
    (left, top), (right, bottom) = (
        transform @ (cols.min(), rows.min()),
        transform @ (cols.max() + 1, rows.max() + 1),
    )
    return box(min(left, right), min(top, bottom), max(left, right), max(top, bottom))


def _patches(overlap: Polygon) -> list[Polygon]:
    """Up to ``PATCHES_PER_SIDE``² squares of ``PATCH_M`` spread over ``overlap``'s bounds,
    each cut to ``overlap``."""
    left, bottom, right, top = overlap.bounds
    half = PATCH_M / 2
    patches = []
    for fx in _fractions(right - left):
        for fy in _fractions(top - bottom):
            x, y = left + fx * (right - left), bottom + fy * (top - bottom)
            patch = box(x - half, y - half, x + half, y + half).intersection(overlap)
            if patch.area > 0:
                patches.append(patch)
    return patches or [overlap]


def _fractions(extent_m: float) -> list[float]:
    """Where patch centres go along a side of ``extent_m``, as fractions of it."""
    count = max(1, min(PATCHES_PER_SIDE, math.ceil(extent_m / PATCH_M)))
    return [(k + 0.5) / count for k in range(count)]


def _windows(width: int, height: int) -> Iterator[Window]:
    for row in range(0, height, BLOCK_PX):
        for col in range(0, width, BLOCK_PX):
            yield Window(col, row, min(BLOCK_PX, width - col), min(BLOCK_PX, height - row))
