"""Co-registration of overlapping frames: refine GNSS positions and yaws so frames agree.

GNSS noise (decimetres to a metre) and gimbal-yaw noise (a degree or two) misplace each
frame independently, which shows as doubled edges in a mosaic. SIFT features matched between
overlapping frames (ratio test, RANSAC similarity) give tie points on the ground; a sparse
least-squares adjustment (Gauss-Newton) finds a small shift and rotation per frame that
brings the tie points together, with the mean shift kept at zero, so the flight's absolute
GNSS placement is kept: tie points cannot see a bias common to the whole flight, only a
georeferenced ``reference`` raster (or ground control) can.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import WindowError
from rasterio.io import DatasetReader
from rasterio.windows import Window, from_bounds
from rasterio.windows import transform as window_transform
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve

from core.types import ImageRecord
from pipeline.footprint import (
    decode_factor,
    footprint,
    frame_to_ground,
    lonlat_to_crs,
    overlapping_pairs,
)

MATCH_GSD_M = 0.2
"""Frames are matched at about this ground resolution (decoded at 1/2, 1/4 or 1/8)."""
MIN_OVERLAP = 0.25
"""Pairs of frames sharing less than this share of a footprint are not matched."""
MAX_OFFSET_M = 6.0
"""Tie points further apart than this on the ground (before adjustment) are rejected."""
MIN_INLIERS = 12
MAX_TIES_PER_PAIR = 200
TIE_SIGMA_M = MATCH_GSD_M
"""Expected error of one tie point on the ground."""
PRIOR_SHIFT_M = 1.0
PRIOR_ROTATION_DEG = 3.0
"""Expected size of the corrections (GNSS noise, gimbal-yaw noise): their weak priors."""
GAUGE_WEIGHT = 10.0
"""Weight of the rows that keep the mean shift at zero."""
_MIN_MATCH_PX = 64
"""A reference window smaller than this (px, either side) gives no features."""
_SIFT_FEATURES = 2000
_SIFT_CONTRAST = 0.02
"""Half OpenCV's default: smooth fields and orchards still give features."""
_GAUSS_NEWTON_STEPS = 3
_SIFT_BIAS_PX = 0.25
"""OpenCV's SIFT places keypoints a quarter pixel down-right of where they are (its first
octave is the image upsampled 2x); measured by matching an image with its 180 deg turn."""
_RATIO = 0.8
"""Lowe's ratio test: best match clearly better than the second best."""
_DECODE_FLAGS = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}


@dataclass(frozen=True)
class Correction:
    """A frame's adjustment: ground shift (m) and counter-clockwise rotation about its centre."""

    shift_east_m: float
    shift_north_m: float
    rotation_deg: float


def coregister(
    records: Sequence[ImageRecord], crs: str, *, reference: Path | None = None
) -> tuple[ImageRecord, ...]:
    """The records with positions and yaws adjusted so overlapping frames agree.

    With a ``reference`` raster in ``crs`` (e.g. an earlier epoch's mosaic), frames are also
    tied to it, so the whole flight lands on the reference instead of on its GNSS average.
    Frames without enough tie points keep (nearly) their GNSS pose.
    """
    corrections = frame_corrections(records, crs, reference=reference)
    return tuple(_corrected(r, c, crs) for r, c in zip(records, corrections, strict=True))


def frame_corrections(
    records: Sequence[ImageRecord], crs: str, *, reference: Path | None = None
) -> list[Correction]:
    """Per-frame corrections from tie points between overlapping frames (and the reference)."""
    count = len(records)
    if count == 0 or (count < 2 and reference is None):
        return [Correction(0.0, 0.0, 0.0)] * count
    features = [_features(record, crs) for record in records]
    centres = np.array([f.centre for f in features])
    shapes = [footprint(record, crs) for record in records]
    pairs = [(i, j, features[j]) for i, j in overlapping_pairs(shapes, MIN_OVERLAP)]
    if reference is not None:  # the reference is frame ``count``, held fixed
        with rasterio.open(reference) as src:
            pairs += [
                (i, count, _reference_features(src, shape.bounds)) for i, shape in enumerate(shapes)
            ]
        centres = np.vstack((centres, centres.mean(axis=0)))
    ties = [
        (i, j, points_i, points_j)
        for i, j, other in pairs
        for points_i, points_j in [_tie_points(features[i], other)]
        if len(points_i) >= MIN_INLIERS
    ]
    solution = _adjust(ties, centres, count, fixed_reference=reference is not None)
    return [
        Correction(float(dx), float(dy), math.degrees(float(theta)))
        for dx, dy, theta in solution[: 3 * count].reshape(count, 3)
    ]


