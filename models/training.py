"""Pixel classifiers: sample labelled pixels by blocks, fit, predict by blocks, save and load.

Crop health and built-up detection are both per-pixel classifiers on a
:class:`models.features.FeatureSet`, computed on the image's own pixels or on a coarser working
grid (``PixelModel.pixel_m``); this module holds what they share.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import cv2
import geopandas as gpd
import joblib
import numpy as np
import rasterio
import sklearn
from affine import Affine
from rasterio import features as rio_features
from rasterio import windows as rio_windows
from rasterio.io import DatasetReader
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import ThreadpoolController

from core.errors import InputError, ProcessingError
from core.io import atomic_path
from models.features import FeatureSet
from models.nodata import fill_from_nearest
from models.sun import image_sun, shadow_px_per_m
from models.windows import (
    BLOCK_PX,
    Block,
    WorkingGrid,
    blocks,
    open_rgb,
    read_rgb_on,
    working_grid,
)


class PixelEstimator(Protocol):
    """What a pixel model needs of its estimator (a scikit-learn classifier, or thresholds)."""

    classes_: np.ndarray

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class PixelModel:
    """A fitted pixel classifier; class ``classes[i]`` has raster code ``i + 1``."""

    estimator: PixelEstimator
    classes: tuple[str, ...]
    features: FeatureSet
    training_hash: str
    sklearn_version: str
    training: Literal["supervised", "unsupervised"] = "supervised"
    """Fitted on labels, or clusters of an index without labels (accuracy unknown)."""
    pixel_m: float | None = None
    """Ground size (m) of the pixels features are computed on; None: the image's own."""

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The estimator's input columns, in order."""
        return self.features.names


@dataclass(frozen=True, eq=False)
class PixelSample:
    """Labelled pixels: features ``x`` (N, F), codes ``y`` (N,), map coordinates ``xy``
    (N, 2) of their centres, and ``weight`` (N,): the labelled pixels each one stands for in
    its image and class (sampling is capped per class, so rare classes weigh less)."""

    x: np.ndarray
    y: np.ndarray
    xy: np.ndarray
    weight: np.ndarray

    @staticmethod
    def concat(samples: Sequence[PixelSample]) -> PixelSample:
        """The samples of several images, one after the other."""
        return PixelSample(
            *(
                np.concatenate([getattr(s, name) for s in samples])
                for name in ("x", "y", "xy", "weight")
            )
        )


M = TypeVar("M", bound=PixelModel)


@dataclass(frozen=True)
class Boosting:
    """Size of a gradient-boosted classifier: fewer, larger steps predict faster."""

    max_iter: int = 60
    learning_rate: float = 0.15


DEFAULT_BOOSTING = Boosting()

DEFAULT_MODELS_DIR = Path(__file__).parent / "default"
"""The models Raqib ships (docs/models.md), rebuilt by ``raqib train defaults``."""
DEFAULT_BUILDINGS_MODEL = DEFAULT_MODELS_DIR / "buildings.joblib"
DEFAULT_HEALTH_MODEL = DEFAULT_MODELS_DIR / "crop_health.joblib"


