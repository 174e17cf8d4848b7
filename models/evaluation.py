"""Accuracy of the models against truth they were not trained on.

Object level: predicted polygons matched one-to-one to truth polygons at IoU >= 0.5 (greedy
by IoU, as SpaceNet / solaris score building footprints). Area level: IoU of the unions.
Class rasters: per-class precision / recall / F1 and Cohen's kappa over rasterised truth.
Construction: buildings per epoch, new buildings and extensions between two epochs, as the flows
find them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support

from core.errors import ProcessingError
from core.types import Accuracy, Raster
from models.change import added_part, confirm_changes, new_buildings
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
    """A held-out image of one epoch and the true building footprints in it (and its
    surface model, to detect with height, when ``dsm`` is given)."""

    name: str
    image: Path
    buildings: gpd.GeoDataFrame
    dsm: Path | None = None


@dataclass(frozen=True)
class ConstructionAccuracy:
    """Buildings found per epoch (``extra["area_iou"]`` too), new buildings and grown ones
    (their added part against the true extension) found between the first and the last
    epoch, object level at IoU >= 0.5; ``changes`` are those found (to raise flags from)."""

    epochs: dict[str, Accuracy]
    new: Accuracy
    grown: Accuracy
    changes: gpd.GeoDataFrame


EXPECTED_REASONS: dict[str, frozenset[str]] = {
    "unpermitted": frozenset({"no_permit"}),
    "over_footprint": frozenset({"over_footprint"}),
    "expired_permit": frozenset({"permit_expired"}),
    "permitted": frozenset(),
}
"""The flag reasons each planted case of a simulated world must raise on its parcel (a house
built under a valid permit must raise none)."""


@dataclass(frozen=True)
class ReasonCheck:
    """The reasons flagged on one parcel against the reasons its planted case calls for
    (``case`` "none" for a flagged parcel where nothing was planted)."""

    parcel_id: str
    case: str
    expected: frozenset[str]
    flagged: frozenset[str]
    change: str = "new"
    """What was planted: a "new" building or a "grown" one (an extension)."""

    @property
    def correct(self) -> bool:
        return self.expected == self.flagged


def flag_reason_checks(flagged: pd.DataFrame, truth: gpd.GeoDataFrame) -> list[ReasonCheck]:
    """One check per planted case of ``truth`` (buildings with ``parcel_id``, ``case`` and, if
    given, ``change``) and one per other flagged parcel (none expected there; a flag on no
    parcel counts as one)."""
    reasons = flagged.groupby(flagged["parcel_id"].fillna("(no parcel)"))["reason"].agg(frozenset)
    planted = truth[truth["case"].isin(list(EXPECTED_REASONS))]
    changes = planted["change"] if "change" in planted else ["new"] * len(planted)
    checks = [
        ReasonCheck(
            str(pid), str(case), EXPECTED_REASONS[case], reasons.get(pid, frozenset()), str(change)
        )
        for pid, case, change in zip(planted["parcel_id"], planted["case"], changes, strict=True)
    ]
    seen = set(planted["parcel_id"])
    checks += [
        ReasonCheck(str(pid), "none", frozenset(), found)
        for pid, found in reasons.items()
        if pid not in seen
    ]
    return sorted(checks, key=lambda c: c.parcel_id)


def flag_scores(flagged: pd.DataFrame, truth: gpd.GeoDataFrame) -> Accuracy:
    """Flagged parcels against the parcels where the world built in breach of a permit
    (precision, recall), and how many checks of :func:`flag_reason_checks` are right
    (``extra``: ``reasons_correct`` of ``reason_checks``)."""
    wanted = {
        pid
        for pid, case in zip(truth["parcel_id"], truth["case"], strict=True)
        if EXPECTED_REASONS.get(case)
    }
    right = flagged["parcel_id"].isin(wanted)  # a flag off any parcel is a false alarm
    precision = float(right.mean()) if len(flagged) else 0.0
    recall = len(wanted & set(flagged["parcel_id"].dropna())) / len(wanted) if wanted else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    checks = flag_reason_checks(flagged, truth)
    extra = {
        "reasons_correct": float(sum(c.correct for c in checks)),
        "reason_checks": float(len(checks)),
    }
    return Accuracy("flagged parcels", precision, recall, f1, support=len(wanted), extra=extra)


TRUE_CHANGE_M2 = 1.0
"""The least area a true change adds: an unchanged truth footprint adds nothing."""


def true_changes(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The footprints of ``after`` that are new or grown since ``before``: the rule of
    :func:`models.change.new_buildings` applied to truth, where any square metre added is
    growth (truth outlines do not wobble)."""
    return new_buildings(before.to_crs(after.crs), after, min_area_m2=TRUE_CHANGE_M2)


