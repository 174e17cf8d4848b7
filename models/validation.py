"""Spatial block cross-validation of the pixel classifiers, and its report.

Neighbouring pixels look alike, so a classifier tested on pixels drawn at random beside its
training pixels scores what it memorised, not what it learnt (Roberts et al. 2017, Ecography
40:913). Here pixels are grouped into square blocks of ``block_m``, whole blocks are held out
(scikit-learn ``GroupKFold``), and training pixels within ``buffer_m`` of a held-out block
(whose feature windows would reach into it) are left out of that fold's training.

Scores are weighted by the labelled pixels each sampled pixel stands for, so they estimate the
accuracy over the labelled area rather than over a class-balanced sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    precision_recall_fscore_support,
)
from sklearn.model_selection import GroupKFold, StratifiedKFold

from core.errors import InputError
from models.training import DEFAULT_BOOSTING, Boosting, PixelSample, fit_estimator

KAPPA_TARGET = 0.80
"""Issue 6's goal for healthy / stressed / bare under spatial cross-validation."""
Folds = list[tuple[np.ndarray, np.ndarray]]
_NEIGHBOURS = [(sx, sy) for sx in (-1, 0, 1) for sy in (-1, 0, 1) if (sx, sy) != (0, 0)]


@dataclass(frozen=True)
class ClassScore:
    """Accuracy of one class; ``tested_px`` pixels were held out, ``area_share`` is the
    class's share of the labelled area."""

    name: str
    precision: float
    recall: float
    f1: float
    tested_px: int
    area_share: float


@dataclass(frozen=True, eq=False)
class CrossValidationReport:
    """Out-of-fold accuracy of a pixel classifier. ``confusion`` holds shares of the labelled
    area (rows: truth, columns: predicted, in ``classes`` order)."""

    classes: tuple[str, ...]
    scheme: str
    scores: tuple[ClassScore, ...]
    kappa: float
    overall_accuracy: float
    confusion: np.ndarray
    fold_kappas: tuple[float, ...]
    block_m: float | None = None
    buffer_m: float | None = None
    n_blocks: int = 0
    left_out_px: int = 0
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def markdown(self, *, target_kappa: float | None = None) -> str:
        """The report as Markdown: method, per-class table, kappa, confusion matrix, notes."""
        n_tested = sum(s.tested_px for s in self.scores)
        lines = [f"## Cross-validation by {self.scheme}", "", self._method(n_tested), ""]
        lines += [
            "| class | precision | recall | F1 | pixels tested | share of labelled area |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {s.name} | {s.precision:.2f} | {s.recall:.2f} | {s.f1:.2f} | "
            f"{s.tested_px:,} | {100 * s.area_share:.1f} % |"
            for s in self.scores
        ]
        folds = np.asarray(self.fold_kappas)
        verdict = f"**Cohen's kappa {self.kappa:.2f}**"
        if np.isfinite(folds).any():
            verdict += f" (per fold {np.nanmin(folds):.2f} to {np.nanmax(folds):.2f})"
        verdict += f", overall accuracy {self.overall_accuracy:.2f}."
        if target_kappa is not None:
            met = "met" if self.kappa >= target_kappa else "**not met**"
            verdict += f" Target kappa >= {target_kappa:.2f}: {met}."
        lines += ["", verdict, "", "Confusion matrix, % of the labelled area:", ""]
        lines += [
            "| truth \\ predicted | " + " | ".join(self.classes) + " |",
            "|---|" + "---:|" * len(self.classes),
        ]
        lines += [
            f"| {name} | " + " | ".join(f"{100 * v:.1f}" for v in row) + " |"
            for name, row in zip(self.classes, self.confusion, strict=True)
        ]
        if self.notes:
            lines += ["", "Notes on the labels:", "", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines) + "\n"

    def _method(self, n_tested: int) -> str:
        folds = len(self.fold_kappas)
        if self.block_m is None:
            held_out = f"{folds} folds of pixels drawn at random (optimistic: neighbours of "
            held_out += "test pixels are in training)"
        else:
            held_out = (
                f"{folds} folds of whole {self.block_m:g} m blocks ({self.n_blocks} blocks); "
                f"training pixels within {self.buffer_m:g} m of a held-out block left out "
                f"({self.left_out_px:,} over all folds)"
            )
        return (
            f"Labels: {', '.join(self.sources) or 'given pixels'}. The training code path was "
            f"refitted once per fold, holding out {held_out}. {n_tested:,} labelled pixels "
            "tested, each weighted by the labelled area it was sampled from."
        )


