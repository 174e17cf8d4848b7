"""Accuracy of the models against truth they were not trained on.

Object level: predicted polygons matched one-to-one to truth polygons at IoU >= 0.5 (greedy
by IoU, as SpaceNet / solaris score building footprints). Area level: IoU of the unions.
Class rasters: per-class precision / recall / F1 and Cohen's kappa over rasterised truth.
Construction: buildings per epoch and new buildings between two epochs, as the flows find them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support

from core.errors import ProcessingError
from core.types import Accuracy, Raster
from models.change import confirm_changes, new_buildings
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
    return _with_area_iou(object_scores(detected, truth), area_iou(detected, truth))


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


@dataclass(frozen=True)
class EpochTruth:
    """A held-out image of one epoch and the true building footprints in it."""

    name: str
    image: Path
    buildings: gpd.GeoDataFrame


@dataclass(frozen=True)
class ConstructionAccuracy:
    """Buildings found per epoch (``extra["area_iou"]`` too) and new or grown buildings found
    between the first and the last epoch, object level at IoU >= 0.5."""

    epochs: dict[str, Accuracy]
    new: Accuracy


def true_changes(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The footprints of ``after`` that are new or grown since ``before`` (the rule of
    :func:`models.change.new_buildings`, applied to truth)."""
    return new_buildings(before.to_crs(after.crs), after, min_area_m2=0.0)


def evaluate_construction(model: PixelModel, epochs: Sequence[EpochTruth]) -> ConstructionAccuracy:
    """Detect buildings on each held-out epoch, then the changes from the first to the last
    epoch (polygons compared, confirmed on the earlier pixels, as the survey flow does), and
    score both against truth."""
    detected = {epoch.name: detect_buildings(model, epoch.image) for epoch in epochs}
    scores = {}
    for epoch in epochs:
        found, truth = detected[epoch.name], epoch.buildings.to_crs(detected[epoch.name].crs)
        scores[epoch.name] = _with_area_iou(object_scores(found, truth), area_iou(found, truth))
    first, last = epochs[0], epochs[-1]
    candidates = new_buildings(detected[first.name], detected[last.name])
    changed = confirm_changes(model, first.image, candidates)
    truth_changed = true_changes(first.buildings, last.buildings)
    return ConstructionAccuracy(scores, object_scores(changed, truth_changed, name="new buildings"))


def pooled(scores: Sequence[Accuracy], name: str) -> Accuracy:
    """Object scores of several held-out scenes together (their matches, detections and
    truth objects added up)."""
    counts = {
        key: sum(s.extra[key] for s in scores)
        for key in ("true_positives", "false_positives", "false_negatives")
    }
    matched = int(counts["true_positives"])
    return Accuracy.of_matches(
        name,
        matched,
        matched + int(counts["false_positives"]),
        matched + int(counts["false_negatives"]),
    )


def _with_area_iou(scores: Accuracy, iou: float) -> Accuracy:
    return Accuracy(
        name=scores.name,
        precision=scores.precision,
        recall=scores.recall,
        f1=scores.f1,
        support=scores.support,
        extra={**scores.extra, "area_iou": iou},
    )


NEW_BUILDING_TARGET = 0.9
"""Issue #7's target for new-building precision and recall on the simulator's epochs."""


def construction_markdown(
    results: dict[str, ConstructionAccuracy], *, target: float | None = NEW_BUILDING_TARGET
) -> str:
    """The construction report (Markdown) of several held-out scenes (``results`` by scene
    name): buildings per epoch, new buildings per scene and pooled, and the target met or not."""
    lines = [
        "## Buildings per epoch (object level, IoU >= 0.5)",
        "",
        "| scene | epoch | precision | recall | F1 | area IoU | found / false / missed |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for scene, result in results.items():
        for epoch, s in result.epochs.items():
            lines.append(
                f"| {scene} | {epoch} | {s.precision:.2f} | {s.recall:.2f} | {s.f1:.2f} "
                f"| {s.extra['area_iou']:.2f} | {_counts(s)} |"
            )
    lines += [
        "",
        "## New buildings, first to last epoch (object level, IoU >= 0.5)",
        "",
        "Truth: the last epoch's footprints not in the first epoch (or grown by more than 30 %).",
        "",
        "| scene | precision | recall | F1 | found / false / missed |",
        "|---|---:|---:|---:|---|",
    ]
    new_scores = [result.new for result in results.values()]
    if len(results) > 1:
        new_scores.append(pooled(new_scores, "all scenes"))
    for scene, s in zip([*results, "**all scenes**"], new_scores, strict=False):
        lines.append(
            f"| {scene} | {s.precision:.2f} | {s.recall:.2f} | {s.f1:.2f} | {_counts(s)} |"
        )
    if target is not None:
        total = new_scores[-1]
        met = total.precision >= target and total.recall >= target
        lines += [
            "",
            f"Target new-building precision and recall >= {target:.2f}: "
            + ("**met**." if met else "**not met**."),
        ]
    return "\n".join(lines) + "\n"


def _counts(scores: Accuracy) -> str:
    extra = scores.extra
    return (
        f"{extra['true_positives']:.0f} / {extra['false_positives']:.0f} / "
        f"{extra['false_negatives']:.0f}"
    )
