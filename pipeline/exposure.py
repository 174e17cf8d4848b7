"""Exposure balancing: one gain per frame so overlapping frames agree in brightness.

Auto-exposure drifts between frames, which shows as seams a classifier can mistake for
change. Frames are compared where they overlap, on a coarse ground grid, and gains are
found by least squares as OpenCV's ``GainCompensator`` does (pairwise mean intensities,
plus a prior that keeps each gain near 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from affine import Affine
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve

from core.types import ImageRecord
from pipeline.footprint import footprint, frame_to_ground, overlapping_pairs

COARSE_RESOLUTION_M = 1.0
"""Frames are compared at this ground resolution (decoded at 1/8)."""
INTENSITY_SIGMA = 2.0
"""Expected difference of mean grey levels between two well-balanced frames."""
GAIN_SIGMA = 0.1
"""Expected spread of gains around 1."""
MIN_OVERLAP_PX = 50
_DECODE_FACTOR = 8


@dataclass(frozen=True)
class _Coarse:
    """A frame's luminance on the coarse ground grid: its window and valid pixels."""

    row: int
    col: int
    luminance: np.ndarray
    valid: np.ndarray


def exposure_gains(records: Sequence[ImageRecord], crs: str) -> tuple[float, ...]:
    """A multiplicative gain per frame that balances overlapping frames' brightness."""
    count = len(records)
    if count < 2:
        return (1.0,) * count
    shapes = [footprint(record, crs) for record in records]
    left = min(shape.bounds[0] for shape in shapes)
    top = max(shape.bounds[3] for shape in shapes)
    grid = Affine(COARSE_RESOLUTION_M, 0.0, left, 0.0, -COARSE_RESOLUTION_M, top)
    coarse = [
        _coarse(record, shape.bounds, grid, crs)
        for record, shape in zip(records, shapes, strict=True)
    ]
    pairs = []
    for i, j in overlapping_pairs(shapes):
        means = _overlap_means(coarse[i], coarse[j])
        if means is not None:
            pairs.append((i, j, *means))
    return tuple(float(gain) for gain in _solve(pairs, count))


def _coarse(record: ImageRecord, bounds: tuple[float, ...], grid: Affine, crs: str) -> _Coarse:
    image = cv2.imread(str(record.path), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    col0, row0 = (int(np.floor(v)) for v in ~grid @ (bounds[0], bounds[3]))
    col1, row1 = (int(np.ceil(v)) for v in ~grid @ (bounds[2], bounds[1]))
    width, height = col1 - col0, row1 - row0
    if image is None:
        return _Coarse(
            row0, col0, np.zeros((height, width), np.float32), np.zeros((height, width), bool)
        )
    to_ground = frame_to_ground(record, crs) @ Affine.scale(_DECODE_FACTOR)
    to_frame = ~to_ground @ grid @ Affine.translation(col0, row0)
    index_map = Affine.translation(-0.5, -0.5) @ to_frame @ Affine.translation(0.5, 0.5)
    matrix = np.array(index_map.column_vectors, dtype=np.float64).T
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    luminance = cv2.warpAffine(image.astype(np.float32), matrix, (width, height), flags=flags)
    inside = cv2.warpAffine(np.ones_like(image), matrix, (width, height), flags=flags)
    valid = cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0
    return _Coarse(row0, col0, luminance, valid)


def _overlap_means(first: _Coarse, second: _Coarse) -> tuple[float, float, int] | None:
    """Mean luminance of each frame over their common valid pixels, and the pixel count."""
    row0, col0 = max(first.row, second.row), max(first.col, second.col)
    row1 = min(first.row + first.valid.shape[0], second.row + second.valid.shape[0])
    col1 = min(first.col + first.valid.shape[1], second.col + second.valid.shape[1])
    if row1 <= row0 or col1 <= col0:
        return None
    a = (slice(row0 - first.row, row1 - first.row), slice(col0 - first.col, col1 - first.col))
    b = (slice(row0 - second.row, row1 - second.row), slice(col0 - second.col, col1 - second.col))
    both = first.valid[a] & second.valid[b]
    count = int(both.sum())
    if count < MIN_OVERLAP_PX:
        return None
    return float(first.luminance[a][both].mean()), float(second.luminance[b][both].mean()), count


def _solve(pairs: list[tuple[int, int, float, float, int]], count: int) -> np.ndarray:
    """Gains minimising sum N_ij ((g_i I_ij - g_j I_ji)^2 / s_I^2 + (1 - g_i)^2 / s_g^2)."""
    rows, cols, values = [], [], []
    rhs = np.zeros(len(pairs) + count)
    for row, (i, j, mean_i, mean_j, n) in enumerate(pairs):
        weight = np.sqrt(n) / INTENSITY_SIGMA
        rows += [row, row]
        cols += [i, j]
        values += [weight * mean_i, -weight * mean_j]
    overlap_px = np.zeros(count)
    for i, j, _, _, n in pairs:
        overlap_px[i] += n
        overlap_px[j] += n
    prior = np.sqrt(np.maximum(overlap_px, 1.0)) / GAIN_SIGMA
    prior_rows = len(pairs) + np.arange(count)
    rows += list(prior_rows)
    cols += list(range(count))
    values += list(prior)
    rhs[len(pairs) :] = prior
    matrix = coo_matrix((values, (rows, cols)), shape=(len(rhs), count)).tocsr()
    return spsolve((matrix.T @ matrix).tocsc(), matrix.T @ rhs)
