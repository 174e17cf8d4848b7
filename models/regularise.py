"""Footprint regularisation: roofs are rectangles or right-angled outlines, not pixel stairs."""

from __future__ import annotations

import math

import cv2
import numpy as np
import shapely
from rasterio import features as rio_features
from rasterio.transform import from_origin
from shapely import affinity
from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry

RECTANGLE_FILL = 0.85
"""A blob filling this share of its minimum rotated rectangle is that rectangle."""
RECTILINEAR_IOU = 0.85
"""A right-angled outline replaces a blob only when it keeps this IoU with it."""
RECTILINEAR_CELL_M = 0.25
RECTILINEAR_SMOOTH_M = 1.0
"""Steps and notches smaller than this are smoothed out of a right-angled outline."""
SIMPLIFY_M = 0.3


def regularise_footprint(blob: BaseGeometry) -> BaseGeometry:
    """``blob`` as its minimum rotated rectangle when it nearly fills it, else as a right-angled
    outline along that rectangle's axes (:func:`rectilinear_outline`) when that fits it, else
    simplified (round or skewed structures, blobs merged over a block seam)."""
    rectangle = blob.minimum_rotated_rectangle
    if rectangle.area > 0 and blob.area / rectangle.area >= RECTANGLE_FILL:
        return rectangle
    if isinstance(blob, Polygon) and rectangle.area > 0:
        outline = rectilinear_outline(blob, rectangle)
        if outline is not None and _iou(outline, blob) >= RECTILINEAR_IOU:
            return outline
    return blob.simplify(SIMPLIFY_M, preserve_topology=True)


def rectilinear_outline(
    blob: Polygon,
    rectangle: BaseGeometry,
    *,
    cell_m: float = RECTILINEAR_CELL_M,
    smooth_m: float = RECTILINEAR_SMOOTH_M,
) -> Polygon | None:
    """The largest right-angled polygon approximating ``blob``, its edges parallel to those of
    ``rectangle`` (the blob's minimum rotated rectangle): the blob is turned upright, rasterised
    on a ``cell_m`` grid, opened and closed by ``smooth_m`` and traced back; None when nothing
    is left."""
    (x0, y0), (x1, y1) = list(rectangle.exterior.coords)[:2]
    angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
    origin = blob.centroid
    upright = affinity.rotate(blob, -angle, origin=origin)
    size = 2 * round(smooth_m / cell_m / 2) + 1
    pad = size  # room for the closing to grow and shrink back inside the grid
    minx, miny, maxx, maxy = upright.bounds
    shape_px = (
        math.ceil((maxy - miny) / cell_m) + 2 * pad,
        math.ceil((maxx - minx) / cell_m) + 2 * pad,
    )
    transform = from_origin(minx - pad * cell_m, maxy + pad * cell_m, cell_m, cell_m)
    mask = rio_features.rasterize(
        [(upright, 1)], out_shape=shape_px, transform=transform, dtype="uint8"
    )
    kernel = np.ones((size, size), np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    parts = [
        shape(geojson)
        for geojson, _ in rio_features.shapes(
            mask, mask=mask > 0, connectivity=4, transform=transform
        )
    ]
    if not parts:
        return None
    largest = max(parts, key=lambda part: part.area)
    snapped = _snap_walls(list(largest.exterior.coords)[:-1], smooth_m)
    if snapped is None:
        return None
    return affinity.rotate(snapped, angle, origin=origin)


def _snap_walls(corners: list[tuple[float, float]], within_m: float) -> Polygon | None:
    """The axis-parallel polygon of ``corners`` with its walls less than ``within_m`` apart
    moved onto the longest of them: the one-cell jogs a slightly tilted wall leaves vanish."""
    if len(corners) < 4:
        return None
    walls: dict[int, dict[float, float]] = {0: {}, 1: {}}  # axis -> position -> wall length
    for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1], strict=True):
        axis, position, length = (0, ax, abs(by - ay)) if ax == bx else (1, ay, abs(bx - ax))
        walls[axis][position] = walls[axis].get(position, 0.0) + length
    moved = [_cluster_onto_longest(walls[axis], within_m) for axis in (0, 1)]
    snapped = [(moved[0][x], moved[1][y]) for x, y in corners]
    outline = shapely.make_valid(Polygon(snapped).simplify(0))
    polygons = [g for g in getattr(outline, "geoms", [outline]) if isinstance(g, Polygon)]
    return max(polygons, key=lambda g: g.area) if polygons else None


def _cluster_onto_longest(lengths: dict[float, float], within_m: float) -> dict[float, float]:
    """Each wall position mapped onto the longest wall of its run of positions closer than
    ``within_m`` to the next."""
    positions = sorted(lengths)
    mapping: dict[float, float] = {}
    run: list[float] = []
    for position in positions + [math.inf]:
        if run and position - run[-1] >= within_m:
            target = max(run, key=lambda p: lengths[p])
            mapping.update(dict.fromkeys(run, target))
            run = []
        run.append(position)
    return mapping


def _iou(a: BaseGeometry, b: BaseGeometry) -> float:
    union = a.union(b).area
    return a.intersection(b).area / union if union > 0 else 0.0
