"""Co-registration of overlapping frames: refine GNSS poses so frames agree.

GNSS noise (decimetres to a metre), gimbal-yaw noise (a degree or two) and height errors (a
few decimetres: a frame's ground scale) misplace each frame on its own, which shows as
doubled edges in a mosaic. SIFT features of overlapping frames, matched only against
features near them on the ground (ratio test, RANSAC similarity), give tie points; a sparse
least-squares adjustment (Gauss-Newton) finds a small shift, rotation and scale per frame
that brings them together. Tie points cannot see an error the whole flight shares: the
block keeps the GNSS positions' mean, and its rotation and scale weigh the GNSS positions
against the yaws and heights. A georeferenced ``reference`` raster (an earlier epoch's
mosaic, an orthophoto) takes part as one more frame, free to shift and, as far as ties spread
over the block show it, to turn and scale; the block is then carried onto it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine
from rasterio.io import DatasetReader
from rasterio.windows import Window, from_bounds
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform
from scipy.sparse import coo_matrix, csc_matrix
from scipy.sparse.linalg import splu
from scipy.spatial import cKDTree
from shapely import box, union_all
from shapely.geometry import Polygon

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
"""Features further apart on the ground than this (before adjustment) are never matched:
the largest error between two frames, or between a frame and the reference."""
MIN_INLIERS = 12
MAX_TIES_PER_PAIR = 200
MAX_PAIR_ROTATION_DEG = 10.0
MAX_PAIR_SCALE_ERROR = 0.05
"""A pair whose RANSAC similarity turns or scales more than this is a false match (the
repeated rows of an orchard, a field that changed between seasons)."""
TIE_SIGMA_M = MATCH_GSD_M
"""Expected error of one tie point on the ground."""
PRIOR_SHIFT_M = 1.0
PRIOR_ROTATION_DEG = 3.0
PRIOR_SCALE = 0.02
"""Expected size of the corrections (GNSS noise, gimbal-yaw noise, height error over the
height): their weak priors."""
REFERENCE_EDGE_M = 0.2
"""Prior size of the reference's turn and scale, as the move they give the block's edge (its
RMS radius): one tie point's error. A georeferenced raster is turned and scaled little, and
only ties spread over the block can show it; a few ties in one corner (the one frame of 3,740
matched across seasons) turned a 1 km block by 0.45 deg when the reference's turn was free."""
GAUGE_WEIGHT = 10.0
"""Weight of the rows that keep the block's mean shift at zero."""
REFERENCE_TILE_PX = 1024
"""The reference is read and its features detected in tiles of this size (at MATCH_GSD_M)."""
_TILE_HALO_PX = 64
"""Margin read around a tile so that features near its edge keep their whole neighbourhood."""
_MIN_MATCH_PX = 64
"""A reference tile smaller than this (px, either side) gives no features."""
_SIFT_FEATURES_PER_MPX = 3000
"""At most this many features per megapixel (at MATCH_GSD_M: 1,000 in a 660 x 495 px frame)."""
_SIFT_CONTRAST = 0.04
"""OpenCV's default. Half of it (more features on smooth fields) took 1.7x the time on the
simulator for 0.04 instead of 0.07 GSD relative error, with matching guided by place."""
_SIFT_BIAS_PX = 0.25
"""OpenCV's SIFT places keypoints a quarter pixel down-right of where they are (its first
octave is the image upsampled 2x); measured by matching an image with its 180 deg turn."""
_RATIO = 0.8
"""Lowe's ratio test among the candidates near a feature: best clearly better than second."""
_GAUSS_NEWTON_STEPS = 3
_DECODE_FLAGS = {
    1: cv2.IMREAD_GRAYSCALE,
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}


@dataclass(frozen=True)
class Correction:
    """A frame's adjustment about its centre: ground shift (m), counter-clockwise rotation
    and ground scale (its height above ground is multiplied by ``scale``)."""

    shift_east_m: float
    shift_north_m: float
    rotation_deg: float
    scale: float = 1.0