def cross_validate(
    sample: PixelSample,
    classes: Sequence[str],
    *,
    block_m: float | None,
    buffer_m: float = 0.0,
    n_folds: int = 5,
    boosting: Boosting = DEFAULT_BOOSTING,
    seed: int = 0,
) -> CrossValidationReport:
    """Out-of-fold scores of :func:`fit_estimator` on ``sample``: held out by spatial blocks
    of ``block_m`` (see the module), or by random pixels when ``block_m`` is None."""
    if n_folds < 2:
        raise InputError("n_folds", f"cross-validation needs at least 2 folds, got {n_folds}")
    if block_m is None:
        folds = random_folds(sample.y, n_folds=n_folds, seed=seed)
        n_blocks, left_out = 0, 0
    else:
        folds, left_out = spatial_folds(
            sample.xy, block_m=block_m, buffer_m=buffer_m, n_folds=n_folds
        )
        n_blocks = np.unique(block_keys(sample.xy, block_m)).size
    predicted = np.zeros_like(sample.y)
    fold_kappas = []
    codes = list(range(1, len(classes) + 1))
    for train, test in folds:
        estimator = fit_estimator(sample.x[train], sample.y[train], boosting=boosting, seed=seed)
        proba = estimator.predict_proba(sample.x[test])
        predicted[test] = estimator.classes_[np.argmax(proba, axis=1)]
        fold_kappas.append(_kappa(sample.y[test], predicted[test], codes, sample.weight[test]))
    return _report(
        sample,
        predicted,
        tuple(classes),
        scheme="random pixels" if block_m is None else "spatial blocks",
        fold_kappas=tuple(fold_kappas),
        block_m=block_m,
        buffer_m=None if block_m is None else buffer_m,
        n_blocks=n_blocks,
        left_out_px=left_out,
    )


def block_keys(xy: np.ndarray, block_m: float) -> np.ndarray:
    """One int64 key per square block of ``block_m`` (aligned on the CRS origin) holding ``xy``."""
    cells = np.floor(xy / block_m).astype(np.int64)
    return _key(cells[:, 0], cells[:, 1])


def spatial_folds(
    xy: np.ndarray, *, block_m: float, buffer_m: float, n_folds: int
) -> tuple[Folds, int]:
    """(train, test) indices holding out whole blocks, training pixels within ``buffer_m`` of
    the held-out blocks left out; and how many training pixels that left out over all folds."""
    if block_m <= 2 * buffer_m:
        raise InputError(
            "block_m",
            f"{block_m:g} m blocks are not larger than the feature window ({2 * buffer_m:g} m): "
            "neighbouring pixels would fall on both sides",
        )
    keys = block_keys(xy, block_m)
    n_blocks = np.unique(keys).size
    if n_blocks < n_folds:
        raise InputError(
            "block_m",
            f"the labelled pixels fall in {n_blocks} blocks of {block_m:g} m, fewer than the "
            f"{n_folds} folds: use smaller blocks or label a wider area",
        )
    neighbours, near = _near_blocks(xy, block_m, buffer_m)
    folds: Folds = []
    left_out = 0
    for train, test in GroupKFold(n_splits=n_folds).split(xy, groups=keys):
        touching = (np.isin(neighbours[train], np.unique(keys[test])) & near[train]).any(axis=1)
        folds.append((train[~touching], test))
        left_out += int(touching.sum())
    return folds, left_out


def random_folds(y: np.ndarray, *, n_folds: int, seed: int) -> Folds:
    """(train, test) indices of pixels drawn at random, stratified by class."""
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((y.size, 1)), y))


def _near_blocks(xy: np.ndarray, block_m: float, buffer_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Keys of the 8 blocks around each pixel's block, and whether the pixel lies within
    ``buffer_m`` of each (``buffer_m`` < ``block_m``, so no farther block can be that close)."""
    cells = np.floor(xy / block_m).astype(np.int64)
    offset = xy - cells * block_m
    keys, near = [], []
    for sx, sy in _NEIGHBOURS:
        dx = np.where(sx < 0, offset[:, 0], block_m - offset[:, 0]) * (sx != 0)
        dy = np.where(sy < 0, offset[:, 1], block_m - offset[:, 1]) * (sy != 0)
        keys.append(_key(cells[:, 0] + sx, cells[:, 1] + sy))
        near.append(np.hypot(dx, dy) < buffer_m)
    return np.stack(keys, axis=1), np.stack(near, axis=1)


def _key(column: np.ndarray, row: np.ndarray) -> np.ndarray:
    return column * (1 << 32) + row


def _kappa(truth: np.ndarray, predicted: np.ndarray, codes: list[int], weight: np.ndarray) -> float:
    if np.unique(np.concatenate([truth, predicted])).size < 2:
        return float("nan")  # one class only in this fold: kappa is undefined
    return float(cohen_kappa_score(truth, predicted, labels=codes, sample_weight=weight))


def _report(
    sample: PixelSample, predicted: np.ndarray, classes: tuple[str, ...], **fields
) -> CrossValidationReport:
    codes = list(range(1, len(classes) + 1))
    truth, weight = sample.y, sample.weight
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, labels=codes, sample_weight=weight, zero_division=0
    )
    confusion = confusion_matrix(truth, predicted, labels=codes, sample_weight=weight)
    confusion = confusion / confusion.sum()
    tested = np.bincount(truth, minlength=len(codes) + 1)[1:]
    scores = tuple(
        ClassScore(
            name,
            float(precision[i]),
            float(recall[i]),
            float(f1[i]),
            int(tested[i]),
            float(confusion[i].sum()),
        )
        for i, name in enumerate(classes)
    )
    return CrossValidationReport(
        classes=classes,
        scores=scores,
        kappa=_kappa(truth, predicted, codes, weight),
        overall_accuracy=float(accuracy_score(truth, predicted, sample_weight=weight)),
        confusion=confusion,
        **fields,
    )
