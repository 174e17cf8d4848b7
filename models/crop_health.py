"""Crop health: a pixel classifier (healthy / stressed / bare) and per-parcel summaries.

The class raster codes are 0 = nodata or outside the crop mask, then 1, 2, 3 for
``HEALTH_CLASSES`` in order. Crop condition varies over metres, not centimetres: the classifier
works on a grid of ``HEALTH_PIXEL_M`` pixels (the image averaged over each cell), whatever the
image's resolution, and its class raster is on that grid. A model trained on 5 cm and one on
20 cm imagery see the same features, and classifying costs 16x less on a 10 cm mosaic.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
import rasterio

from core.errors import InputError, ProcessingError
from core.io import bounded_gdal_cache
from core.types import Raster
from models.features import CROP_FEATURES
from models.indices import compute_index
from models.labels import Labels, LabelSource, checked_labels, require_two_classes
from models.training import (
    Boosting,
    PixelModel,
    PixelSample,
    burn,
    fit_pixel_model,
    labels_in_crs,
    predict_blocks,
    sample_labelled_pixels,
)
from models.validation import CrossValidationReport, cross_validate
from models.windows import (
    atomic_writer,
    blocks,
    open_rgb,
    output_profile,
    pixel_size_m,
    raster_ref,
    working_grid,
)

LOG = logging.getLogger(__name__)

HEALTH_CLASSES: tuple[str, ...] = ("healthy", "stressed", "bare")
HEALTH_PIXEL_M = 0.4
"""Ground size (m) of the pixels crop health is classified on."""
HEALTH_BOOSTING = Boosting(max_iter=30, learning_rate=0.3)
"""Half the building model's trees: as accurate on held-out worlds, twice as fast to apply."""
NODATA_CODE = 0
HEALTH_COLOURS = {
    0: (0, 0, 0, 0),
    1: (46, 160, 67, 255),
    2: (230, 180, 30, 255),
    3: (150, 90, 50, 255),
}


class HealthModel(PixelModel):
    """A pixel classifier for ``HEALTH_CLASSES``."""


HealthExamples = Sequence[tuple[str | Path, LabelSource]]


def train_health(
    image_path: str | Path,
    labels: LabelSource,
    class_column: str = "health",
    *,
    layer: str | None = None,
    max_samples_per_class: int = 20000,
    seed: int = 0,
) -> HealthModel:
    """Fit a health classifier on pixels inside labelled polygons (a GeoDataFrame or a file
    such as an agronomist's GPKG; ``class_column`` values among ``HEALTH_CLASSES``)."""
    return train_health_on(
        [(image_path, labels)],
        class_column,
        layer=layer,
        max_samples_per_class=max_samples_per_class,
        seed=seed,
    )


def train_health_on(
    examples: HealthExamples,
    class_column: str = "health",
    *,
    layer: str | None = None,
    max_samples_per_class: int = 20000,
    seed: int = 0,
) -> HealthModel:
    """Fit a health classifier on (image, labelled polygons) pairs, e.g. several dates.

    Labels are checked by :func:`models.labels.checked_labels`; what was repaired is logged.
    """
    sample, _ = health_sample(
        examples, class_column, layer=layer, max_samples_per_class=max_samples_per_class, seed=seed
    )
    return fit_pixel_model(
        sample.x,
        sample.y,
        HEALTH_CLASSES,
        features=CROP_FEATURES,
        pixel_m=HEALTH_PIXEL_M,
        boosting=HEALTH_BOOSTING,
        seed=seed,
        model_type=HealthModel,
    )


def validate_health(
    examples: HealthExamples,
    class_column: str = "health",
    *,
    block_m: float | None = 50.0,
    n_folds: int = 5,
    layer: str | None = None,
    max_samples_per_class: int = 20000,
    seed: int = 0,
) -> CrossValidationReport:
    """Cross-validate :func:`train_health_on` on the same examples: by spatial blocks of
    ``block_m`` with a buffer of the features' reach (see :mod:`models.validation`), or by
    random pixels when ``block_m`` is None (optimistic; for comparison only)."""
    sample, labels = health_sample(
        examples, class_column, layer=layer, max_samples_per_class=max_samples_per_class, seed=seed
    )
    report = cross_validate(
        sample,
        HEALTH_CLASSES,
        block_m=block_m,
        buffer_m=_feature_reach_m([one.image for one in labels]),
        n_folds=n_folds,
        boosting=HEALTH_BOOSTING,
        seed=seed,
    )
    names = {one.source: Path(one.source).name for one in labels}
    several = len(names) > 1
    return replace(
        report,
        sources=tuple(f"{names[one.source]} over {one.image.name}" for one in labels),
        notes=tuple(
            dict.fromkeys(
                f"{names[one.source]}: {note}" if several else note
                for one in labels
                for note in one.notes
            )
        ),
    )


