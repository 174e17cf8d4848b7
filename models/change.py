"""Building change between two epochs: new footprints and footprints that grew."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from rasterio import features as rio_features
from rasterio import windows as rio_windows
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from core.errors import ProcessingError
from models.construction import hysteresis
from models.training import PixelModel, pixel_probabilities, shadow_on_grid
from models.windows import open_georaster, open_rgb, read_rgb, working_grid


def new_buildings(
    before: gpd.GeoDataFrame,
    after: gpd.GeoDataFrame,
    *,
    min_overlap: float = 0.3,
    min_area_m2: float = 25.0,
) -> gpd.GeoDataFrame:
    """Detections of ``after`` that are new or grown since ``before``, with columns ``change``
    and ``added_m2`` (the area not covered before).

    A change smaller than ``min_area_m2`` is never one: below a small room's size it is a
    piece of a roof that one epoch's detection cut differently (a shaded corner, a tank).

    A detection covered by earlier detections for less than ``min_overlap`` of its area is
    ``"new"``; one that takes in at least half of an earlier detection and adds at least
    ``min_area_m2`` of room-wide area beyond them (:func:`added_part`) is ``"grown"``; the
    others are unchanged and dropped. The added room makes growth, not the area: a 40 m²
    annex adds only 10 % to a 400 m² house, less than two epochs' outlines of one roof can
    differ.
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
        elif added >= min_area_m2 and _takes_in(geom, overlapping):
            changes.append("grown")
        else:
            changes.append(None)
    result = after.assign(change=changes, added_m2=added_m2)
    return result[np.array([c is not None for c in changes], dtype=bool)].reset_index(drop=True)


def _takes_in(geom: BaseGeometry, earlier: np.ndarray) -> bool:
    """Whether ``geom`` holds at least half of one of the ``earlier`` outlines, as a building
    holds the one it grew from (not a neighbour it touches)."""
    return any(geom.intersection(e).area >= 0.5 * e.area for e in earlier)


EDGE_TOLERANCE_M = 0.5
"""How far two epochs' outlines of one roof may differ (detection and co-registration)."""

MIN_EXTENSION_WIDTH_M = 2.5
"""The narrowest an extension can be: a room, a garage, a stairwell is at least this wide.
Narrower strips along a roof's edge are the same roof outlined differently (a parapet's
shadow under a low sun, a tree over the eave), not something built."""


def added_part(geom: BaseGeometry, previous: BaseGeometry) -> BaseGeometry:
    """The part of ``geom`` beyond ``previous`` by more than :data:`EDGE_TOLERANCE_M`, without
    the strips narrower than :data:`MIN_EXTENSION_WIDTH_M` (a morphological opening)."""
    beyond = geom.difference(previous.buffer(EDGE_TOLERANCE_M))
    half = MIN_EXTENSION_WIDTH_M / 2
    opened = beyond.buffer(-half, join_style="mitre").buffer(half, join_style="mitre")
    return opened.intersection(beyond)


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
        shadow = shadow_on_grid(model.features, src, working_grid(src, None))  # sun at capture
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
                probability = pixel_probabilities(model, rgb, valid, shadow_px_per_m=shadow)[0]
                built = (
                    hysteresis(probability, valid, threshold, low_threshold) > 0
                    if connected
                    else probability >= low_threshold
                )
                shares[i] = float(built[inside].mean())
    return shares


MIN_COLOUR_CHANGE = 0.04
"""Median chromaticity change (:func:`colour_change`) an added part needs to be new surface:
light and season move an unchanged roof's by 0.002-0.03 between the simulator's winter and
summer mosaics, soil or a yard built over moves by 0.04-0.09."""


