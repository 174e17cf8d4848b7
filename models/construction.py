"""Built-up detection: a pixel classifier (building vs background) and its polygonisation.

Probabilities are thresholded by blocks with hysteresis (pixels above a low threshold kept when
connected to pixels above the high one: a plain roof's middle looks like paving, its parapet and
rooftop details do not), cleaned with morphology, polygonised with ``rasterio.features.shapes``;
blobs cut by block seams are merged, their holes filled, small ones dropped, and the rest
regularised (:func:`models.regularise.regularise_footprint`: a rotated rectangle or a
right-angled outline where the blob is one).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
import shapely
from rasterio import features as rio_features
from rasterio import windows as rio_windows
from rasterio.io import DatasetReader
from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry

from core.errors import InputError, ProcessingError
from core.io import bounded_gdal_cache
from core.types import Grid
from models.features import BUILDING_FEATURES
from models.height import check_dsm, normalised_dsm, with_height
from models.regularise import regularise_footprint
from models.training import (
    PixelModel,
    fit_pixel_model,
    labels_in_crs,
    predict_blocks,
    sample_pixels,
)
from models.windows import BLOCK_PX, Block, open_rgb, pixel_size_m, read_rgb_on, working_grid

BUILDING_CLASSES: tuple[str, ...] = ("building", "background")
SEAM_GRID_M = 0.001
NEGATIVE_POOL_FACTOR = 10  # background pixels drawn per kept negative, to mine hard ones from
JUDGED_CODES = {"building": 1, "not_building": 2}
"""Labels of inspector-judged footprints (``gis.feedback.SAMPLE_LABELS``) as class codes."""
UNKNOWN_SUN_SHARE = 0.2
"""Training pixels whose sun-dependent features are hidden (as for an image of unknown capture
time), so that the classifier learns to do without them too."""
JUDGED_SHARE = 0.25
"""Judged pixels kept per class, as a share of ``max_samples_per_class``: enough to correct a
mistake, not so many that a few footprints outweigh every other example."""


class BuildingModel(PixelModel):
    """A pixel classifier for built-up (code 1) against everything else (code 2)."""


def train_buildings(
    image_path: str | Path,
    buildings: gpd.GeoDataFrame,
    *,
    max_samples_per_class: int = 20000,
    boundary_m: float = 0.3,
    hard_negative_share: float = 0.5,
    seed: int = 0,
) -> BuildingModel:
    """Fit a built-up classifier on one image: positives inside ``buildings``, negatives
    anywhere else (see :func:`train_buildings_on`)."""
    return train_buildings_on(
        [(image_path, buildings)],
        max_samples_per_class=max_samples_per_class,
        boundary_m=boundary_m,
        hard_negative_share=hard_negative_share,
        seed=seed,
    )


def train_buildings_on(
    examples: Sequence[tuple[str | Path, gpd.GeoDataFrame]],
    *,
    judged: Sequence[tuple[str | Path, gpd.GeoDataFrame]] = (),
    max_samples_per_class: int = 20000,
    boundary_m: float = 0.3,
    hard_negative_share: float = 0.5,
    seed: int = 0,
) -> BuildingModel:
    """Fit a built-up classifier on (image, footprints) pairs, e.g. several dates or places.

    Positives are pixels inside footprints, negatives pixels elsewhere; pixels within
    ``boundary_m`` of a footprint edge are left out (mixed pixels). Negatives are partly drawn
    at random and partly mined (``hard_negative_share``): the background pixels a first model
    finds most building-like (bright soil, roads, greenhouses, long shadows).

    ``judged`` are (image, footprints) pairs with a ``label`` column, ``building`` or
    ``not_building`` (inspectors' decisions, ``gis.feedback.feedback_samples``): their pixels
    add positives, or negatives that are always kept, never left to the draw: they are
    exactly the mistakes to fix.

    The shadow-side features use the sun at the capture time each image's tags state
    (``core.capture_time``); they are hidden in :data:`UNKNOWN_SUN_SHARE` of the pixels.
    """
    for image_path, footprints in judged:
        _check_labels(image_path, footprints)
    per_image = max(1, max_samples_per_class // len(examples))
    rng = np.random.default_rng(seed)
    positive_x, pool_x = [], []
    for k, (image_path, buildings) in enumerate(examples):
        with open_rgb(image_path) as src:
            buildings = labels_in_crs(buildings, src, image_path)
        footprints = [g for g in buildings.geometry if g is not None and not g.is_empty]
        shapes: list[tuple[BaseGeometry, int]] = [(g.buffer(boundary_m), 0) for g in footprints]
        shapes += [(_interior(g, boundary_m), 1) for g in footprints]
        x, y = sample_pixels(
            image_path,
            shapes,
            2,
            features=BUILDING_FEATURES,
            background_code=2,
            max_samples_per_class=NEGATIVE_POOL_FACTOR * per_image,
            seed=seed + k,
        )
        positive_x.append(_subsample(x[y == 1], per_image, rng))
        pool_x.append(x[y == 2])
    judged_positives, judged_negatives = _judged_pixels(
        judged, boundary_m, int(JUDGED_SHARE * max_samples_per_class), seed + len(examples)
    )
    positives = _hide_sun_features(np.concatenate(positive_x), rng)
    positives = np.concatenate([positives, *judged_positives])
    pool = _hide_sun_features(np.concatenate(pool_x), rng)
    first = _fit(
        positives,
        np.concatenate([_subsample(pool, max_samples_per_class, rng), *judged_negatives]),
        seed,
    )
    hardness = first.estimator.predict_proba(pool)[:, list(first.estimator.classes_).index(1)]
    order = np.argsort(-hardness)
    n_hard = int(round(max_samples_per_class * hard_negative_share))
    n_random = max_samples_per_class - n_hard
    chosen = np.concatenate([order[:n_hard], rng.permutation(order[n_hard:])[:n_random]])
    return _fit(positives, np.concatenate([pool[chosen], *judged_negatives]), seed)


def _hide_sun_features(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` with the shadow-side features of :data:`UNKNOWN_SUN_SHARE` of its rows missing."""
    names = BUILDING_FEATURES.names
    columns = [i for i, name in enumerate(names) if name.startswith("shadow_side")]
    rows = rng.random(len(x)) < UNKNOWN_SUN_SHARE
    x = x.copy()
    x[np.ix_(rows, columns)] = np.nan
    return x


def _judged_pixels(
    judged: Sequence[tuple[str | Path, gpd.GeoDataFrame]],
    boundary_m: float,
    max_judged_per_class: int,
    seed: int,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Features of pixels inside judged footprints (edges left out), per image: those labelled
    ``building`` and those labelled ``not_building``, at most ``max_judged_per_class`` of each
    in all (shared evenly between the images)."""
    per_image = max(1, max_judged_per_class // max(1, len(judged)))
    positives, negatives = [], []
    for k, (image_path, footprints) in enumerate(judged):
        with open_rgb(image_path) as src:
            footprints = labels_in_crs(footprints, src, image_path)
        shapes = [
            (_interior(g, boundary_m), JUDGED_CODES[label])
            for g, label in zip(footprints.geometry, footprints["label"], strict=True)
            if g is not None and not g.is_empty
        ]
        if not shapes:
            continue
        x, y = sample_pixels(
            image_path,
            shapes,
            2,
            features=BUILDING_FEATURES,
            max_samples_per_class=per_image,
            seed=seed + k,
        )
        positives.append(x[y == 1])
        negatives.append(x[y == 2])
    return positives, negatives


def _check_labels(image_path: str | Path, footprints: gpd.GeoDataFrame) -> None:
    """InputError naming the image unless every judged footprint has a known ``label``."""
    if "label" not in footprints:
        raise InputError(image_path, "judged footprints have no 'label' column")
    unknown = sorted(set(map(str, footprints["label"])) - set(JUDGED_CODES))
    if unknown:
        raise InputError(
            image_path,
            f"judged footprints labelled {', '.join(map(repr, unknown))}; "
            f"use {' or '.join(map(repr, JUDGED_CODES))}",
        )


@bounded_gdal_cache()
def detect_buildings(
    model: PixelModel,
    image_path: str | Path,
    *,
    min_area_m2: float = 12.0,
    threshold: float = 0.5,
    low_threshold: float = 0.25,
    opening_m: float = 0.5,
    closing_m: float = 1.0,
    min_solidity: float = 0.7,
    block_px: int = BLOCK_PX,
    parcels: gpd.GeoDataFrame | None = None,
    dsm: str | Path | None = None,
    captured_at: datetime | None = None,
    coarse_stride_px: int = 4,
) -> gpd.GeoDataFrame:
    """Building polygons (``score`` = mean probability, ``area_m2``) in the image's CRS.

    Pixels whose probability is at least ``low_threshold`` belong to a blob when they connect
    to pixels of at least ``threshold``. With ``parcels``, blobs are cut along parcel
    boundaries (:func:`split_by_parcels`). Blobs or pieces smaller than ``min_area_m2`` or less
    solid than ``min_solidity`` (area over convex hull area: roofs and slabs are compact,
    bare-earth look-alikes are ragged) are dropped. With a surface model ``dsm`` (any CRS and
    grid), probabilities are first revised by height above ground
    (:func:`models.height.with_height`). The classifier runs on every ``coarse_stride_px``-th
    pixel, then again on every pixel where an outline may pass
    (:func:`models.training.coarse_to_fine`); on every pixel with 1 or with a ``dsm`` (height
    revises the probabilities after). Shadow sides are measured from the sun at
    ``captured_at``, else at the capture time the image's tags state (without either they
    are missing and the classifier does without).
    """
    if tuple(model.classes) != BUILDING_CLASSES:
        raise ProcessingError(f"not a building model: its classes are {model.classes}")
    pieces: list[tuple[BaseGeometry, float, int, bool]] = []
    with open_rgb(image_path) as src:
        opening, closing = (
            _disk(size_m, abs(src.transform.a)) for size_m in (opening_m, closing_m)
        )
        grid = working_grid(src, model.pixel_m)
        image_grid = Grid(src.crs.to_string(), grid.transform, grid.width, grid.height)
        pixel_m = pixel_size_m(src) * grid.factor
        if dsm is not None:
            check_dsm(dsm, image_grid)
        for block, proba, valid in predict_blocks(
            model,
            src,
            block_px=block_px,
            margin_px=model.features.margin_px + len(closing),
            stride_px=1 if dsm is not None else coarse_stride_px,
            refine_near=(low_threshold, threshold),
            captured_at=captured_at,
        ):
            if dsm is not None:
                ndsm = normalised_dsm(dsm, image_grid, block.padded, pixel_m=pixel_m)
                rgb = read_rgb_on(src, grid, block.padded)[0]
                proba[0] = with_height(proba[0], ndsm, rgb, pixel_m)
            built = hysteresis(proba[0], valid, threshold, low_threshold)
            built = cv2.morphologyEx(built, cv2.MORPH_OPEN, opening)
            built = cv2.morphologyEx(built, cv2.MORPH_CLOSE, closing)
            pieces += _polygonise(built[block.inner], proba[0][block.inner], block, src)
        crs = src.crs
    filled = [
        (_without_holes(geom), total / n_px)
        for geom, total, n_px in _merge_seams(pieces)
        if geom.area >= min_area_m2
    ]
    blobs = gpd.GeoDataFrame(filled, columns=["geometry", "score"], geometry="geometry", crs=crs)
    if parcels is not None:
        blobs = split_by_parcels(blobs, parcels, min_area_m2=min_area_m2)
    blobs = keep_compact(blobs, min_solidity)
    result = blobs.set_geometry(blobs.geometry.map(regularise_footprint))
    result["area_m2"] = result.geometry.area
    return result


def _disk(size_m: float, pixel_m: float) -> np.ndarray:
    """An elliptic structuring element ``size_m`` across (odd, at least 3 pixels)."""
    size_px = max(3, int(round(size_m / pixel_m)) | 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size_px, size_px))


def hysteresis(probability: np.ndarray, valid: np.ndarray, high: float, low: float) -> np.ndarray:
    """1 where ``probability`` >= ``low`` in a 4-connected region that reaches ``high``."""
    weak = ((probability >= min(low, high)) & valid).astype(np.uint8)
    n_labels, labels = cv2.connectedComponents(weak, connectivity=4)
    seeded = np.zeros(n_labels, dtype=bool)
    seeded[np.unique(labels[(probability >= high) & valid])] = True
    seeded[0] = False
    return seeded[labels].astype(np.uint8)


def split_by_parcels(
    structures: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame, *, min_area_m2: float
) -> gpd.GeoDataFrame:
    """``structures`` cut along parcel boundaries: one piece per parcel it stands on (and
    one for any part on no parcel), pieces under ``min_area_m2`` dropped (``area_m2`` redone
    when present).

    A blob that runs over two neighbouring lots (row houses, a new house against the
    neighbour's wall) is ragged as a whole but each lot's piece may be a house, to compare
    with that lot's earlier state and check against that lot's permits.
    """
    boundaries = parcels[["geometry"]].to_crs(structures.crs)
    pieces = gpd.overlay(structures, boundaries, how="identity", keep_geom_type=True)
    pieces = pieces.explode(index_parts=False).reset_index(drop=True)
    pieces = pieces[pieces.geometry.area >= min_area_m2].reset_index(drop=True)
    if "area_m2" in structures:
        pieces = pieces.assign(area_m2=pieces.geometry.area)
    return pieces[list(structures.columns)]


def keep_compact(structures: gpd.GeoDataFrame, min_solidity: float) -> gpd.GeoDataFrame:
    """The structures whose area is at least ``min_solidity`` of their convex hull's."""
    solid = structures.geometry.area >= min_solidity * structures.geometry.convex_hull.area
    return structures[solid.to_numpy()].reset_index(drop=True)


def _interior(footprint: BaseGeometry, boundary_m: float) -> BaseGeometry:
    shrunk = footprint.buffer(-boundary_m)
    return footprint if shrunk.is_empty else shrunk


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= n else x[rng.choice(len(x), n, replace=False)]


def _fit(positives: np.ndarray, negatives: np.ndarray, seed: int) -> BuildingModel:
    x = np.concatenate([positives, negatives])
    y = np.concatenate([np.ones(len(positives), np.int16), np.full(len(negatives), 2, np.int16)])
    return fit_pixel_model(
        x, y, BUILDING_CLASSES, features=BUILDING_FEATURES, seed=seed, model_type=BuildingModel
    )


def _polygonise(
    built: np.ndarray, probability: np.ndarray, block: Block, src: DatasetReader
) -> list[tuple[BaseGeometry, float, int, bool]]:
    """Connected blobs of ``built`` as (polygon, sum of probability, pixels, touches a seam)."""
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(built, connectivity=4)
    if n_labels <= 1:
        return []
    sums = np.bincount(labels.ravel(), weights=probability.ravel(), minlength=n_labels)
    transform = rio_windows.transform(block.window, src.transform)
    parts: dict[int, list[BaseGeometry]] = {}
    for geojson, value in rio_features.shapes(
        labels, mask=labels > 0, connectivity=4, transform=transform
    ):
        parts.setdefault(int(value), []).append(shape(geojson))
    height, width = built.shape
    row0, col0 = int(block.window.row_off), int(block.window.col_off)
    seams = (row0 > 0, col0 > 0, row0 + height < src.height, col0 + width < src.width)
    pieces = []
    for label, geoms in parts.items():
        left, top, w, h = stats[label, :4]
        touches = (
            (seams[0] and top == 0)
            or (seams[1] and left == 0)
            or (seams[2] and top + h == height)
            or (seams[3] and left + w == width)
        )
        pieces.append((shapely.union_all(geoms), float(sums[label]), int(stats[label, 4]), touches))
    return pieces


def _merge_seams(
    pieces: list[tuple[BaseGeometry, float, int, bool]],
) -> list[tuple[BaseGeometry, float, int]]:
    """Union blobs cut by block seams; their probability sums and pixel counts add up."""
    whole = [(geom, total, n) for geom, total, n, touches in pieces if not touches]
    cut = [(geom, total, n) for geom, total, n, touches in pieces if touches]
    if not cut:
        return whole
    tree = shapely.STRtree([geom for geom, _, _ in cut])
    # blocks' transforms differ in the last bits: snap to a millimetre so seams close
    merged = shapely.union_all([geom for geom, _, _ in cut], grid_size=SEAM_GRID_M)
    for part in getattr(merged, "geoms", [merged]):
        members = tree.query(part, predicate="intersects")
        whole.append((part, sum(cut[i][1] for i in members), sum(cut[i][2] for i in members)))
    return whole


def _without_holes(blob: BaseGeometry) -> BaseGeometry:
    """``blob``'s outline without holes (water tanks, dishes, a plain roof's middle ringed by
    its parapet); a MultiPolygon from merged seams is returned as it is."""
    return Polygon(blob.exterior) if isinstance(blob, Polygon) else blob