def coregister(
    records: Sequence[ImageRecord], crs: str, *, reference: Path | None = None
) -> tuple[ImageRecord, ...]:
    """The records with positions, yaws and heights adjusted so overlapping frames agree.

    With a ``reference`` raster in ``crs`` (e.g. an earlier epoch's mosaic), frames are also
    tied to it, so the whole flight lands on the reference instead of on its GNSS average.
    Frames without enough tie points keep (nearly) their GNSS pose, carried with the flight
    onto the reference if there is one.
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
    features = [_frame_features(record, crs) for record in records]
    centres = np.array([f.centre for f in features])
    shapes = [footprint(record, crs) for record in records]
    pairs = [(i, j, features[j]) for i, j in overlapping_pairs(shapes, MIN_OVERLAP)]
    if reference is not None:  # the reference is frame ``count``, centred on the block
        on_reference = reference_features(reference, shapes)
        pairs += [(i, count, on_reference) for i in range(count)]
        centres = np.vstack((centres, centres.mean(axis=0)))
    ties = [
        (i, j, points_i, points_j)
        for i, j, other in pairs
        for points_i, points_j in [tie_points(features[i], other)]
        if len(points_i) >= MIN_INLIERS
    ]
    solution = _adjust(ties, centres, count, with_reference=reference is not None)
    return [
        Correction(float(dx), float(dy), math.degrees(float(theta)), 1.0 + float(stretch))
        for dx, dy, theta, stretch in solution
    ]


@dataclass(frozen=True)
class ImageFeatures:
    centre: tuple[float, float]
    ground_xy: np.ndarray  # (n, 2) keypoints on the ground, in the working CRS
    descriptors: np.ndarray | None

    @cached_property
    def tree(self) -> cKDTree:
        return cKDTree(self.ground_xy)


def _frame_features(record: ImageRecord, crs: str) -> ImageFeatures:
    factor = decode_factor(record, MATCH_GSD_M)
    image = cv2.imread(str(record.path), _DECODE_FLAGS[factor])
    to_ground = frame_to_ground(record, crs)
    centre = to_ground @ (record.width_px / 2, record.height_px / 2)
    if image is None:
        return ImageFeatures(centre, np.empty((0, 2)), None)
    pixels, descriptors = _detect(image)
    pixels = (pixels + 0.5) * factor  # keypoint centre -> full-frame corner-based coordinates
    return ImageFeatures(centre, _apply(to_ground, pixels), descriptors)


def _detect(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """SIFT keypoints (n, 2; pixel centres at integers) and descriptors of a grey image."""
    most = max(1, round(_SIFT_FEATURES_PER_MPX * image.size / 1e6))
    sift = cv2.SIFT_create(most, contrastThreshold=_SIFT_CONTRAST)
    keypoints, descriptors = sift.detectAndCompute(image, None)
    pixels = np.array([kp.pt for kp in keypoints], dtype=np.float64).reshape(-1, 2)
    return pixels - _SIFT_BIAS_PX, descriptors


def reference_features(path: Path, shapes: Sequence[Polygon]) -> ImageFeatures:
    """Features of the reference raster under the frames (widened by MAX_OFFSET_M), detected
    once, tile by tile."""
    wanted = union_all([box(*shape.bounds).buffer(MAX_OFFSET_M) for shape in shapes])
    centre = tuple(wanted.centroid.coords[0])
    parts = []
    with rasterio.open(path) as src:
        wanted = wanted.intersection(box(*src.bounds))
        if wanted.is_empty:
            return ImageFeatures(centre, np.empty((0, 2)), None)
        full = Window(0, 0, src.width, src.height)
        step = round(REFERENCE_TILE_PX * max(1.0, MATCH_GSD_M / abs(src.transform.a)))
        area = from_bounds(*wanted.bounds, transform=src.transform)
        area = area.round_offsets().round_lengths().intersection(full)
        for row in range(int(area.row_off), int(area.row_off + area.height), step):
            for col in range(int(area.col_off), int(area.col_off + area.width), step):
                core = Window(col, row, step, step)
                if box(*window_bounds(core, src.transform)).intersects(wanted):
                    parts.append(_tile_features(src, core.intersection(full)))
    found = [p for p in parts if p.descriptors is not None]
    if not found:
        return ImageFeatures(centre, np.empty((0, 2)), None)
    return ImageFeatures(
        centre,
        np.vstack([p.ground_xy for p in found]),
        np.vstack([p.descriptors for p in found]),
    )


def _tile_features(src: DatasetReader, core: Window) -> ImageFeatures:
    """Features of the reference whose keypoints lie in the ``core`` window."""
    scale = max(1.0, MATCH_GSD_M / abs(src.transform.a))
    halo = round(_TILE_HALO_PX * scale)
    window = Window(
        core.col_off - halo, core.row_off - halo, core.width + 2 * halo, core.height + 2 * halo
    ).intersection(Window(0, 0, src.width, src.height))
    shape = (max(1, round(window.height / scale)), max(1, round(window.width / scale)))
    empty = ImageFeatures((0.0, 0.0), np.empty((0, 2)), None)
    if min(shape) < _MIN_MATCH_PX:  # a sliver: the feature pyramid needs room
        return empty
    # Read at full resolution and averaged here: a COG's overviews may be nearest-neighbour
    # decimations, half a pixel off the full-resolution grid.
    bands = src.read(indexes=[1, 2, 3] if src.count >= 3 else [1], window=window)
    bands = [cv2.resize(band, shape[::-1], interpolation=cv2.INTER_AREA) for band in bands]
    image = cv2.cvtColor(np.dstack(bands), cv2.COLOR_RGB2GRAY) if len(bands) == 3 else bands[0]
    pixels, descriptors = _detect(image.astype(np.uint8))
    if descriptors is None:
        return empty
    to_window = Affine.scale(window.width / shape[1], window.height / shape[0])
    in_window = _apply(to_window, pixels + 0.5)  # corner-based, full-resolution pixels
    inside = (
        (in_window[:, 0] >= core.col_off - window.col_off)
        & (in_window[:, 0] < core.col_off - window.col_off + core.width)
        & (in_window[:, 1] >= core.row_off - window.row_off)
        & (in_window[:, 1] < core.row_off - window.row_off + core.height)
    )
    ground = _apply(window_transform(window, src.transform), in_window[inside])
    return ImageFeatures((0.0, 0.0), ground, descriptors[inside])


def _apply(transform: Affine, pixels: np.ndarray) -> np.ndarray:
    """``transform`` applied to (n, 2) pixel coordinates."""
    a, b, c, d, e, f = transform[:6]
    return np.column_stack(
        (a * pixels[:, 0] + b * pixels[:, 1] + c, d * pixels[:, 0] + e * pixels[:, 1] + f)
    )


def tie_points(first: ImageFeatures, second: ImageFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Ground positions (per each frame's current pose) of features seen in both frames."""
    empty = (np.empty((0, 2)), np.empty((0, 2)))
    if first.descriptors is None or second.descriptors is None:
        return empty
    index_a, index_b = _guided_matches(first, second)
    if len(index_a) < MIN_INLIERS:
        return empty
    points_a, points_b = first.ground_xy[index_a], second.ground_xy[index_b]
    model, inliers = cv2.estimateAffinePartial2D(
        points_a - first.centre,
        points_b - first.centre,
        method=cv2.RANSAC,
        ransacReprojThreshold=2.0 * MATCH_GSD_M,
    )
    if inliers is None or not _plausible(model):
        return empty
    keep = inliers.ravel().astype(bool)
    return points_a[keep], points_b[keep]


