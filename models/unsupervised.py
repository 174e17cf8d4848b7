"""Crop health without labels: three k-means clusters of a vegetation index, named by their order.

The fallback when no agronomist has labelled anything yet. The clusters of the index, lowest
mean first, are called bare / stressed / healthy; nothing says they match what an agronomist
would call so, so the model is marked ``training="unsupervised"`` and its report gives no
accuracy. Label a few fields and train a supervised model to get one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import sklearn
from shapely.geometry.base import BaseGeometry
from sklearn.cluster import KMeans

from core.errors import ProcessingError
from models.crop_health import HEALTH_CLASSES, HEALTH_PIXEL_M, HealthModel
from models.features import CROP_FEATURES
from models.training import labels_in_crs, sample_labelled_pixels
from models.windows import open_rgb

UNSUPERVISED_INDEX = "vari"
"""The RGB index clustered: VARI, the index ``parcel_health`` reports per parcel."""


class IndexThresholds:
    """A pixel estimator that cuts one feature (a ``CROP_FEATURES`` name) at ascending
    ``thresholds`` into classes coded
    ``1..C`` from the highest values down (healthy, stressed, bare). ``centres`` (mean value)
    and ``shares`` (of the pixels it was fitted on) describe each class, in code order."""

    def __init__(
        self, feature: str, thresholds: np.ndarray, centres: np.ndarray, shares: np.ndarray
    ) -> None:
        self.feature = feature
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.centres = centres
        self.shares = shares
        self.classes_ = np.arange(1, self.thresholds.size + 2)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """One-hot class membership (N, C) of feature rows ``x`` (N, F)."""
        values = x[:, CROP_FEATURES.names.index(self.feature)]
        codes = self.classes_.size - np.searchsorted(self.thresholds, values, side="right")
        return (codes[:, None] == self.classes_[None, :]).astype(np.float64)


@dataclass(frozen=True)
class UnsupervisedReport:
    """What an unsupervised health model is: the index cut, where, and what share fell where."""

    image: Path
    index: str
    thresholds: tuple[float, ...]
    centres: tuple[float, ...]
    shares: tuple[float, ...]

    def markdown(self) -> str:
        """The report as Markdown; it says, as loudly as a table can, that it has no accuracy."""
        lines = [
            "## Unsupervised crop health (no labels: accuracy unknown)",
            "",
            f"No labels were given for {self.image.name}, so its pixels were split into three "
            f"k-means clusters of {self.index.upper()}, named by their order (lowest mean: bare, "
            "then stressed, then healthy). **The model is marked `unsupervised`; nothing was "
            "measured against truth.** Label a few fields in each condition and run "
            "`raqib evaluate crop-health --image ... --labels ...` to train and score a "
            "supervised model.",
            "",
            f"| class | {self.index.upper()} from | to | cluster mean | share of pixels |",
            "|---|---:|---:|---:|---:|",
        ]
        bounds = (float("-inf"), *self.thresholds, float("inf"))
        for i, name in enumerate(HEALTH_CLASSES):
            low, high = bounds[len(HEALTH_CLASSES) - 1 - i], bounds[len(HEALTH_CLASSES) - i]
            lines.append(
                f"| {name} | {_bound(low)} | {_bound(high)} | {self.centres[i]:.3f} | "
                f"{100 * self.shares[i]:.1f} % |"
            )
        return "\n".join(lines) + "\n"


def _bound(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "–"


def train_health_unsupervised(
    image_path: str | Path,
    *,
    mask_polygons: gpd.GeoDataFrame | None = None,
    max_samples: int = 60000,
    seed: int = 0,
) -> HealthModel:
    """A health model from three k-means clusters of ``UNSUPERVISED_INDEX`` over the valid
    pixels of ``image_path`` (inside ``mask_polygons`` if given, e.g. the farm parcels)."""
    shapes: list[tuple[BaseGeometry, int]] = []
    if mask_polygons is not None:
        with open_rgb(image_path) as src:
            mask_polygons = labels_in_crs(mask_polygons, src, image_path)
        shapes = [(g, 1) for g in mask_polygons.geometry if g is not None and not g.is_empty]
    background = 0 if mask_polygons is not None else 1
    sample = sample_labelled_pixels(
        image_path,
        shapes,
        1,
        features=CROP_FEATURES,
        pixel_m=HEALTH_PIXEL_M,
        background_code=background,
        max_samples_per_class=max_samples,
        seed=seed,
    )
    values = sample.x[:, CROP_FEATURES.names.index(UNSUPERVISED_INDEX)].astype(np.float64)
    kmeans = KMeans(n_clusters=len(HEALTH_CLASSES), n_init=10, random_state=seed)
    clusters = kmeans.fit_predict(values[:, None])
    order = np.argsort(-kmeans.cluster_centers_[:, 0])  # code 1 (healthy) = highest mean
    centres = kmeans.cluster_centers_[order, 0]
    shares = np.array([np.mean(clusters == k) for k in order])
    ascending = np.sort(centres)
    estimator = IndexThresholds(
        UNSUPERVISED_INDEX, (ascending[:-1] + ascending[1:]) / 2, centres, shares
    )
    return HealthModel(
        estimator=estimator,
        classes=HEALTH_CLASSES,
        features=CROP_FEATURES,
        training_hash=hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest(),
        sklearn_version=sklearn.__version__,
        training="unsupervised",
        pixel_m=HEALTH_PIXEL_M,
    )


def unsupervised_report(model: HealthModel, image_path: str | Path) -> UnsupervisedReport:
    """The report of a model from :func:`train_health_unsupervised` fitted on ``image_path``."""
    estimator = model.estimator
    if model.training != "unsupervised" or not isinstance(estimator, IndexThresholds):
        raise ProcessingError("not an unsupervised crop health model")
    return UnsupervisedReport(
        image=Path(image_path),
        index=estimator.feature,
        thresholds=tuple(float(t) for t in estimator.thresholds),
        centres=tuple(float(c) for c in estimator.centres),
        shares=tuple(float(s) for s in estimator.shares),
    )
