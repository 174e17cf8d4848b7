"""Tree crowns of any orthophoto: crowns as polygons and points, and counts per parcel.

The orchard analysis of the flows (``flows.trees_task``: :func:`models.trees.detect_trees`)
for a user's GeoTIFF: copied onto a grid in metres at ``WORK_GSD_M`` (10 cm; a coarser image
keeps its own GSD) by :mod:`models.working_copy`, crowns found there from RGB or NIR, and the
layers ``tree_crowns``, ``tree_points`` and (with parcels) ``trees_per_parcel`` written in
the input's CRS.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import rasterio

from core.io import write_geopackage
from models.parcel_input import read_user_parcels
from models.trees import WORK_GSD_M, crown_centres, detect_trees, trees_per_parcel
from models.working_copy import inspect_image, make_working_copy


@dataclass(frozen=True)
class TreeMap:
    """What :func:`tree_map` wrote and found."""

    geopackage: Path
    trees: int
    parcels: int | None
    mean_crown_diameter_m: float

    def summary(self) -> str:
        """One line for the command line."""
        where = f" in {self.parcels} parcels" if self.parcels is not None else ""
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
    if areas is not None:
        counts = trees_per_parcel(crowns, areas)
        layers["trees_per_parcel"] = counts.to_crs(source.crs)
    write_geopackage(out_path, layers)
    diameter = float(crowns["crown_diameter_m"].mean()) if len(crowns) else float("nan")
    return TreeMap(out_path, len(crowns), None if areas is None else len(areas), diameter)


def _in_crs(frame: gpd.GeoDataFrame, crs: object) -> gpd.GeoDataFrame:
    """``frame`` in ``crs`` with its ``centre_x`` / ``centre_y`` recomputed there."""
    moved = frame.to_crs(crs)
    centres = crown_centres(frame).geometry.to_crs(crs)
    return moved.assign(centre_x=centres.x.to_numpy(), centre_y=centres.y.to_numpy())
