"""Tree crowns in a canopy mask: peaks of the distance to the canopy edge, a marker
watershed between them, and the measures that tell a crown from a weed patch.

Pure array kernels, in pixels of one window; :mod:`models.trees` reads the windows.
A crown is a peak of the (smoothed) distance to the canopy edge, at least one smallest-crown
diameter from a higher peak, between half the smallest and a little over the largest crown
radius deep. Touching crowns are split by flooding that distance from the peaks down, so
basins meet along the necks, and each crown is cut to the largest crown's radius around its
peak. A crown is kept when its equal-area diameter is in range, it is round (largest
inscribed disc close to its equal-area disc) and it is greener than the ground around it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from affine import Affine
from rasterio.features import shapes
from scipy import ndimage
from scipy.spatial import cKDTree
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

CROWN_DIAMETER_M = (1.5, 6.0)
PEAK_SMOOTHING = 0.25
"""Gaussian sigma of the distance surface, as a fraction of the smallest crown radius."""
MIN_PEAK_FRACTION = 0.5
"""A peak lies at least this fraction of the smallest crown radius inside the canopy."""
WIDE_CANOPY_FACTOR = 1.1
"""A peak farther than this times the largest crown radius from the canopy edge is no tree."""
WEED_FRACTION = 0.25
"""Canopy thinner than this fraction of the smallest crown diameter is opened away."""
HOLE_FRACTION = 0.25
"""Holes narrower than this fraction of the smallest crown diameter (fruit) are closed."""
FLOOD_STEP_PX = 1.0
"""Depth of one flooding level of the watershed, in pixels of distance."""
RING_M = 0.5
"""Width of the ground ring a crown's greenness is compared with."""
MIN_ROUNDNESS = 0.75
"""Largest inscribed disc over the disc of equal area: ~0.95 for a crown, 1 for a disc, ~0.7
for the ragged weed and grass patches a canopy mask also holds."""


def segment_crowns(
    canopy: np.ndarray, gsd_m: float, crown_diameter_m: tuple[float, float] = CROWN_DIAMETER_M
) -> tuple[np.ndarray, np.ndarray]:
    """Crown labels (int32, 0 = none, k = the crown of peak k - 1) of a boolean canopy mask at
    ``gsd_m``, and the peaks as (row, col) pixel positions."""
    low_px, high_px = (d / gsd_m for d in crown_diameter_m)
    mask = _cleaned(canopy, low_px)
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    sigma_px = PEAK_SMOOTHING * low_px / 2
    surface = cv2.GaussianBlur(distance, (0, 0), sigma_px) if sigma_px >= 0.5 else distance
    peaks = _peaks(surface, mask, low_px, high_px)
    seeds = np.zeros(mask.shape, np.uint8)
    seeds[peaks[:, 0], peaks[:, 1]] = 1
    reach = cv2.dilate(seeds, _disc(math.ceil(high_px / 2))) > 0
    labels = watershed(surface, mask & reach, peaks)
    return _within_reach(labels, peaks, high_px / 2), peaks


def watershed(surface: np.ndarray, mask: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Marker watershed of ``surface`` (flooded from its highest values down) inside ``mask``:
    int32 labels, k for the basin of ``peaks[k - 1]``, 0 outside every basin.

    A canopy component holding one peak is that peak's basin; components holding several
    are flooded level by level (steps of ``FLOOD_STEP_PX``) by geodesic dilation, so basins
    meet along the necks between crowns. Components without a peak stay 0.
    """
    components, _ = ndimage.label(mask)
    at_peak = components[peaks[:, 0], peaks[:, 1]]
    counts = np.bincount(at_peak, minlength=components.max() + 1)
    owner = np.zeros(counts.size, np.int32)
    single = counts[at_peak] == 1
    owner[at_peak[single]] = np.nonzero(single)[0] + 1
    labels = owner[components]
    boxes = ndimage.find_objects(components)
    for component in np.nonzero(counts[1:] > 1)[0] + 1:
        where = boxes[component - 1]
        inside = components[where] == component
        seeds = np.zeros(inside.shape, np.float32)
        mine = np.nonzero(at_peak == component)[0]
        seeds[peaks[mine, 0] - where[0].start, peaks[mine, 1] - where[1].start] = mine + 1
        labels[where][inside] = _flood(surface[where], inside, seeds)[inside]
    return labels


def _flood(surface: np.ndarray, inside: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Seeds grown over ``inside``, highest ``surface`` first (see :func:`watershed`)."""
    labels = seeds.copy()
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    top = float(surface[inside].max())
    for level in np.arange(top, float(surface[inside].min()) - FLOOD_STEP_PX, -FLOOD_STEP_PX):
        allowed = inside & (surface >= level)
        while True:
            grown = cv2.dilate(labels, cross)
            new = allowed & (labels == 0) & (grown > 0)
            if not new.any():
                break
            labels[new] = grown[new]
    return labels.astype(np.int32)


def _cleaned(canopy: np.ndarray, low_px: float) -> np.ndarray:
    """Canopy with fruit-sized holes closed and weed-thin parts opened away."""
    mask = canopy.astype(np.uint8)
    close_px = max(1, round(HOLE_FRACTION * low_px / 2))
    open_px = max(1, round(WEED_FRACTION * low_px / 2))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _disc(close_px))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _disc(open_px))
    return mask.astype(bool)


def _disc(radius_px: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius_px + 1, 2 * radius_px + 1))