def extensions(
    grown: gpd.GeoDataFrame, before: gpd.GeoDataFrame, *, exact: bool = False
) -> gpd.GeoDataFrame:
    """The added part of each ``grown`` footprint beyond the footprints of ``before``: as
    the change detection sees it (:func:`models.change.added_part`), or, ``exact``, all of
    it (truth)."""
    earlier = shapely.union_all(before.to_crs(grown.crs).geometry.to_numpy())
    parts = [g.difference(earlier) if exact else added_part(g, earlier) for g in grown.geometry]
    return grown.set_geometry(parts)


def evaluate_construction(
    model: PixelModel, epochs: Sequence[EpochTruth], parcels: gpd.GeoDataFrame | None = None
) -> ConstructionAccuracy:
    """Detect buildings on each held-out epoch (cut along ``parcels`` when given), then the
    changes from the first to the last epoch (polygons compared, confirmed on the earlier
    pixels, as the survey flow does; grown ones also on the surface models when both epochs
    have one), and score them against truth: new buildings by their footprint, grown ones by
    the part they added (against the true extension)."""
    detected = {
        epoch.name: detect_buildings(model, epoch.image, parcels=parcels, dsm=epoch.dsm)
        for epoch in epochs
    }
    scores = {}
    for epoch in epochs:
        found, truth = detected[epoch.name], epoch.buildings.to_crs(detected[epoch.name].crs)
        scores[epoch.name] = _with_area_iou(object_scores(found, truth), area_iou(found, truth))
    first, last = epochs[0], epochs[-1]
    candidates = new_buildings(detected[first.name], detected[last.name])
    dsms = (first.dsm, last.dsm) if first.dsm is not None and last.dsm is not None else None
    changed = confirm_changes(
        model, first.image, detected[first.name], candidates, after_image=last.image, dsms=dsms
    )
    truth_changed = true_changes(first.buildings, last.buildings)
    is_new, truly_new = changed["change"] == "new", truth_changed["change"] == "new"
    grown = extensions(changed[~is_new], detected[first.name])
    truly_grown = extensions(truth_changed[~truly_new], first.buildings, exact=True)
    return ConstructionAccuracy(
        scores,
        object_scores(changed[is_new], truth_changed[truly_new], name="new buildings"),
        object_scores(grown, truly_grown, name="grown buildings"),
        changed,
    )


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


REAL_IMAGERY_NOTE = (
    "## Real labelled imagery\n\n"
    "None to score: `../shared/data` holds no aerial image with building labels (the solaris "
    "Atlanta footprints come without their imagery; the WebODM orthophoto has no labels), so no "
    "F1 on real imagery can be given. What was checked by eye on real images (false detections "
    "on the WebODM park, which has no building) is in docs/byo_imagery.md."
)
"""Closing section of the construction report: the issue asks for F1 on real labelled imagery
where present; this says that none is and where the by-eye checks are."""