@dataclass(frozen=True)
class _Features:
    centre: tuple[float, float]
    ground_xy: np.ndarray  # (n, 2) keypoints on the ground, in the working CRS
    descriptors: np.ndarray | None


def _features(record: ImageRecord, crs: str) -> _Features:
    factor = decode_factor(record, MATCH_GSD_M)
    image = cv2.imread(str(record.path), _DECODE_FLAGS[factor])
    to_ground = frame_to_ground(record, crs)
    centre = to_ground @ (record.width_px / 2, record.height_px / 2)
    if image is None:
        return _Features(centre, np.empty((0, 2)), None)
    pixels, descriptors = _detect(image)
    pixels = (pixels + 0.5) * factor  # keypoint centre -> full-frame corner-based coordinates
    return _Features(centre, _apply(to_ground, pixels), descriptors)


def _detect(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """SIFT keypoints (n, 2; pixel centres at integers) and descriptors of a grey image."""
    sift = cv2.SIFT_create(_SIFT_FEATURES, contrastThreshold=_SIFT_CONTRAST)
    keypoints, descriptors = sift.detectAndCompute(image, None)
    pixels = np.array([kp.pt for kp in keypoints], dtype=np.float64).reshape(-1, 2)
    return pixels - _SIFT_BIAS_PX, descriptors


def _reference_features(src: DatasetReader, bounds: tuple[float, ...]) -> _Features:
    """Features of the open reference raster under ``bounds`` (widened by the prior offset)."""
    left, bottom, right, top = bounds
    margin = MAX_OFFSET_M
    window = from_bounds(
        left - margin, bottom - margin, right + margin, top + margin, transform=src.transform
    )
    try:
        window = window.intersection(Window(0, 0, src.width, src.height))
    except WindowError:
        return _Features((left, top), np.empty((0, 2)), None)
    scale = max(1.0, MATCH_GSD_M / abs(src.transform.a))
    shape = (max(1, round(window.height / scale)), max(1, round(window.width / scale)))
    bands = src.read(
        indexes=[1, 2, 3] if src.count >= 3 else [1],
        window=window,
        out_shape=(3 if src.count >= 3 else 1, *shape),
        resampling=Resampling.average,
    )
    to_ground = window_transform(window, src.transform) @ Affine.scale(
        window.width / shape[1], window.height / shape[0]
    )
    if min(shape) < _MIN_MATCH_PX:  # a sliver of overlap: the feature pyramid needs room
        return _Features((left, top), np.empty((0, 2)), None)
    image = (
        cv2.cvtColor(np.ascontiguousarray(bands.transpose(1, 2, 0)), cv2.COLOR_RGB2GRAY)
        if len(bands) == 3
        else bands[0]
    )
    pixels, descriptors = _detect(image.astype(np.uint8))
    pixels = pixels + 0.5
    centre = to_ground @ (shape[1] / 2, shape[0] / 2)
    return _Features(centre, _apply(to_ground, pixels), descriptors)


def _apply(transform: Affine, pixels: np.ndarray) -> np.ndarray:
    """``transform`` applied to (n, 2) pixel coordinates."""
    a, b, c, d, e, f = transform[:6]
    return np.column_stack(
        (a * pixels[:, 0] + b * pixels[:, 1] + c, d * pixels[:, 0] + e * pixels[:, 1] + f)
    )


def _tie_points(first: _Features, second: _Features) -> tuple[np.ndarray, np.ndarray]:
    """Ground positions (per each frame's current pose) of features seen in both frames."""
    empty = (np.empty((0, 2)), np.empty((0, 2)))
    if first.descriptors is None or second.descriptors is None:
        return empty
    overlap = _overlap_bounds(first.ground_xy, second.ground_xy)
    in_a, in_b = _inside(first.ground_xy, overlap), _inside(second.ground_xy, overlap)
    if in_a.size < MIN_INLIERS or in_b.size < MIN_INLIERS:
        return empty
    candidates = cv2.BFMatcher(cv2.NORM_L2).knnMatch(
        first.descriptors[in_a], second.descriptors[in_b], k=2
    )
    matches = [
        pair[0]
        for pair in candidates
        if len(pair) == 2 and pair[0].distance < _RATIO * pair[1].distance
    ]
    if len(matches) < MIN_INLIERS:
        return empty
    points_a = first.ground_xy[in_a[[m.queryIdx for m in matches]]]
    points_b = second.ground_xy[in_b[[m.trainIdx for m in matches]]]
    near = np.hypot(*(points_a - points_b).T) < MAX_OFFSET_M
    if near.sum() < MIN_INLIERS:
        return empty
    points_a, points_b = points_a[near], points_b[near]
    _, inliers = cv2.estimateAffinePartial2D(
        points_a - first.centre,
        points_b - first.centre,
        method=cv2.RANSAC,
        ransacReprojThreshold=2.0 * MATCH_GSD_M,
    )
    if inliers is None:
        return empty
    keep = inliers.ravel().astype(bool)
    return points_a[keep], points_b[keep]


def _overlap_bounds(points_a: np.ndarray, points_b: np.ndarray) -> np.ndarray:
    """Bounds (min_x, min_y, max_x, max_y) shared by two point sets, widened by the prior."""
    low = np.maximum(points_a.min(axis=0), points_b.min(axis=0)) - MAX_OFFSET_M
    high = np.minimum(points_a.max(axis=0), points_b.max(axis=0)) + MAX_OFFSET_M
    return np.concatenate((low, high))


def _inside(points: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Indices of the points within ``bounds``."""
    inside = (points >= bounds[:2]).all(axis=1) & (points <= bounds[2:]).all(axis=1)
    return np.flatnonzero(inside)


def _adjust(
    ties: list[tuple[int, int, np.ndarray, np.ndarray]],
    centres: np.ndarray,
    count: int,
    *,
    fixed_reference: bool = False,
) -> np.ndarray:
    """Least-squares (shift_e, shift_n, rotation_rad) per frame (Gauss-Newton).

    A corrected point is c + t + R(theta) (p - c). Each tie asks its two corrected points to
    coincide. Weak priors keep every correction small (and so let the GNSS positions, not the
    noisier gimbal yaws, set the block's rotation); two gauge rows keep the mean shift at
    zero. With ``fixed_reference``, frame ``count`` is the reference: held in place, it
    replaces the gauge. Each step is linearised for small angles, then the tie points are
    moved by the corrections so far and the next step refines them.
    """
    frames = count + 1 if fixed_reference else count
    ties = [(i, j, a[:: max(1, len(a) // MAX_TIES_PER_PAIR)], b) for i, j, a, b in ties]
    ties = [(i, j, a, b[:: max(1, len(b) // MAX_TIES_PER_PAIR)]) for i, j, a, b in ties]
    solution = np.zeros(3 * frames)
    for _ in range(_GAUSS_NEWTON_STEPS):
        corrections = solution.reshape(frames, 3)
        moved = [
            (i, j, _moved(a, centres[i], corrections[i]), _moved(b, centres[j], corrections[j]))
            for i, j, a, b in ties
        ]
        solution = solution + _adjust_step(
            moved, centres + corrections[:, :2], solution, count, fixed_reference
        )
    return solution


def _moved(points: np.ndarray, centre: np.ndarray, correction: np.ndarray) -> np.ndarray:
    """``points`` of a frame centred at ``centre`` after its (shift_e, shift_n, rotation)."""
    cos, sin = math.cos(correction[2]), math.sin(correction[2])
    relative = points - centre
    rotated = np.column_stack(
        (cos * relative[:, 0] - sin * relative[:, 1], sin * relative[:, 0] + cos * relative[:, 1])
    )
    return centre + correction[:2] + rotated


def _adjust_step(
    ties: list[tuple[int, int, np.ndarray, np.ndarray]],
    centres: np.ndarray,
    solution: np.ndarray,
    count: int,
    fixed_reference: bool,
) -> np.ndarray:
    """One linearised step: the change of ``solution`` that best closes the ``ties``
    (p + dt + dtheta * perp(p - c), perp(x, y) = (-y, x)) under the priors and gauge."""
    frames = len(solution) // 3
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (columns, coefficients, rhs)
    for i, j, points_i, points_j in ties:
        rel_i, rel_j = points_i - centres[i], points_j - centres[j]
        n = len(points_i)
        ones = np.ones(n)
        x_cols = np.tile([3 * i, 3 * i + 2, 3 * j, 3 * j + 2], (n, 1))
        x_coef = np.column_stack((ones, -rel_i[:, 1], -ones, rel_j[:, 1]))
        y_cols = np.tile([3 * i + 1, 3 * i + 2, 3 * j + 1, 3 * j + 2], (n, 1))
        y_coef = np.column_stack((ones, rel_i[:, 0], -ones, -rel_j[:, 0]))
        blocks.append((x_cols, x_coef, points_j[:, 0] - points_i[:, 0]))
        blocks.append((y_cols, y_coef, points_j[:, 1] - points_i[:, 1]))
    prior = np.array([PRIOR_SHIFT_M, PRIOR_SHIFT_M, math.radians(PRIOR_ROTATION_DEG)])
    unknowns = np.arange(3 * frames)
    rows = [np.repeat(np.arange(sum(len(b[2]) for b in blocks)), 4)] if blocks else []
    cols = [b[0].ravel() for b in blocks]
    coefs = [b[1].ravel() for b in blocks]
    rhs = [b[2] for b in blocks]
    first_row = sum(len(r) for r in rhs)
    rows.append(first_row + unknowns)
    cols.append(unknowns)
    weights = TIE_SIGMA_M / np.tile(prior, frames)
    if fixed_reference:
        weights[3 * count :] = GAUGE_WEIGHT * 1e3
    coefs.append(weights)
    rhs.append(-weights * solution)  # the priors hold the total correction, not the step
    shifts = unknowns[unknowns % 3 < 2] if not fixed_reference else unknowns[:0]
    rows.append(first_row + 3 * frames + shifts % 3)
    cols.append(shifts)
    gauge_weight = GAUGE_WEIGHT / PRIOR_SHIFT_M
    coefs.append(np.full(len(shifts), gauge_weight))
    total_shift = solution.reshape(frames, 3)[:, :2].sum(axis=0)
    rhs.append(-gauge_weight * total_shift if len(shifts) else np.zeros(2))
    matrix = coo_matrix(
        (np.concatenate(coefs), (np.concatenate(rows), np.concatenate(cols))),
        shape=(first_row + 3 * frames + 2, 3 * frames),
    ).tocsr()
    # Normal equations solved directly: the block's rotation is pinned only by the weak
    # priors, a direction iterative solvers (lsqr) are slow to converge along.
    normal = (matrix.T @ matrix).tocsc()
    return spsolve(normal, matrix.T @ np.concatenate(rhs))


def _corrected(record: ImageRecord, correction: Correction, crs: str) -> ImageRecord:
    if correction == Correction(0.0, 0.0, 0.0):
        return record
    to_crs = lonlat_to_crs(crs)
    east_m, north_m = to_crs.transform(record.lon_deg, record.lat_deg)
    lon, lat = to_crs.transform(
        east_m + correction.shift_east_m,
        north_m + correction.shift_north_m,
        direction="INVERSE",
    )
    return dataclasses.replace(
        record, lon_deg=lon, lat_deg=lat, yaw_deg=record.yaw_deg - correction.rotation_deg
    )
