"""Accuracy of the models against truth they were not trained on.

Object level: predicted polygons matched one-to-one to truth polygons at IoU >= 0.5 (greedy
by IoU, as SpaceNet / solaris score building footprints). Area level: IoU of the unions.
Class rasters: per-class precision / recall / F1 and Cohen's kappa over rasterised truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support

from core.errors import ProcessingError
from core.types import Accuracy, Raster
from models.construction import detect_buildings
from models.crop_health import HEALTH_CLASSES, classify_health
from models.training import PixelModel, burn
from models.windows import blocks


def object_scores(
    predicted: gpd.GeoDataFrame,
    truth: gpd.GeoDataFrame,
    *,
    min_iou: float = 0.5,
    name: str = "buildings",
) -> Accuracy:
    """Precision / recall / F1 of ``predicted`` polygons against ``truth`` at IoU >= ``min_iou``."""
    if predicted.crs != truth.crs:
        predicted = predicted.to_crs(truth.crs)
    pred_geoms, truth_geoms = predicted.geometry.to_numpy(), truth.geometry.to_numpy()
    pred_idx, truth_idx = shapely.STRtree(truth_geoms).query(pred_geoms, predicate="intersects")
    inter = shapely.area(shapely.intersection(pred_geoms[pred_idx], truth_geoms[truth_idx]))
    union = shapely.area(shapely.union(pred_geoms[pred_idx], truth_geoms[truth_idx]))
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    matched_pred: set[int] = set()
    matched_truth: set[int] = set()
    matched_iou: list[float] = []
    for k in np.argsort(-iou, kind="stable"):
        if iou[k] < min_iou:
            break
        if pred_idx[k] in matched_pred or truth_idx[k] in matched_truth:
            continue
        matched_pred.add(int(pred_idx[k]))
        matched_truth.add(int(truth_idx[k]))
        matched_iou.append(float(iou[k]))
    return Accuracy.of_matches(
        name,
        len(matched_iou),
        len(pred_geoms),
        len(truth_geoms),
        mean_matched_iou=float(np.mean(matched_iou)) if matched_iou else 0.0,
    )


def area_iou(predicted: gpd.GeoDataFrame, truth: gpd.GeoDataFrame) -> float:
    """IoU of the union of ``predicted`` and the union of ``truth`` (pixel IoU, resolution-free)."""
    if predicted.crs != truth.crs:
        predicted = predicted.to_crs(truth.crs)
    pred_union, truth_union = predicted.union_all(), truth.union_all()
    union = pred_union.union(truth_union).area
    return pred_union.intersection(truth_union).area / union if union > 0 else 1.0


def class_scores(
    class_raster: Raster | str | Path,
    truth: gpd.GeoDataFrame,
    class_column: str,
    classes: Sequence[str],
) -> dict[str, Accuracy]:
    """Per-class accuracy of a class raster (code ``i + 1`` = ``classes[i]``, 0 = nodata)
    against truth polygons, over pixels both label. ``kappa`` is Cohen's, over all classes;
    ``extra["coverage"]`` is the share of truth pixels the raster classified."""
    path = class_raster.path if isinstance(class_raster, Raster) else Path(class_raster)
    n_codes = len(classes) + 1
    confusion = np.zeros(n_codes * n_codes, dtype=np.int64)
    with rasterio.open(path) as src:
        truth = truth.to_crs(src.crs)
        shapes = [
            (geom, list(classes).index(value) + 1)
            for geom, value in zip(truth.geometry, truth[class_column], strict=True)
            if value in classes and geom is not None
        ]
        for block in blocks(src.width, src.height):
            expected = burn(shapes, src.transform, block.window).astype(np.int64)
            predicted = src.read(1, window=block.window).astype(np.int64)
            confusion += np.bincount(
                (expected * n_codes + predicted).ravel(), minlength=confusion.size
            )
    matrix = confusion.reshape(n_codes, n_codes)
    counts = matrix[1:, 1:]
    if counts.sum() == 0:
        raise ProcessingError(f"{path}: no classified pixel falls inside the truth polygons")
    y_true, y_pred = (a.ravel() + 1 for a in np.indices(counts.shape))
    weights = counts.ravel()
    labels = list(range(1, n_codes))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, sample_weight=weights, zero_division=0
    )
    kappa = float(cohen_kappa_score(y_true, y_pred, labels=labels, sample_weight=weights))
    coverage = float(counts.sum() / matrix[1:, :].sum())
    return {
        name: Accuracy(
            name=name,
            precision=float(precision[i]),
            recall=float(recall[i]),
            f1=float(f1[i]),
            support=int(counts[i].sum()),
            kappa=kappa,
            extra={"coverage": coverage},
        )
        for i, name in enumerate(classes)
    }


def evaluate_buildings(
    model: PixelModel, image_path: str | Path, truth: gpd.GeoDataFrame, **detect_options: float
) -> Accuracy:
    """Detect buildings on a held-out image and score them against its truth footprints
    (object level at IoU >= 0.5; ``extra["area_iou"]`` is the pixel-level IoU)."""
    detected = detect_buildings(model, image_path, **detect_options)
    scores = object_scores(detected, truth)
    return Accuracy(
        name=scores.name,
        precision=scores.precision,
        recall=scores.recall,
        f1=scores.f1,
        support=scores.support,
        extra={**scores.extra, "area_iou": area_iou(detected, truth)},
    )


def evaluate_health(
    model: PixelModel,
    image_path: str | Path,
    truth: gpd.GeoDataFrame,
    out_path: str | Path,
    *,
    class_column: str = "health",
    mask_polygons: gpd.GeoDataFrame | None = None,
) -> dict[str, Accuracy]:
    """Classify a held-out image into ``out_path`` and score it against truth polygons."""
    raster = classify_health(model, image_path, out_path, mask_polygons=mask_polygons)
    return class_scores(raster, truth, class_column, HEALTH_CLASSES)
