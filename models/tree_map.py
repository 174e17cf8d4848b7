"""Tree crowns of any orthophoto: crowns as polygons and points, and counts per parcel.

The orchard analysis of the flows (``flows.trees_task``: :func:`models.trees.detect_trees`)
for a user's GeoTIFF: copied onto a grid in metres at ``WORK_GSD_M`` (10 cm; a coarser image
keeps its own GSD) by :mod:`models.working_copy`, crowns found there from RGB or NIR, and the
layers ``tree_crowns``, ``tree_points`` and, with parcels, ``missing_trees`` (planting
positions where a row lacks its tree, :func:`models.trees.missing_trees`, with ``parcel_id``
and ``row_id``, as the survey flow writes them) and ``trees_per_parcel`` (with a
``missing_trees`` count) written in the input's CRS.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import rasterio

from core.io import write_geopackage
from models.parcel_input import read_user_parcels
from models.trees import (
    WORK_GSD_M,
    crown_centres,
    detect_trees,
    missing_trees,
    trees_per_parcel,
)
from models.working_copy import inspect_image, make_working_copy


@dataclass(frozen=True)
class TreeMap:
    """What :func:`tree_map` wrote and found."""

    geopackage: Path
    trees: int
    parcels: int | None
    mean_crown_diameter_m: float
    missing: int | None = None
    """Trees missing from their rows (with parcels only)."""

    def summary(self) -> str:
        """One line for the command line."""
        where = ""
        if self.parcels is not None:
            where = f" in {self.parcels} parcels ({self.missing} missing from their rows)"
        return (
            f"{self.geopackage}: {self.trees} tree crowns{where}, mean crown diameter "
            f"{self.mean_crown_diameter_m:.1f} m"
        )


def tree_map(
    image_path: str | Path,
    out_path: str | Path,
    *,
    parcels_path: str | Path | None = None,
    id_column: str = "parcel_id",
    bands: Mapping[str, int] | None = None,
) -> TreeMap:
    """Find the tree crowns of ``image_path`` (inside the parcels, when given) and write the
    layers named in the module docstring to ``out_path``."""
    out_path = Path(out_path)
    source = inspect_image(image_path, bands)
    with rasterio.open(source.path) as src:
        bounds = tuple(src.bounds)
    parcels = None
    if parcels_path is not None:
        parcels = read_user_parcels(parcels_path, bounds, source.crs, id_column=id_column)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".raqib-trees-", dir=out_path.parent) as tmp:
        copy = make_working_copy(source, tmp, max(WORK_GSD_M, source.gsd_m))
        areas = None if parcels is None else parcels.to_crs(copy.crs)
        crowns = detect_trees(copy.path, parcels=areas)
    layers = {
        "tree_crowns": _in_crs(crowns, source.crs),
        "tree_points": _in_crs(crown_centres(crowns), source.crs),
    }
    missing = None
    if areas is not None:
        missing = gaps_in_rows(crowns, areas)
        counts = trees_per_parcel(crowns, areas)
        per_parcel = missing["parcel_id"].value_counts()
        counts["missing_trees"] = counts["parcel_id"].map(per_parcel).fillna(0).astype(int)
        layers["missing_trees"] = missing.to_crs(source.crs)
        layers["trees_per_parcel"] = counts.to_crs(source.crs)
    write_geopackage(out_path, layers)
    diameter = float(crowns["crown_diameter_m"].mean()) if len(crowns) else float("nan")
    return TreeMap(
        out_path,
        len(crowns),
        None if areas is None else len(areas),
        diameter,
        None if missing is None else len(missing),
    )


def gaps_in_rows(crowns: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The trees missing from the rows of each parcel (:func:`models.trees.missing_trees`),
    with ``parcel_id`` and ``row_id``, in the crowns' CRS."""
    parcels = parcels.to_crs(crowns.crs)
    found = [
        missing_trees(crowns, parcel.geometry).assign(parcel_id=parcel.parcel_id)
        for parcel in parcels.itertuples()
    ]
    if not found:
        columns = {"parcel_id": pd.Series(dtype=str), "row_id": pd.Series(dtype=int)}
        return gpd.GeoDataFrame(columns, geometry=[], crs=crowns.crs)
    gaps = pd.concat(found, ignore_index=True)[["parcel_id", "row_id", "geometry"]]
    return gpd.GeoDataFrame(gaps, geometry="geometry", crs=crowns.crs)


def _in_crs(frame: gpd.GeoDataFrame, crs: object) -> gpd.GeoDataFrame:
    """``frame`` in ``crs`` with its ``centre_x`` / ``centre_y`` recomputed there."""
    moved = frame.to_crs(crs)
    centres = crown_centres(frame).geometry.to_crs(crs)
    return moved.assign(centre_x=centres.x.to_numpy(), centre_y=centres.y.to_numpy())