def _guided_matches(first: ImageFeatures, second: ImageFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Indices of features matched both ways among candidates at most MAX_OFFSET_M apart on
    the ground, each clearly closer in descriptor than its second candidate.

    Candidates limited by place make the ratio test work across seasons, where a ratio
    test against every feature of the other frame rejects nearly all matches."""
    near = first.tree.sparse_distance_matrix(second.tree, MAX_OFFSET_M, output_type="coo_matrix")
    a, b = near.row, near.col
    if len(a) == 0:
        return a, b
    difference = first.descriptors[a] - second.descriptors[b]
    distance = np.sqrt(np.einsum("ij,ij->i", difference, difference))
    both_ways = np.intersect1d(_clear_best(a, distance), _clear_best(b, distance))
    return a[both_ways], b[both_ways]


def _clear_best(keys: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """For each key, the index of its nearest candidate if it passes the ratio test."""
    order = np.lexsort((distance, keys))
    ordered = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    best = order[starts]
    alone = np.diff(np.append(starts, len(order))) == 1
    second = order[np.minimum(starts + 1, len(order) - 1)]
    return best[alone | (distance[best] < _RATIO * distance[second])]


def _plausible(model: np.ndarray | None) -> bool:
    """Whether a pair's RANSAC similarity is a small turn and scale, as pose errors are."""
    if model is None:
        return False
    scale = math.sqrt(abs(float(np.linalg.det(model[:, :2]))))
    rotation_deg = math.degrees(math.atan2(model[1, 0], model[0, 0]))
    return abs(scale - 1.0) < MAX_PAIR_SCALE_ERROR and abs(rotation_deg) < MAX_PAIR_ROTATION_DEG


def _adjust(
    ties: list[tuple[int, int, np.ndarray, np.ndarray]],
    centres: np.ndarray,
    count: int,
    *,
    with_reference: bool = False,
) -> np.ndarray:
    """Least-squares (shift_e, shift_n, rotation_rad, scale - 1) per frame (Gauss-Newton).

    A corrected point is c + t + (1 + s) R(theta) (p - c). Each tie asks its two corrected
    points to coincide. Weak priors keep every correction small (and so let the GNSS
    positions, against the gimbal yaws and heights, set the block's rotation and scale);
    two gauge rows keep the mean shift at zero. With ``with_reference``, frame ``count`` is
    the reference, free to move (and to turn and scale, see REFERENCE_EDGE_M): the frames
    are then carried by the inverse of its correction. Each step is linearised, then the tie
    points are moved by the corrections so far and the next step refines them.
    """
    frames = count + 1 if with_reference else count
    ties = [(i, j, _thinned(a), _thinned(b)) for i, j, a, b in ties]
    prior = np.tile(
        [PRIOR_SHIFT_M, PRIOR_SHIFT_M, math.radians(PRIOR_ROTATION_DEG), PRIOR_SCALE],
        (frames, 1),
    )
    if with_reference:
        prior[count] = _reference_prior(centres[:count])
    solution = np.zeros((frames, 4))
    for _ in range(_GAUSS_NEWTON_STEPS):
        moved = [
            (i, j, _moved(a, centres[i], solution[i]), _moved(b, centres[j], solution[j]))
            for i, j, a, b in ties
        ]
        placed = centres + solution[:, :2]
        solution = solution + _adjust_step(moved, placed, solution, prior, count)
    if not with_reference:
        return solution
    return _onto_reference(solution[:count], centres[:count], solution[count], centres[count])


def _reference_prior(centres: np.ndarray) -> np.ndarray:
    """Prior size of the reference's correction: a shift up to MAX_OFFSET_M, and a turn and
    scale moving the block's edge by REFERENCE_EDGE_M (never more than a frame's)."""
    radius_m = math.sqrt(float(((centres - centres.mean(axis=0)) ** 2).sum(axis=1).mean()))
    edge = REFERENCE_EDGE_M / max(radius_m, REFERENCE_EDGE_M)
    return np.array(
        [
            MAX_OFFSET_M,
            MAX_OFFSET_M,
            min(math.radians(PRIOR_ROTATION_DEG), edge),
            min(PRIOR_SCALE, edge),
        ]
    )


def _thinned(points: np.ndarray) -> np.ndarray:
    return points[:: max(1, len(points) // MAX_TIES_PER_PAIR)]


def _moved(points: np.ndarray, centre: np.ndarray, correction: np.ndarray) -> np.ndarray:
    """``points`` of a frame centred at ``centre`` after its correction."""
    return (
        centre + correction[:2] + (1.0 + correction[3]) * _rotated(points - centre, correction[2])
    )


def _rotated(points: np.ndarray, angle_rad: float) -> np.ndarray:
    cos, sin = math.cos(angle_rad), math.sin(angle_rad)
    return np.column_stack(
        (cos * points[:, 0] - sin * points[:, 1], sin * points[:, 0] + cos * points[:, 1])
    )


def _adjust_step(
    ties: list[tuple[int, int, np.ndarray, np.ndarray]],
    centres: np.ndarray,
    solution: np.ndarray,
    prior: np.ndarray,
    gauged: int,
) -> np.ndarray:
    """One linearised step: the change of ``solution`` that best closes the ``ties`` under
    the priors and the gauge of the first ``gauged`` frames.

    The normal equations are summed pair by pair (a pair's rows touch its two frames' eight
    unknowns), so memory grows with the pairs, not the tie points. They are solved directly:
    the block's rotation and scale are pinned only by the weak priors, directions iterative
    solvers (lsqr) are slow to converge along."""
    size = 4 * len(solution)
    rows, columns, values = [], [], []
    gradient = np.zeros(size)
    for i, j, points_i, points_j in ties:
        jacobian, residual = _pair_rows(points_i, points_j, centres[[i, j]], solution[[i, j], 3])
        unknowns = np.r_[4 * i : 4 * i + 4, 4 * j : 4 * j + 4]
        rows.append(np.repeat(unknowns, 8))
        columns.append(np.tile(unknowns, 8))
        values.append((jacobian.T @ jacobian).ravel())
        gradient[unknowns] += jacobian.T @ residual
    weights = TIE_SIGMA_M / prior.ravel()  # the priors hold the total correction
    rows.append(np.arange(size))
    columns.append(np.arange(size))
    values.append(weights**2)
    gradient -= weights**2 * solution.ravel()
    normal = coo_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
        shape=(size, size),
    ).tocsc()
    gauge, gauge_rhs = _gauge_rows(size, solution[:gauged])
    return _solve_with_gauge(normal, gradient, gauge, gauge_rhs).reshape(-1, 4)


def _pair_rows(
    points_i: np.ndarray, points_j: np.ndarray, centres: np.ndarray, stretches: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Jacobian over the pair's unknowns (frame i's shift_e, shift_n, rotation, scale, then
    frame j's) and residual of its ties' x rows, then y rows:
    d(p) = dt + dtheta perp(p - c) + ds (p - c), perp(x, y) = (-y, x).

    Residuals count at the pair's mean scale: shrinking the whole block, which shortens
    every ground residual, must not pay."""
    rel_i, rel_j = points_i - centres[0], points_j - centres[1]
    half_residual = (points_i - points_j) / (2.0 + stretches.sum())
    count = len(rel_i)
    jacobian = np.zeros((2 * count, 8))
    x_rows, y_rows = jacobian[:count], jacobian[count:]
    x_rows[:, [0, 2, 3]] = np.column_stack((np.ones(count), -rel_i[:, 1], rel_i[:, 0]))
    x_rows[:, [4, 6, 7]] = np.column_stack((-np.ones(count), rel_j[:, 1], -rel_j[:, 0]))
    y_rows[:, [1, 2, 3]] = np.column_stack((np.ones(count), rel_i[:, 0], rel_i[:, 1]))
    y_rows[:, [5, 6, 7]] = np.column_stack((-np.ones(count), -rel_j[:, 0], -rel_j[:, 1]))
    x_rows[:, [3, 7]] -= half_residual[:, :1]
    y_rows[:, [3, 7]] -= half_residual[:, 1:]
    residual = np.concatenate((points_j[:, 0] - points_i[:, 0], points_j[:, 1] - points_i[:, 1]))
    return jacobian, residual


def _gauge_rows(size: int, solution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two weighted rows (as columns) that keep the frames' mean shift (east, north) at
    zero, and their right-hand sides."""
    weight = GAUGE_WEIGHT / PRIOR_SHIFT_M
    rows = np.zeros((size, 2))
    rows[0 : 4 * len(solution) : 4, 0] = weight
    rows[1 : 4 * len(solution) : 4, 1] = weight
    return rows, -weight * solution[:, :2].sum(axis=0)


def _solve_with_gauge(
    normal: csc_matrix, gradient: np.ndarray, gauge: np.ndarray, gauge_rhs: np.ndarray
) -> np.ndarray:
    """x with (N + G Gᵀ) x = g + G r, N sparse: the gauge rows, dense over the frames,
    are added by the Woodbury identity so that N keeps its sparsity."""
    solve = splu(normal).solve
    first = solve(gradient + gauge @ gauge_rhs)
    spread = solve(gauge)
    small = np.eye(gauge.shape[1]) + gauge.T @ spread
    return first - spread @ np.linalg.solve(small, gauge.T @ first)


def _onto_reference(
    solution: np.ndarray, centres: np.ndarray, reference: np.ndarray, reference_centre: np.ndarray
) -> np.ndarray:
    """Frame corrections followed by the inverse of the reference's own correction."""
    placed = centres + solution[:, :2] - reference_centre - reference[:2]
    back = reference_centre + _rotated(placed, -reference[2]) / (1.0 + reference[3])
    return np.column_stack(
        (
            back - centres,
            solution[:, 2] - reference[2],
            (1.0 + solution[:, 3]) / (1.0 + reference[3]) - 1.0,
        )
    )


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
        record,
        lon_deg=lon,
        lat_deg=lat,
        yaw_deg=record.yaw_deg - correction.rotation_deg,
        altitude_m=record.altitude_m * correction.scale,
    )