def construction_markdown(
    results: dict[str, ConstructionAccuracy],
    *,
    target: float | None = NEW_BUILDING_TARGET,
    reasons: dict[str, list[ReasonCheck]] | None = None,
) -> str:
    """The construction report (Markdown) of several held-out scenes (``results`` by scene
    name): buildings per epoch, new buildings per scene and pooled, and the target met or not;
    with ``reasons`` (by scene), the flag reasons on each planted case."""
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
        "Truth: the last epoch's footprints less than 30 % covered by the first epoch's.",
        "",
    ]
    new_scores = _scene_rows(lines, {scene: result.new for scene, result in results.items()})
    lines += [
        "",
        "## Grown buildings, first to last epoch (object level, IoU >= 0.5)",
        "",
        "Truth: the extensions built onto standing buildings; a structure found grown is matched "
        "by the part it added beyond the first epoch's outlines. That part counts as built when "
        "the first image shows nothing built there and the last one a new surface: its colour "
        "changed, or the classifier calls it built-up and it brightened no more than the ground "
        "around it (a shade lifted brightens far more), or, with surface models, it rose by a "
        "storey (models/change.py, `confirm_changes`). An extension of a house the detector "
        "misses in the first epoch cannot be found grown.",
        "",
    ]
    _scene_rows(lines, {scene: result.grown for scene, result in results.items()})
    if target is not None:
        total = new_scores[-1]
        met = total.precision >= target and total.recall >= target
        lines += [
            "",
            f"Target new-building precision and recall >= {target:.2f}: "
            + ("**met**." if met else "**not met**."),
        ]
    if reasons is not None:
        lines += _reasons_markdown(reasons)
    lines += ["", REAL_IMAGERY_NOTE]
    return "\n".join(lines) + "\n"


def _scene_rows(lines: list[str], scores: dict[str, Accuracy]) -> list[Accuracy]:
    """Append a table of object scores by scene (and pooled, for several) to ``lines``;
    returns the scores, the pooled ones last."""
    rows = list(scores.values())
    if len(rows) > 1:
        rows.append(pooled(rows, "all scenes"))
    lines += [
        "| scene | precision | recall | F1 | found / false / missed |",
        "|---|---:|---:|---:|---|",
    ]
    for scene, s in zip([*scores, "**all scenes**"], rows, strict=False):
        lines.append(
            f"| {scene} | {s.precision:.2f} | {s.recall:.2f} | {s.f1:.2f} | {_counts(s)} |"
        )
    return rows


def _reasons_markdown(reasons: dict[str, list[ReasonCheck]]) -> list[str]:
    checks = [check for scene_checks in reasons.values() for check in scene_checks]
    right = sum(check.correct for check in checks)
    lines = [
        "",
        "## Flag reasons on the planted cases",
        "",
        "Each house the world built or extended in epoch 2 (and any other flagged parcel) "
        "against the reasons flagged on its parcel, with the world's permits.",
        "",
        "| scene | parcel | change | planted case | expected | flagged | right |",
        "|---|---|---|---|---|---|---|",
    ]
    for scene, scene_checks in reasons.items():
        for c in scene_checks:
            lines.append(
                f"| {scene} | {c.parcel_id} | {c.change if c.case != 'none' else '-'} | {c.case} "
                f"| {', '.join(sorted(c.expected)) or '-'} | {', '.join(sorted(c.flagged)) or '-'} "
                f"| {'yes' if c.correct else '**no**'} |"
            )
    lines.append("")
    for change in ("new", "grown"):
        mine = [c for c in checks if c.change == change and c.case != "none"]
        lines.append(
            f"Flag reasons right on {sum(c.correct for c in mine)} of {len(mine)} {change} "
            "planted cases."
        )
    share = right / len(checks) if checks else 0.0
    lines += ["", f"Flag reasons right on {right} of {len(checks)} parcels ({share:.0%})."]
    return lines


def _counts(scores: Accuracy) -> str:
    extra = scores.extra
    return (
        f"{extra['true_positives']:.0f} / {extra['false_positives']:.0f} / "
        f"{extra['false_negatives']:.0f}"
    )