def colour_change(
    before_image: str | Path, after_image: str | Path, polygons: gpd.GeoDataFrame
) -> np.ndarray:
    """Median change of each polygon's chromaticity (r, g, b over their sum, per pixel) from
    ``before_image`` to ``after_image`` (read onto the earlier image's grid); nan where they do
    not both cover it. Shade and season scale a surface's brightness, not its colour."""

    def distance(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return np.linalg.norm(_chromaticity(first) - _chromaticity(second), axis=0)

    return _paired_medians(before_image, after_image, polygons, open_rgb, (1, 2, 3), distance)


MIN_BUILT_AFTER_SHARE = 0.6
"""Share of an added part the classifier must call built-up (probability at least its
``threshold``, pixel by pixel) in the later image to confirm it without a colour change: the
simulator's extensions are built-up over 0.78-1.0 of their added part, the parts a wobbling
outline adds (a yard, a roof's edge) over 0.3-0.4."""

MAX_RELATIVE_BRIGHTENING = 1.5
"""The most an added part may brighten against its surroundings (:func:`relative_brightening`)
to be confirmed by the classifier rather than by colour: a shade lifted (a roof's part in the
shadow of a wall, a tree or a neighbour under a low sun) brightens its surface 2 to 5 times (sun
over skylight) while the sunlit ground around it does not; a surface replaced by a built one of
a like colour keeps its brightness against the ground to within tens of percent."""

SURROUNDINGS_M = 3.0
"""Width of the ring of ground around an added part that its brightening is measured against."""


def relative_brightening(
    before_image: str | Path,
    after_image: str | Path,
    polygons: gpd.GeoDataFrame,
    surroundings: gpd.GeoDataFrame,
) -> np.ndarray:
    """How many times each polygon brightened from ``before_image`` to ``after_image`` (median
    of the per-pixel brightness ratio, r + g + b) over how many times its ``surroundings`` (one
    row per polygon) did; nan where either is not covered by both images. Season, sun height
    and exposure brighten a place and its surroundings alike; shade lifted from the place
    alone does not."""

    def log_ratio(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        before = np.maximum(first.astype(np.float32).sum(axis=0), 1.0)
        after = np.maximum(second.astype(np.float32).sum(axis=0), 1.0)
        return np.log(after / before)

    inside, around = (
        _paired_medians(before_image, after_image, frame, open_rgb, (1, 2, 3), log_ratio)
        for frame in (polygons, surroundings)
    )
    return np.exp(inside - around)


MIN_HEIGHT_RISE_M = 2.0
"""Median rise of the surface model an added part needs to be built when the colour did not
change: a storey is about 3 m; a drone DSM's noise is decimetres."""


def height_rise(
    before_dsm: str | Path, after_dsm: str | Path, polygons: gpd.GeoDataFrame
) -> np.ndarray:
    """Median rise of each polygon's surface (metres) from ``before_dsm`` to ``after_dsm``
    (read onto the earlier grid); nan where they do not both cover it."""

    def rise(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return second[0].astype(np.float32) - first[0].astype(np.float32)

    return _paired_medians(before_dsm, after_dsm, polygons, open_georaster, (1,), rise)


def _paired_medians(
    before_path: str | Path,
    after_path: str | Path,
    polygons: gpd.GeoDataFrame,
    opener: Callable[[str | Path], DatasetReader],
    bands: tuple[int, ...],
    difference: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Median over each polygon of ``difference(before, after)``, per pixel, of ``bands`` of
    two rasters, the later read onto the earlier one's grid; nan where they do not both
    cover it."""
    medians = np.full(len(polygons), np.nan)
    with opener(before_path) as before_src, opener(after_path) as after_src:
        full = Window(0, 0, before_src.width, before_src.height)
        for i, geom in enumerate(polygons.to_crs(before_src.crs).geometry):
            if geom.is_empty:
                continue
            try:
                window = (
                    rio_windows.from_bounds(*geom.bounds, transform=before_src.transform)
                    .round_offsets()
                    .round_lengths()
                    .intersection(full)
                )
            except rio_windows.WindowError:
                continue
            transform = before_src.window_transform(window)
            shape = (int(window.height), int(window.width))
            first = before_src.read(bands, window=window)
            first_valid = before_src.dataset_mask(window=window) > 0
            with WarpedVRT(
                after_src,
                crs=before_src.crs,
                transform=transform,
                width=shape[1],
                height=shape[0],
                resampling=Resampling.bilinear,
            ) as after_vrt:
                second = after_vrt.read(bands)
                second_valid = after_vrt.dataset_mask() > 0
            inside = rio_features.rasterize([(geom, 1)], out_shape=shape, transform=transform)
            both = inside.astype(bool) & first_valid & second_valid
            if both.any():
                medians[i] = float(np.median(difference(first, second)[both]))
    return medians


def _chromaticity(rgb: np.ndarray) -> np.ndarray:
    total = rgb.astype(np.float32).sum(axis=0, keepdims=True)
    return rgb / np.maximum(total, 1.0)


def confirm_changes(
    model: PixelModel,
    before_image: str | Path,
    before: gpd.GeoDataFrame,
    changed: gpd.GeoDataFrame,
    *,
    after_image: str | Path,
    new_below: float = 0.3,
    threshold: float = 0.5,
    low_threshold: float = 0.25,
    min_colour_change: float = MIN_COLOUR_CHANGE,
    min_built_after: float = MIN_BUILT_AFTER_SHARE,
    max_brightening: float = MAX_RELATIVE_BRIGHTENING,
    dsms: tuple[str | Path, str | Path] | None = None,
    min_height_rise_m: float = MIN_HEIGHT_RISE_M,
) -> gpd.GeoDataFrame:
    """Keep only the changes that the two images themselves confirm.

    Comparing two epochs' polygons turns every building missed in the first epoch into a
    "new" one; looking at the earlier pixels does not: a "new" structure needs less than
    ``new_below`` of its footprint built-up before (``built_before_share``). A "grown" one
    needs its added part (beyond the earlier detections ``before``) less than ``new_below``
    even weakly built-up before, and a new look after, by either of two cues:

    - its colour changed by ``min_colour_change`` (:func:`colour_change`, ``colour_change``)
      from ``before_image`` to ``after_image``: soil or a yard built over;
    - the classifier calls at least ``min_built_after`` of it built-up in ``after_image``
      (``built_after_share``) and it brightened at most ``max_brightening`` times as much as
      the ground around it (:func:`relative_brightening`, ``relative_brightening``): a slab
      of the colour of the paving it covers.

    A roof found smaller under the low winter sun was there: its shaded part looked half built
    or not at all, but it kept its colour and, the shade lifted, brightened far more than the
    sunlit ground around it. Unconfirmed rows are dropped, and so are the changes
    ``before_image`` has no valid pixel under (nan ``built_before_share``: a no-data hole such
    as a failed mosaic tile, or beyond its edge), which nothing can confirm.

    With the epochs' surface models (``dsms``: before, after), an added part is built all the
    same when its surface rose by ``min_height_rise_m`` (:func:`height_rise`,
    ``height_rise_m``): an annex roofed in the colour of the ground it covers.
    """
    grown = changed["change"].to_numpy() == "grown"
    shares = np.full(len(changed), np.nan)
    colour = np.full(len(changed), np.nan)
    built_after = np.full(len(changed), np.nan)
    brightening = np.full(len(changed), np.nan)
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
        colour[grown] = colour_change(before_image, after_image, added)
        built_after[grown] = built_share(
            model, after_image, added, low_threshold=threshold, connected=False
        )
        brightening[grown] = relative_brightening(
            before_image, after_image, added, _surroundings(added, changed, earlier)
        )
    changed_look = (colour >= min_colour_change) | (
        (built_after >= min_built_after) & (brightening <= max_brightening)
    )
    result = changed.assign(
        built_before_share=shares,
        colour_change=colour,
        built_after_share=built_after,
        relative_brightening=brightening,
    )
    if dsms is not None:
        rise = np.full(len(changed), np.nan)
        if grown.any():
            rise[grown] = height_rise(*dsms, added)
        changed_look |= rise >= min_height_rise_m
        result = result.assign(height_rise_m=rise)
    confirmed = (shares < new_below) & (changed_look | ~grown)
    return result[confirmed].reset_index(drop=True)


def _surroundings(
    added: gpd.GeoDataFrame, changed: gpd.GeoDataFrame, earlier: BaseGeometry
) -> gpd.GeoDataFrame:
    """The ground within :data:`SURROUNDINGS_M` of each added part: off every structure of
    either epoch (``changed``, ``earlier``) by :data:`EDGE_TOLERANCE_M`."""
    structures = shapely.union_all([earlier, *changed.geometry.to_numpy()])
    off = structures.buffer(EDGE_TOLERANCE_M)
    return added.set_geometry([g.buffer(SURROUNDINGS_M).difference(off) for g in added.geometry])
