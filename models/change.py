"""Building change between two epochs: new footprints and footprints that grew."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from rasterio import features as rio_features
from rasterio import windows as rio_windows
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

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
    """Detections of ``after`` that are new or grown since ``before``, with columns ``change``
    and ``added_m2`` (the area not covered before).

    A change smaller than ``min_area_m2`` is never one: below a small room's size it is a
    piece of a roof that one epoch's detection cut differently (a shaded corner, a tank).

    A detection covered by earlier detections for less than ``min_overlap`` of its area is
    ``"new"``; one that is covered but whose area exceeds ``growth_ratio`` times the area of the
    earlier detections it overlaps, and that adds at least ``min_area_m2`` beyond them (more
    than :data:`EDGE_TOLERANCE_M` away), is ``"grown"``; the others are unchanged and dropped.
    """
    if before.crs != after.crs:
        raise ProcessingError(f"epochs are in different CRS: {before.crs} and {after.crs}")
    earlier = before.geometry.to_numpy()
    tree = shapely.STRtree(earlier)
    after_idx, before_idx = tree.query(after.geometry.to_numpy(), predicate="intersects")
    changes: list[str | None] = []
    added_m2: list[float] = []
    for i, geom in enumerate(after.geometry):
        overlapping = earlier[before_idx[after_idx == i]]
        previous = shapely.union_all(overlapping) if len(overlapping) else None
        added = geom.area if previous is None else added_part(geom, previous).area
        added_m2.append(added)
        if geom.area < min_area_m2:
            changes.append(None)
        elif previous is None or geom.intersection(previous).area < min_overlap * geom.area:
            changes.append("new")
        elif geom.area > growth_ratio * previous.area and added >= min_area_m2:
            changes.append("grown")
        else:
            changes.append(None)
    result = after.assign(change=changes, added_m2=added_m2)
    return result[np.array([c is not None for c in changes], dtype=bool)].reset_index(drop=True)


EDGE_TOLERANCE_M = 0.5
"""How far two epochs' outlines of one roof may differ (detection and co-registration)."""


def added_part(geom: BaseGeometry, previous: BaseGeometry) -> BaseGeometry:
    """The part of ``geom`` beyond ``previous`` by more than :data:`EDGE_TOLERANCE_M`."""
    return geom.difference(previous.buffer(EDGE_TOLERANCE_M))


def built_share(
    model: PixelModel,
    image_path: str | Path,
    polygons: gpd.GeoDataFrame,
    *,
    threshold: float = 0.5,
    low_threshold: float = 0.25,
    connected: bool = True,
) -> np.ndarray:
    """Share of each polygon's valid pixels that ``model`` calls built-up in ``image_path``
    (nan where the image does not cover the polygon): with the hysteresis of
    :func:`models.construction.detect_buildings`, or, with ``connected=False``, every pixel of
    probability at least ``low_threshold`` (anything that looked even weakly built-up).
    ``model`` codes built-up as class 1."""
    shares = np.full(len(polygons), np.nan)
    margin_px = model.features.margin_px
    with open_rgb(image_path) as src:
        full = Window(0, 0, src.width, src.height)
        for i, geom in enumerate(polygons.to_crs(src.crs).geometry):
            if geom.is_empty:
                continue
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
                built = (
                    hysteresis(probability, valid, threshold, low_threshold) > 0
                    if connected
                    else probability >= low_threshold
                )
                shares[i] = float(built[inside].mean())
    return shares


def confirm_changes(
    model: PixelModel,
    before_image: str | Path,
    before: gpd.GeoDataFrame,
    changed: gpd.GeoDataFrame,
    *,
    new_below: float = 0.3,
    threshold: float = 0.5,
    low_threshold: float = 0.25,
) -> gpd.GeoDataFrame:
    """Keep only the changes that the earlier image itself confirms.

    Comparing two epochs' polygons turns every building missed in the first epoch into a
    "new" one; looking at the earlier pixels does not: a "new" structure needs less than
    ``new_below`` of its footprint built-up before (``built_before_share``), a "grown" one
    less than ``new_below`` of its added part (beyond the earlier detections ``before``)
    even weakly built-up — a roof found smaller under the low winter sun was there, its
    shaded part looked half built. Unconfirmed rows are dropped.
    """
    grown = changed["change"].to_numpy() == "grown"
    shares = np.full(len(changed), np.nan)
    if (~grown).any():
        shares[~grown] = built_share(
            model, before_image, changed[~grown], threshold=threshold, low_threshold=low_threshold
        )
    if grown.any():
        earlier = shapely.union_all(before.to_crs(changed.crs).geometry.to_numpy())
        added = changed[grown].set_geometry(
            [added_part(g, earlier) for g in changed.geometry[grown]]
        )
        shares[grown] = built_share(
            model, before_image, added, low_threshold=low_threshold, connected=False
        )
    confirmed = np.isnan(shares) | (shares < new_below)
    return changed.assign(built_before_share=shares)[confirmed].reset_index(drop=True)