def softened_copy(image_path: str | Path, sigma_px: float) -> Path:
    """A copy of ``image_path`` beside it (``<stem>_soft<sigma>.tif``) with its colour bands
    blurred by a Gaussian of ``sigma_px``, written once: a training augmentation, since a
    drone orthomosaic is resampled from photos and its fine texture is weaker than a crisp
    render's (or an other camera's)."""
    image_path = Path(image_path)
    out = image_path.with_name(f"{image_path.stem}_soft{sigma_px:g}.tif")
    if out.exists():
        return out
    with rasterio.open(image_path) as src:
        profile = src.profile | {"driver": "GTiff"}
        bands = src.read()
        tags = src.tags()
        colour = [i for i, c in enumerate(src.colorinterp) if c.name != "alpha"][:3]
    for i in colour:
        bands[i] = cv2.GaussianBlur(bands[i], (0, 0), sigma_px)
    with atomic_path(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(bands)
        dst.update_tags(**tags)  # the capture time among them
    return out


def labels_in_crs(
    labels: gpd.GeoDataFrame, src: DatasetReader, source: str | Path
) -> gpd.GeoDataFrame:
    """``labels`` reprojected to the raster's CRS; :class:`InputError` when they have no CRS."""
    if labels.crs is None:
        raise InputError(source, "label polygons have no CRS")
    return labels.to_crs(src.crs)


def sample_pixels(
    image_path: str | Path,
    shapes: Sequence[tuple[BaseGeometry, int]],
    n_classes: int,
    *,
    features: FeatureSet,
    background_code: int = 0,
    max_samples_per_class: int = 20000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``X`` (N, F) and codes ``y`` (N,) of pixels burnt with ``shapes``
    (see :func:`sample_labelled_pixels`)."""
    sample = sample_labelled_pixels(
        image_path,
        shapes,
        n_classes,
        features=features,
        background_code=background_code,
        max_samples_per_class=max_samples_per_class,
        seed=seed,
    )
    return sample.x, sample.y


def sample_labelled_pixels(
    image_path: str | Path,
    shapes: Sequence[tuple[BaseGeometry, int]],
    n_classes: int,
    *,
    features: FeatureSet,
    pixel_m: float | None = None,
    background_code: int = 0,
    max_samples_per_class: int = 20000,
    seed: int = 0,
) -> PixelSample:
    """Pixels burnt with ``shapes`` (in raster CRS): their ``features``, codes and positions,
    on the image's working grid for ``pixel_m`` (see :func:`models.windows.working_grid`).

    Later shapes overwrite earlier ones; code 0 is never sampled, ``background_code`` is given to
    pixels no shape covers. Each class keeps a uniform random sample of at most
    ``max_samples_per_class`` pixels (bottom-k of random keys, so memory stays bounded).
    Features that need the sun take it at the capture time the image's tags state.
    """
    rng = np.random.default_rng(seed)
    kept: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    totals = np.zeros(n_classes + 1, dtype=np.int64)
    with open_rgb(image_path) as src:
        grid = working_grid(src, pixel_m)
        shadow = shadow_on_grid(features, src, grid)
        for block in blocks(grid.width, grid.height, margin_px=features.margin_px):
            codes = burn(shapes, grid.transform, block.window, fill=background_code)
            if not codes.any():
                continue
            rgb, valid = read_rgb_on(src, grid, block.padded)
            codes[~valid[block.inner]] = 0
            totals += np.bincount(codes.ravel(), minlength=n_classes + 1)[: n_classes + 1]
            filled = fill_from_nearest(rgb, valid)
            inner_features = features.compute(filled, shadow_px_per_m=shadow)[block.inner]
            to_map = rio_windows.transform(block.window, grid.transform)
            for code in range(1, n_classes + 1):
                rows, cols = np.nonzero(codes == code)
                if rows.size == 0:
                    continue
                keys = rng.random(rows.size)
                if rows.size > max_samples_per_class:
                    pick = np.argpartition(keys, max_samples_per_class)[:max_samples_per_class]
                    rows, cols, keys = rows[pick], cols[pick], keys[pick]
                east, north = to_map @ (cols + 0.5, rows + 0.5)
                new = (keys, inner_features[rows, cols], np.column_stack([east, north]))
                if code in kept:
                    new = tuple(
                        np.concatenate([a, b]) for a, b in zip(kept[code], new, strict=True)
                    )
                if new[0].size > max_samples_per_class:
                    pick = np.argpartition(new[0], max_samples_per_class)[:max_samples_per_class]
                    new = tuple(a[pick] for a in new)
                kept[code] = new
    if not kept:
        raise InputError(image_path, "no labelled pixels fall inside the image")
    codes_kept = sorted(kept)
    sizes = [kept[c][0].size for c in codes_kept]
    return PixelSample(
        x=np.concatenate([kept[c][1] for c in codes_kept]),
        y=np.concatenate(
            [np.full(n, c, dtype=np.int16) for c, n in zip(codes_kept, sizes, strict=True)]
        ),
        xy=np.concatenate([kept[c][2] for c in codes_kept]),
        weight=np.concatenate(
            [np.full(n, totals[c] / n) for c, n in zip(codes_kept, sizes, strict=True)]
        ),
    )


def burn(
    shapes: Sequence[tuple[BaseGeometry, int]],
    transform: Affine,
    window: Window,
    *,
    fill: int = 0,
    dtype: str = "uint8",
) -> np.ndarray:
    """Codes of ``shapes`` rasterised on ``window`` of the grid of ``transform`` (their CRS)."""
    height, width = int(window.height), int(window.width)
    if not shapes:
        return np.full((height, width), fill, dtype=dtype)
    return rio_features.rasterize(
        shapes,
        out_shape=(height, width),
        transform=rio_windows.transform(window, transform),
        fill=fill,
        dtype=dtype,
    )


def fit_pixel_model(
    x: np.ndarray,
    y: np.ndarray,
    classes: Sequence[str],
    *,
    features: FeatureSet,
    pixel_m: float | None = None,
    boosting: Boosting = DEFAULT_BOOSTING,
    seed: int = 0,
    model_type: type[M] = PixelModel,
) -> M:
    """Fit :func:`fit_estimator` on pixel ``features`` (of a ``pixel_m`` grid) as a model."""
    estimator = fit_estimator(x, y, boosting=boosting, seed=seed)
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    return model_type(
        estimator=estimator,
        classes=tuple(classes),
        features=features,
        training_hash=digest.hexdigest(),
        sklearn_version=sklearn.__version__,
        pixel_m=pixel_m,
    )


def fit_estimator(
    x: np.ndarray, y: np.ndarray, *, boosting: Boosting = DEFAULT_BOOSTING, seed: int = 0
) -> HistGradientBoostingClassifier:
    """A gradient-boosted classifier of feature rows ``x`` into codes ``y`` (balanced class
    weights). A feature missing in every row (the shadow sides of images of unknown capture
    time) is left unused."""
    if np.unique(y).size < 2:
        raise ProcessingError(f"training needs at least two classes, got codes {np.unique(y)}")
    never_known = np.isnan(x).all(axis=0)
    if never_known.any():  # scikit-learn cannot bin a column with no value
        x = x.copy()
        x[:, never_known] = 0.0
    estimator = HistGradientBoostingClassifier(
        max_iter=boosting.max_iter,
        learning_rate=boosting.learning_rate,
        class_weight="balanced",
        early_stopping=False,
        random_state=seed,
    )
    return estimator.fit(x, y)


def predict_blocks(
    model: PixelModel,
    src: DatasetReader,
    *,
    within: Sequence[tuple[BaseGeometry, int]] | None = None,
    block_px: int = BLOCK_PX,
    margin_px: int | None = None,
    stride_px: int = 1,
    refine_near: tuple[float, ...] = (),
    captured_at: datetime | None = None,
) -> Iterator[tuple[Block, np.ndarray, np.ndarray]]:
    """Per block of ``src``'s working grid for the model (:func:`models.windows.working_grid`):
    the block, class probabilities (C, h, w) for codes 1..C over the padded block, and the padded
    mask of pixels to use (valid, and inside ``within`` if given). Blocks are read with
    ``margin_px`` (default: the features' margin).

    With ``stride_px`` > 1 the classifier runs on every ``stride_px``-th pixel and probabilities
    are interpolated in between (``stride_px``² times faster, for smooth outputs); with
    ``refine_near`` thresholds as well, pixels where they may matter are predicted again
    (:func:`coarse_to_fine`). Features that need the sun take it at ``captured_at``, else at
    the time ``src``'s tags state (:func:`shadow_on_grid`).
    """
    grid = working_grid(src, model.pixel_m)
    shadow = shadow_on_grid(model.features, src, grid, captured_at)
    margin_px = model.features.margin_px if margin_px is None else margin_px
    for block in blocks(grid.width, grid.height, size_px=block_px, margin_px=margin_px):
        rgb, has_data = read_rgb_on(src, grid, block.padded)
        valid = has_data
        if within is not None:
            valid = has_data & (burn(within, grid.transform, block.padded) > 0)
        probabilities = pixel_probabilities(
            model,
            rgb,
            valid,
            stride_px=stride_px,
            refine_near=refine_near,
            shadow_px_per_m=shadow,
            has_data=has_data,
        )
        yield block, probabilities, valid


def shadow_on_grid(
    features: FeatureSet,
    src: DatasetReader,
    grid: WorkingGrid,
    captured_at: datetime | None = None,
) -> tuple[float, float] | None:
    """Where 1 m of height casts its shadow on ``grid`` (columns, rows), for feature sets
    that use it: the sun at ``captured_at`` or at the time ``src``'s tags state; None when
    unknown (those features are then missing) or not needed."""
    if not features.shadow_heights_m:
        return None
    return shadow_px_per_m(image_sun(src, captured_at), src, grid)


def pixel_probabilities(
    model: PixelModel,
    rgb: np.ndarray,
    valid: np.ndarray,
    *,
    stride_px: int = 1,
    refine_near: tuple[float, ...] = (),
    shadow_px_per_m: tuple[float, float] | None = None,
    has_data: np.ndarray | None = None,
) -> np.ndarray:
    """Class probabilities (C, H, W) for codes 1..C of an RGB window (0 where not ``valid``);
    ``stride_px`` and ``refine_near`` as in :func:`predict_blocks`, ``shadow_px_per_m`` as in
    :meth:`FeatureSet.compute`. Features are computed with the pixels without data (not
    ``has_data``; default: not ``valid``) filled from the nearest pixel with data, so that no
    fake edge borders no-data (:func:`models.nodata.fill_from_nearest`)."""
    has_data = valid if has_data is None else has_data
    if refine_near and min(valid.shape) < 2:
        stride_px = 1  # no cells to interpolate in: predict every pixel
    if refine_near and stride_px > 1:
        if not valid.any():
            return np.zeros((len(model.classes), *valid.shape), dtype=np.float32)
        filled = fill_from_nearest(rgb, has_data)
        planes = model.features.planes(filled, shadow_px_per_m=shadow_px_per_m)
        return coarse_to_fine(model, planes, valid, stride_px, refine_near)[0]
    sampled = valid[::stride_px, ::stride_px]
    proba = np.zeros((len(model.classes), *sampled.shape), dtype=np.float32)
    if sampled.any():
        filled = fill_from_nearest(rgb, has_data)
        planes = model.features.planes(filled, stride_px, shadow_px_per_m=shadow_px_per_m)
        proba[:, sampled] = predict_pixels(model, planes[:, sampled])
    if stride_px > 1:
        size = (valid.shape[1], valid.shape[0])
        proba = np.stack([cv2.resize(p, size, interpolation=cv2.INTER_LINEAR) for p in proba])
    return proba


REFINE_BAND = 0.15
"""How far (probability) from a threshold a coarse cell's corners must all lie for
:func:`coarse_to_fine` to trust its interpolation."""


def coarse_to_fine(
    model: PixelModel,
    planes: np.ndarray,
    valid: np.ndarray,
    stride_px: int,
    refine_near: tuple[float, ...],
    band: float = REFINE_BAND,
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (C, H, W) from feature ``planes`` (F, H, W), predicting few pixels,
    and the mask (H, W) of the pixels predicted.

    The classifier runs on every ``stride_px``-th row and column (and the last ones), the cells
    between are interpolated bilinearly, then every cell whose corners' probability of code 1
    comes within ``band`` of a ``refine_near`` threshold (or spans it), and every cell next to
    one, is predicted again at every pixel. Outlines at those thresholds are then those of a
    full prediction, unless a detail smaller than a cell hides between confident corners.
    0 where not ``valid``.
    """
    height, width = valid.shape
    rows, cols = _coarse_lines(height, stride_px), _coarse_lines(width, stride_px)
    on_grid = np.ix_(rows, cols)
    coarse_valid = valid[on_grid]
    coarse = np.zeros((len(model.classes), rows.size, cols.size), dtype=np.float32)
    coarse[:, coarse_valid] = predict_pixels(model, planes[:, rows[:, None], cols][:, coarse_valid])
    (row_cell, row_weight), (col_cell, col_weight) = _cells(rows, height), _cells(cols, width)
    proba = _bilinear(coarse, row_cell, row_weight, col_cell, col_weight)
    uncertain = _uncertain_cells(coarse[0], refine_near, band)
    uncertain = cv2.dilate(uncertain, np.ones((3, 3), np.uint8))  # and the cells next to them
    refine = (uncertain[row_cell[:, None], col_cell[None, :]] > 0) & valid
    refine[on_grid] = False  # predicted already
    proba[:, refine] = predict_pixels(model, planes[:, refine])
    proba[:, ~valid] = 0.0
    refine[on_grid] = coarse_valid
    return proba, refine


PREDICT_THREADS = 1
"""OpenMP threads of a prediction. HistGradientBoosting opens a parallel region per tree and
block, whose threads spin at its barrier while a sibling waits for a core: on 2 shared cores
(load 11) detecting a 250 m world's buildings took 12-15 CPU s and 48-60 s with 2 threads,
3.8-3.9 CPU s and 17-24 s with 1 (benchmarks/RESULTS.md). Parallelism comes from tasks
(Dask), not from inside one."""
_THREADPOOLS = ThreadpoolController()


def predict_pixels(model: PixelModel, features: np.ndarray) -> np.ndarray:
    """Class probabilities (C, N) for codes 1..C of pixels' ``features`` (F, N)."""
    by_code = np.zeros((len(model.classes), features.shape[1]), dtype=np.float32)
    if features.shape[1]:
        rows = np.ascontiguousarray(features.T, dtype=np.float64)  # scikit-learn's dtype
        with _THREADPOOLS.limit(limits=PREDICT_THREADS, user_api="openmp"):
            predicted = model.estimator.predict_proba(rows)
        by_code[[int(code) - 1 for code in model.estimator.classes_]] = predicted.T
    return by_code


def _coarse_lines(size: int, stride_px: int) -> np.ndarray:
    """Every ``stride_px``-th index of ``size`` (> 1), and the last."""
    lines = np.arange(0, size, stride_px)
    return lines if lines[-1] == size - 1 else np.append(lines, size - 1)


def _cells(lines: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``size`` pixels, the coarse cell holding it (between ``lines[k]`` and
    ``lines[k + 1]``) and its linear weight towards ``lines[k + 1]``."""
    pixels = np.arange(size)
    cell = np.minimum(np.searchsorted(lines, pixels, side="right") - 1, lines.size - 2)
    weight = (pixels - lines[cell]) / np.diff(lines)[cell]
    return cell, weight.astype(np.float32)


def _bilinear(
    coarse: np.ndarray,
    row_cell: np.ndarray,
    row_weight: np.ndarray,
    col_cell: np.ndarray,
    col_weight: np.ndarray,
) -> np.ndarray:
    """(C, H, W) interpolated from corner values ``coarse`` (C, h, w) with :func:`_cells`."""
    below, right = row_cell + 1, col_cell + 1
    rows = coarse[:, row_cell] * (1 - row_weight[:, None]) + coarse[:, below] * row_weight[:, None]
    return rows[:, :, col_cell] * (1 - col_weight) + rows[:, :, right] * col_weight


def _uncertain_cells(corners: np.ndarray, thresholds: tuple[float, ...], band: float) -> np.ndarray:
    """(h - 1, w - 1) 1 for the cells of ``corners`` (h, w) whose values, widened by ``band``,
    reach a threshold, else 0 (uint8)."""
    quads = (corners[:-1, :-1], corners[1:, :-1], corners[:-1, 1:], corners[1:, 1:])
    low, high = np.minimum.reduce(quads), np.maximum.reduce(quads)
    uncertain = np.zeros(low.shape, dtype=bool)
    for threshold in thresholds:
        uncertain |= (low < threshold + band) & (high > threshold - band)
    return uncertain.astype(np.uint8)


def save_model(model: PixelModel, path: str | Path) -> Path:
    """Write ``model`` with joblib, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp_path:
        joblib.dump(model, tmp_path)
    return path


def load_model(
    path: str | Path, classes: tuple[str, ...] | None = None, kind: str = ""
) -> PixelModel:
    """Read a model written by :func:`save_model`; with ``classes``, InputError unless they
    are the model's (it is "not a ``kind`` model")."""
    try:
        model = joblib.load(path)
    except FileNotFoundError as exc:
        raise InputError(path, "not a Raqib model file: no such file") from exc
    except Exception as exc:  # unpickling arbitrary bytes fails in many ways
        raise InputError(path, f"not a Raqib model file: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, PixelModel):
        raise InputError(path, f"not a Raqib pixel model but {type(model).__name__}")
    if not isinstance(getattr(model, "features", None), FeatureSet):
        raise InputError(path, "a model saved by an older Raqib (no feature set): train it again")
    expected = getattr(model.estimator, "n_features_in_", len(model.feature_names))
    if expected != len(model.feature_names):
        raise InputError(
            path,
            f"its classifier takes {expected} features but its feature set names "
            f"{len(model.feature_names)}: saved by another Raqib version, train it again",
        )
    if classes is not None and tuple(model.classes) != classes:
        raise InputError(path, f"not a {kind} model: its classes are {model.classes}")
    return model
