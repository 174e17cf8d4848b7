"""Building change between two epochs: new footprints and footprints that grew."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from rasterio import features as rio_features
from rasterio import windows as rio_windows
from rasterio.windows import Window

from core.errors import ProcessingError
from models.construction import hysteresis
from models.training import PixelModel, pixel_probabilities
from models.windows import open_rgb, read_rgb


def new_buildings(
    before: gpd.GeoDataFrame,
    after: gpd.GeoDataFrame,
    *,
    min_overlap: float = 0.3,
    growth_ratio: float = 1.3,
    min_area_m2: float = 25.0,
) -> gpd.GeoDataFrame:
    """Detections of ``after`` that are new or grown since ``before``, with a ``change`` column.

    Detections smaller than ``min_area_m2`` are never a change: below a small room's size they
    are pieces of a roof that one epoch's detection cut differently (a shaded corner, a tank).

    A detection covered by earlier detections for less than ``min_overlap`` of its area is
    ``"new"``; one that is covered but whose area exceeds ``growth_ratio`` times the area of the
    earlier detections it overlaps is ``"grown"``; the others are unchanged and dropped.
    """
    if before.crs != after.crs:
        raise ProcessingError(f"epochs are in different CRS: {before.crs} and {after.crs}")
    earlier = before.geometry.to_numpy()
    tree = shapely.STRtree(earlier)
    after_idx, before_idx = tree.query(after.geometry.to_numpy(), predicate="intersects")
    changes: list[str | None] = []
    for i, geom in enumerate(after.geometry):
        if geom.area < min_area_m2:
            changes.append(None)
            continue
        overlapping = earlier[before_idx[after_idx == i]]
        if len(overlapping) == 0:
            changes.append("new")
            continue
        previous = shapely.union_all(overlapping)
        covered = geom.intersection(previous).area / geom.area if geom.area > 0 else 0.0
        if covered < min_overlap:
            changes.append("new")
        elif geom.area > growth_ratio * previous.area:
            changes.append("grown")
        else:
            changes.append(None)
    result = after.assign(change=changes)
    return result[np.array([c is not None for c in changes], dtype=bool)].reset_index(drop=True)


def built_share(
    model: PixelModel,
    image_path: str | Path,
    polygons: gpd.GeoDataFrame,
    *,
    threshold: float = 0.5,
    low_threshold: float = 0.25,
) -> np.ndarray:
    """Share of each polygon's valid pixels that ``model`` calls built-up in ``image_path``
    (nan where the image does not cover the polygon), with the hysteresis of
    :func:`models.construction.detect_buildings`. ``model`` codes built-up as class 1."""
    shares = np.full(len(polygons), np.nan)
    margin_px = model.features.margin_px
    with open_rgb(image_path) as src:
        full = Window(0, 0, src.width, src.height)
        for i, geom in enumerate(polygons.to_crs(src.crs).geometry):
            inner = rio_windows.from_bounds(*geom.bounds, transform=src.transform)
            try:
                window = (
                    Window(
                        inner.col_off - margin_px,
                        inner.row_off - margin_px,
                        inner.width + 2 * margin_px,
                        inner.height + 2 * margin_px,
                    )
                    .round_offsets()
                    .round_lengths()
                    .intersection(full)
                )
            except rio_windows.WindowError:
                continue
            rgb, valid = read_rgb(src, window)
            inside = (
                rio_features.rasterize(
                    [(geom, 1)], out_shape=valid.shape, transform=src.window_transform(window)
                ).astype(bool)
                & valid
            )
            if inside.any():
                probability = pixel_probabilities(model, rgb, valid)[0]
                built = hysteresis(probability, valid, threshold, low_threshold) > 0
                shares[i] = float(built[inside].mean())
    return shares


def confirm_changes(
    model: PixelModel,
    before_image: str | Path,
    changed: gpd.GeoDataFrame,
    *,
    new_below: float = 0.3,
    growth_ratio: float = 1.3,
    threshold: float = 0.5,
    low_threshold: float = 0.25,
) -> gpd.GeoDataFrame:
    """Keep only the changes that the earlier image itself confirms.

    Comparing two epochs' polygons turns every building missed in the first epoch into a
    "new" one; looking at the earlier pixels under each changed footprint does not: a "new"
    structure needs less than ``new_below`` of its footprint built-up before, a "grown" one
    less than ``1 / growth_ratio``. Adds ``built_before_share``; unconfirmed rows are dropped.
    """
    shares = built_share(
        model, before_image, changed, threshold=threshold, low_threshold=low_threshold
    )
    limit = np.where(changed["change"].to_numpy() == "new", new_below, 1.0 / growth_ratio)
    confirmed = np.isnan(shares) | (shares < limit)
    return changed.assign(built_before_share=shares)[confirmed].reset_index(drop=True)