def health_sample(
    examples: HealthExamples,
    class_column: str,
    *,
    layer: str | None = None,
    max_samples_per_class: int = 20000,
    seed: int = 0,
) -> tuple[PixelSample, list[Labels]]:
    """Labelled pixels of every example (at most ``max_samples_per_class`` per class in all),
    and the checked labels they came from."""
    per_image = max(1, max_samples_per_class // len(examples))
    labels = [
        checked_labels(given, class_column, HEALTH_CLASSES, image, layer=layer)
        for image, given in examples
    ]
    require_two_classes(labels)
    for source, note in dict.fromkeys((one.source, note) for one in labels for note in one.notes):
        LOG.warning("%s: %s", source, note)
    sample = PixelSample.concat(
        [
            sample_labelled_pixels(
                one.image,
                one.shapes,
                len(HEALTH_CLASSES),
                features=CROP_FEATURES,
                pixel_m=HEALTH_PIXEL_M,
                max_samples_per_class=per_image,
                seed=seed + k,
            )
            for k, one in enumerate(labels)
        ]
    )
    present = [HEALTH_CLASSES[code - 1] for code in np.unique(sample.y)]
    if len(present) < 2:
        raise InputError(
            labels[0].source,
            f"only {present} has labelled pixels where the image is valid; training needs two",
        )
    return sample, labels


def _feature_reach_m(images: Sequence[Path]) -> float:
    """How far (m) the pixel features look around a pixel, over images that share one
    projected CRS (spatial blocks need one grid)."""
    reach_m, crs_names = [], set()
    for image in images:
        with open_rgb(image) as src:
            if not src.crs.is_projected:
                raise InputError(image, "spatial cross-validation needs a projected CRS in metres")
            crs_names.add(src.crs.to_string())
            cell_m = working_grid(src, HEALTH_PIXEL_M).factor * pixel_size_m(src)
            reach_m.append(CROP_FEATURES.margin_px * cell_m)
    if len(crs_names) > 1:
        raise InputError(
            images[0], f"images in several CRSs {sorted(crs_names)}: reproject them to one"
        )
    return max(reach_m)


@bounded_gdal_cache()
def classify_health(
    model: PixelModel,
    image_path: str | Path,
    out_path: str | Path,
    *,
    mask_polygons: gpd.GeoDataFrame | None = None,
    smoothing_m: float = 1.0,
    stride_px: int = 3,
) -> Raster:
    """Write the uint8 class raster of ``image_path`` (nodata 0) on the model's working grid
    (:func:`models.windows.working_grid`), only inside ``mask_polygons`` (e.g. the agricultural
    parcels) when given, tagged with the model's ``training`` (``unsupervised`` models have no
    measured accuracy). Class probabilities are averaged over a Gaussian of ``smoothing_m``
    before the vote; the classifier runs on every ``stride_px``-th working pixel (1.2 m
    apart by default: as accurate on held-out worlds as every 2nd, 1.4x faster; see
    :func:`predict_blocks`)."""
    if tuple(model.classes) != HEALTH_CLASSES:
        raise ProcessingError(f"not a crop health model: its classes are {model.classes}")
    with open_rgb(image_path) as src:
        within = None
        if mask_polygons is not None:
            mask_polygons = labels_in_crs(mask_polygons, src, image_path)
            within = [(geom, 1) for geom in mask_polygons.geometry if geom is not None]
        grid = working_grid(src, model.pixel_m)
        profile = output_profile(src, dtype="uint8", count=1, nodata=NODATA_CODE, grid=grid)
        with atomic_writer(out_path, profile) as dst:
            dst.write_colormap(1, HEALTH_COLOURS)
            dst.update_tags(training=model.training, classes=",".join(HEALTH_CLASSES))
            sigma_px = smoothing_m / (grid.factor * pixel_size_m(src))
            margin_px = model.features.margin_px + math.ceil(3 * sigma_px)
            for block, proba, predicted in predict_blocks(
                model, src, within=within, margin_px=margin_px, stride_px=stride_px
            ):
                if sigma_px > 0:
                    proba = np.stack([cv2.GaussianBlur(p, (0, 0), sigma_px) for p in proba])
                codes = (np.argmax(proba, axis=0) + 1).astype(np.uint8)
                codes[~predicted] = NODATA_CODE
                dst.write(codes[block.inner], 1, window=block.window)
    return raster_ref(out_path)


@bounded_gdal_cache()
def parcel_health(
    class_raster: Raster | str | Path,
    index_raster_or_image: Raster | str | Path,
    parcels: gpd.GeoDataFrame,
    *,
    id_column: str = "parcel_id",
) -> gpd.GeoDataFrame:
    """Per parcel: mean vegetation index, % of classified pixels per health class, dominant class.

    ``index_raster_or_image`` is a one-band index raster (from :func:`index_raster`) or the RGB
    image itself (VARI, clipped to [-1, 1], is then computed); each raster is read on its own grid.
    """
    class_path = _path(class_raster)
    index_path = _path(index_raster_or_image)
    if id_column not in parcels.columns:
        raise InputError("parcels", f"no column {id_column!r}")
    n_parcels, n_codes = len(parcels), len(HEALTH_CLASSES) + 1
    counts = np.zeros((n_parcels + 1) * n_codes, dtype=np.int64)
    with rasterio.open(class_path) as classes:
        for window, parcel_ids in _parcel_blocks(classes, parcels):
            codes = classes.read(1, window=window).astype(np.int64)
            counts += np.bincount((parcel_ids * n_codes + codes).ravel(), minlength=counts.size)
        pixel_m2 = abs(classes.transform.a * classes.transform.e)
    index_sum = np.zeros(n_parcels + 1)
    index_n = np.zeros(n_parcels + 1, dtype=np.int64)
    with rasterio.open(index_path) as values:
        index_name = (values.descriptions[0] or "index") if values.count == 1 else "vari"
        for window, parcel_ids in _parcel_blocks(values, parcels):
            index = _index_values(values, window)
            finite = np.isfinite(index) & (parcel_ids > 0)
            index_sum += np.bincount(
                parcel_ids[finite], weights=index[finite], minlength=n_parcels + 1
            )
            index_n += np.bincount(parcel_ids[finite], minlength=n_parcels + 1)

    per_class = counts.reshape(n_parcels + 1, n_codes)[1:, 1:]
    classified = per_class.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = 100.0 * per_class / classified[:, None]
        mean_index = index_sum[1:] / index_n[1:]
    result = gpd.GeoDataFrame(
        {id_column: parcels[id_column].to_numpy(), f"mean_{index_name}": mean_index},
        geometry=parcels.geometry.to_numpy(),
        crs=parcels.crs,
    )
    for i, name in enumerate(HEALTH_CLASSES):
        result[f"{name}_pct"] = shares[:, i]
    result["dominant"] = [
        HEALTH_CLASSES[int(np.argmax(row))] if total > 0 else None
        for row, total in zip(per_class, classified, strict=True)
    ]
    result["classified_m2"] = classified * pixel_m2
    return result


def _parcel_blocks(
    src: rasterio.io.DatasetReader, parcels: gpd.GeoDataFrame
) -> Iterator[tuple[rasterio.windows.Window, np.ndarray]]:
    """Blocks of ``src`` and the 1-based parcel index burnt on each (0: no parcel)."""
    shapes = [
        (geom, i + 1) for i, geom in enumerate(parcels.to_crs(src.crs).geometry) if geom is not None
    ]
    for block in blocks(src.width, src.height):
        yield block.window, burn(shapes, src.transform, block.window, dtype="int32")


def _index_values(values: rasterio.io.DatasetReader, window: rasterio.windows.Window) -> np.ndarray:
    if values.count == 1:
        return values.read(1, window=window, masked=True).astype(np.float64).filled(np.nan)
    rgb = values.read((1, 2, 3), window=window)
    index = np.clip(compute_index("vari", rgb), -1.0, 1.0).astype(np.float64)
    index[values.dataset_mask(window=window) == 0] = np.nan
    return index


def _path(raster: Raster | str | Path) -> Path:
    return raster.path if isinstance(raster, Raster) else Path(raster)
