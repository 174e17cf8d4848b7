"""Train the pixel classifiers on a user's orthophoto and labels, scored by spatial blocks.

The image is first copied onto the grid each model works on (:mod:`models.working_copy`):
buildings at ``BUILDING_PIXEL_M`` (the 10 cm the building features' pixel sizes were chosen
for, and the shipped model's), crop health at ``HEALTH_PIXEL_M``; any CRS, uint8 or uint16.
The model file is a :class:`models.training.PixelModel` as :func:`models.training.save_model`
writes it: what ``--model`` of the commands and the flows (``<workspace>/models``) load.

Building labels are usually an OpenStreetMap extract or a cadastral sketch: outlines a few
metres off and buildings missing. The model is fitted as the flows fit theirs
(:func:`models.construction.train_buildings_on`, with hard-negative mining) but with pixels
within ``erode_m`` of an outline left out on both sides (a shifted outline's core still lies
on the roof). Measured on the simulator (docs/byo_training.md), mining finds more than it
loses to the buildings the labels miss: F1 0.58 against 0.43 without it.
Accuracy is the spatial block cross-validation of :mod:`models.validation` with the same
features and estimator, on positives shrunk by ``erode_m`` and negatives at least
``ignore_m`` from any outline, without the mining step; it is scored against the labels as
given, so their own errors count against it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import geopandas as gpd
import rasterio
from rasterio.warp import transform_bounds
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from core.errors import InputError
from models.construction import BUILDING_CLASSES, train_buildings_on
from models.crop_health import HEALTH_PIXEL_M, train_health_on, validate_health
from models.features import BUILDING_FEATURES
from models.labels import checked_labels, read_labels
from models.training import PixelModel, sample_labelled_pixels
from models.validation import CrossValidationReport, cross_validate
from models.working_copy import SourceImage, inspect_image, make_working_copy

BUILDING_PIXEL_M = 0.1
ERODE_M = 1.5
"""Pixels this close to an outline are neither positives nor negatives: a 2 m offset then
leaves most of a 10 m house's core on its roof."""
IGNORE_M = 3.0
"""No pixel within this distance of a labelled outline is a negative."""


@dataclass(frozen=True)
class TrainedModel:
    """A model fitted on all the labels, and its spatial cross-validation report."""

    model: PixelModel
    report: CrossValidationReport
    labels_used: int

    def summary(self, out: Path) -> str:
        """One line for the command line."""
        scores = ", ".join(f"{s.name} F1 {s.f1:.2f}" for s in self.report.scores if s.tested_px > 0)
        return (
            f"{out}: {self.labels_used} label polygons; spatial {len(self.report.fold_kappas)}"
            f"-fold CV over {self.report.n_blocks} blocks of {self.report.block_m:g} m: "
            f"{scores}, kappa {self.report.kappa:.2f}"
        )


def train_buildings_on_labels(
    image_path: str | Path,
    labels: str | Path,
    *,
    layer: str | None = None,
    bands: Mapping[str, int] | None = None,
    erode_m: float = ERODE_M,
    ignore_m: float = IGNORE_M,
    block_m: float = 50.0,
    n_folds: int = 5,
    max_samples_per_class: int = 20000,
    seed: int = 0,
) -> TrainedModel:
    """A building model from footprint polygons (any CRS; every polygon is a building) over
    a user's orthophoto, robust to offset and missing outlines (see the module docstring)."""
    source = _rgb_source(image_path, bands)
    frame, name = read_labels(labels, layer=layer)
    _check_overlap(frame, name, source)
    with tempfile.TemporaryDirectory(prefix="raqib-train-") as tmp:
        copy = make_working_copy(source, tmp, BUILDING_PIXEL_M)
        checked = checked_labels(
            frame.assign(raqib_class="building"), "raqib_class", ("building",), copy.rgb_path
        )
        footprints = [geom for geom, _ in checked.shapes]
        shapes: list[tuple[BaseGeometry, int]] = [(g.buffer(ignore_m), 0) for g in footprints]
        cores = [g.buffer(-erode_m) for g in footprints]
        shapes += [(core, 1) for core in cores if not core.is_empty]
        if len(shapes) == len(footprints):
            raise InputError(name, f"every footprint is narrower than 2 x {erode_m:g} m")
        labelled = gpd.GeoDataFrame(geometry=footprints, crs=copy.crs)
        model = train_buildings_on(
            [(copy.rgb_path, labelled)],
            max_samples_per_class=max_samples_per_class,
            boundary_m=erode_m,
            seed=seed,
        )
        sample = sample_labelled_pixels(
            copy.rgb_path,
            shapes,
            2,
            features=BUILDING_FEATURES,
            background_code=2,
            max_samples_per_class=max_samples_per_class,
            seed=seed,
        )
    if len(set(sample.y.tolist())) < 2:
        raise InputError(name, "the labels leave no building or no background pixel to learn")
    report = cross_validate(
        sample,
        BUILDING_CLASSES,
        block_m=block_m,
        buffer_m=BUILDING_FEATURES.margin_px * BUILDING_PIXEL_M,
        n_folds=n_folds,
        seed=seed,
    )
    notes = (*checked.notes, f"positives: footprints shrunk by {erode_m:g} m; "
             f"no negative within {ignore_m:g} m of a footprint")  # fmt: skip
    report = replace(report, sources=(f"{Path(name).name} over {source.path.name}",), notes=notes)
    return TrainedModel(model, report, len(footprints))


def train_health_on_labels(
    image_path: str | Path,
    labels: str | Path,
    class_column: str,
    *,
    layer: str | None = None,
    bands: Mapping[str, int] | None = None,
    block_m: float = 50.0,
    n_folds: int = 5,
    seed: int = 0,
) -> TrainedModel:
    """A crop health model from polygons whose ``class_column`` says healthy / stressed /
    bare, over a user's orthophoto (any CRS), with its spatial cross-validation."""
    source = _rgb_source(image_path, bands)
    frame, name = read_labels(labels, layer=layer)
    if class_column not in frame.columns:
        columns = [c for c in frame.columns if c != frame.geometry.name]
        raise InputError(name, f"no class column {class_column!r}; its columns are {columns}")
    _check_overlap(frame, name, source)
    with tempfile.TemporaryDirectory(prefix="raqib-train-") as tmp:
        copy = make_working_copy(source, tmp, HEALTH_PIXEL_M)
        examples = [(copy.rgb_path, labels)]  # the file, so that errors name it
        report = validate_health(
            examples, class_column, block_m=block_m, n_folds=n_folds, layer=layer, seed=seed
        )
        model = train_health_on(examples, class_column, layer=layer, seed=seed)
    report = replace(report, sources=(f"{Path(name).name} over {source.path.name}",))
    return TrainedModel(model, report, len(frame))


def _rgb_source(image_path: str | Path, bands: Mapping[str, int] | None) -> SourceImage:
    source = inspect_image(image_path, bands)
    if not source.has_rgb:
        found = ", ".join(source.bands)
        raise InputError(
            image_path,
            f"training needs red, green and blue bands (found {found}): name them with --bands",
        )
    return source


def _check_overlap(frame: gpd.GeoDataFrame, name: str, source: SourceImage) -> None:
    """InputError naming the labels when they have no CRS or none lies over the image."""
    if frame.crs is None:
        raise InputError(name, "label polygons have no CRS")
    with rasterio.open(source.path) as src:
        footprint = box(*transform_bounds(src.crs, frame.crs, *src.bounds, densify_pts=21))
    if frame.empty or not frame.geometry.intersects(footprint).any():
        raise InputError(name, f"no label polygon overlaps the image {source.path.name}")