def _peaks(surface: np.ndarray, mask: np.ndarray, low_px: float, high_px: float) -> np.ndarray:
    """(row, col) of local maxima at least ``low_px`` apart, highest first kept."""
    reach = max(1, round(low_px / 2))
    top = cv2.dilate(surface, _disc(reach))
    candidate = (
        mask
        & (surface >= top)
        & (surface >= MIN_PEAK_FRACTION * low_px / 2)
        & (surface <= WIDE_CANOPY_FACTOR * high_px / 2)
    )
    rows, cols = np.nonzero(candidate)
    if rows.size == 0:
        return np.zeros((0, 2), np.int64)
    order = np.lexsort((cols, rows, -surface[rows, cols]))
    points = np.column_stack([rows, cols])[order]
    index = cKDTree(points)
    taken = np.zeros(len(points), bool)
    kept = []
    for k in range(len(points)):
        if taken[k]:
            continue
        kept.append(k)
        taken[index.query_ball_point(points[k], low_px - 1e-6)] = True
    return points[kept]


def _within_reach(labels: np.ndarray, peaks: np.ndarray, radius_px: float) -> np.ndarray:
    """Labels cut to the disc of ``radius_px`` around their own peak."""
    rows, cols = np.nonzero(labels)
    owner = labels[rows, cols] - 1
    far = (rows - peaks[owner, 0]) ** 2 + (cols - peaks[owner, 1]) ** 2 > radius_px**2
    labels[rows[far], cols[far]] = 0
    return labels


def measure_crowns(
    labels: np.ndarray,
    peaks: np.ndarray,
    green: np.ndarray,
    inner: tuple[slice, slice],
    transform: Affine,
    crown_diameter_m: tuple[float, float],
    min_contrast: float,
) -> list[dict]:
    """One row per crown whose peak lies in the window's ``inner`` part and that is in the
    diameter range, round enough and greener than the ground around it by ``min_contrast``."""
    in_rows = (peaks[:, 0] >= inner[0].start) & (peaks[:, 0] < inner[0].stop)
    in_cols = (peaks[:, 1] >= inner[1].start) & (peaks[:, 1] < inner[1].stop)
    owned = np.nonzero(in_rows & in_cols)[0] + 1
    if owned.size == 0:
        return []
    gsd_m = math.sqrt(abs(transform.determinant))
    size = int(labels.max()) + 1
    rows, cols = np.nonzero(labels)
    area_px = np.bincount(labels[rows, cols], minlength=size)
    row, col, mean_green = (
        np.bincount(labels[rows, cols], weights, size) / np.maximum(area_px, 1)
        for weights in (rows, cols, np.nan_to_num(green[rows, cols]))
    )
    diameter_m = 2 * np.sqrt(area_px / math.pi) * gsd_m
    roundness = _inscribed_radius_px(labels) * gsd_m / np.maximum(diameter_m / 2, gsd_m)
    contrast = mean_green - _ring_green(labels, green, max(2, round(RING_M / gsd_m)))
    low_m, high_m = crown_diameter_m
    good = (
        (diameter_m >= low_m)
        & (diameter_m <= high_m)
        & (roundness >= MIN_ROUNDNESS)
        & (contrast >= min_contrast)
    )
    kept = owned[good[owned]]
    outlines: dict[int, BaseGeometry] = {}
    for geom, value in shapes(
        labels, mask=np.isin(labels, kept), connectivity=8, transform=transform
    ):
        polygon, label = shape(geom), int(value)
        if label not in outlines or polygon.area > outlines[label].area:
            outlines[label] = polygon
    rows = []
    for label in kept:
        x, y = transform @ (col[label] + 0.5, row[label] + 0.5)
        rows.append(
            {
                "crown_diameter_m": float(diameter_m[label]),
                "roundness": float(roundness[label]),
                "mean_index": float(mean_green[label]),
                "centre_x": x,
                "centre_y": y,
                "geometry": outlines[int(label)],
            }
        )
    return rows


def _ring_green(labels: np.ndarray, green: np.ndarray, ring_px: int) -> np.ndarray:
    """Mean greenness, per label, of a ring ``ring_px`` wide around the crown (other crowns and
    nodata left out); -inf for a crown with no ground visible around it, which stands out by
    definition."""
    around = cv2.dilate(labels.astype(np.float32), _disc(ring_px)).astype(np.int32)
    around[(labels > 0) | ~np.isfinite(green)] = 0
    rows, cols = np.nonzero(around)
    size = int(labels.max()) + 1
    count = np.bincount(around[rows, cols], minlength=size)
    total = np.bincount(around[rows, cols], green[rows, cols], size)
    return np.divide(total, count, out=np.full(size, -np.inf), where=count > 0)


def _inscribed_radius_px(labels: np.ndarray) -> np.ndarray:
    """Radius of the largest disc inside each crown, indexed by label (crowns end where labels
    change)."""
    padded = np.pad(labels, 1)
    core = padded[1:-1, 1:-1]
    same = (
        (core == padded[:-2, 1:-1])
        & (core == padded[2:, 1:-1])
        & (core == padded[1:-1, :-2])
        & (core == padded[1:-1, 2:])
    )
    inside = ((labels > 0) & same).astype(np.uint8)
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    largest = np.zeros(int(labels.max()) + 1, np.float32)
    np.maximum.at(largest, labels[inside > 0], distance[inside > 0])
    return largest + 0.5
