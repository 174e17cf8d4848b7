"""Building change between two epochs: new footprints and footprints that grew."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from core.errors import ProcessingError


def new_buildings(
    before: gpd.GeoDataFrame,
    after: gpd.GeoDataFrame,
    *,
    min_overlap: float = 0.3,
    growth_ratio: float = 1.3,
) -> gpd.GeoDataFrame:
    """Detections of ``after`` that are new or grown since ``before``, with a ``change`` column.

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
