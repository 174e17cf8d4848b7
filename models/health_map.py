"""Crop health of any orthophoto: class raster, vigour zones and per-parcel statistics.

What the flows do for a surveyed epoch (``flows.health_task`` and ``flows.vigour_task``), for a
user's own GeoTIFF: it is copied onto the health classifier's 0.4 m working grid in metres
(:mod:`models.working_copy`), classified there (RGB bands needed), its vegetation index
(NDVI with a NIR band, else GLI) summarised per parcel with exact coverage
(:func:`models.zonal.parcel_statistics`) and split into management zones
(:func:`models.zones.zones_of_parcels`). Without parcels the image's extent is one parcel.
Outputs are in the input's CRS: the layers ``health_parcels`` and ``health_zones`` of the
GeoPackage, and ``<OUT>_classes.tif`` / ``<OUT>_<index>.tif`` COGs beside it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from shapely.geometry import box

from core.io import write_geopackage
from models.crop_health import HEALTH_CLASSES, HEALTH_PIXEL_M, classify_health, parcel_health
from models.indices import index_raster
from models.parcel_input import read_user_parcels
from models.training import DEFAULT_HEALTH_MODEL, PixelModel, load_model
from models.working_copy import inspect_image, make_working_copy, to_source_crs
from models.zonal import parcel_statistics
from models.zones import zones_of_parcels


@dataclass(frozen=True)
class HealthMap:
    """What :func:`health_map` wrote and found."""

    geopackage: Path
    classes: Path | None
    index: Path
    index_name: str
    parcels: int
    zones: int
    class_shares: Mapping[str, float]
    """Share of the classified area per health class (empty without RGB bands)."""
    model: str
    notes: tuple[str, ...]

    def summary(self) -> str:
        """One line for the command line."""
        if self.class_shares:
            classes = ", ".join(f"{100 * v:.0f} % {k}" for k, v in self.class_shares.items())
        else:
            classes = "no health classes (no RGB bands)"
        return (
            f"{self.geopackage}: {self.parcels} parcels, {self.zones} zones of "
            f"{self.index_name.upper()}; {classes} (model: {self.model})"
        )


def health_map(
    image_path: str | Path,
    out_path: str | Path,
    *,
    parcels_path: str | Path | None = None,
    id_column: str = "parcel_id",
    model_path: str | Path | None = None,
    bands: Mapping[str, int] | None = None,
    index: str | None = None,
    n_zones: int = 3,
) -> HealthMap:
    """Classify crop health of ``image_path`` and write the outputs named in the module
    docstring; ``bands`` names the bands (else descriptions or colour interpretation)."""
    out_path = Path(out_path)
    source = inspect_image(image_path, bands)
    model = load_model(model_path or DEFAULT_HEALTH_MODEL, HEALTH_CLASSES, "crop health")
    with rasterio.open(source.path) as src:
        bounds = tuple(src.bounds)
    parcels = None
    if parcels_path is not None:
        parcels = read_user_parcels(parcels_path, bounds, source.crs, id_column=id_column)
    index_name = index or ("ndvi" if {"red", "nir"} <= set(source.bands) else "gli")
    notes = []
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".raqib-health-", dir=out_path.parent) as tmp:
        work = Path(tmp)
        copy = make_working_copy(source, work, model.pixel_m or HEALTH_PIXEL_M)
        areas = _areas(parcels, copy.path, source.path.stem)
        index_path = index_raster(copy.path, index_name, work / "index.tif").path
        table = parcel_statistics(index_path, areas).table.drop(columns="parcel_id")
        classes_path = None
        shares: dict[str, float] = {}
        if copy.rgb_path is not None:
            mask = areas if parcels is not None else None
            classes_path = work / "classes.tif"
            classify_health(model, copy.rgb_path, classes_path, mask_polygons=mask)
            summary = parcel_health(classes_path, index_path, areas)
            table = summary.drop(columns="geometry").join(table)
            shares = _class_shares(classes_path)
        else:
            notes.append("no red, green and blue bands: health classes left out")
        zoning = zones_of_parcels(index_path, areas, n_zones=n_zones)
        notes += [f"parcel {note.parcel_id}: {note.note}" for note in zoning.notes]
        stats = gpd.GeoDataFrame(table, geometry=areas.geometry.to_numpy(), crs=areas.crs)
        if "parcel_id" not in stats:
            stats.insert(0, "parcel_id", areas["parcel_id"].to_numpy())
        stats["health_model"] = _model_name(model, model_path)
        stem = out_path.with_suffix("")
        classes_out = None
        if classes_path is not None:
            classes_out = to_source_crs(classes_path, source, f"{stem}_classes.tif")
        index_out = to_source_crs(index_path, source, f"{stem}_{index_name}.tif")
        write_geopackage(
            out_path,
            {
                "health_parcels": stats.to_crs(source.crs),
                "health_zones": zoning.zones.to_crs(source.crs),
            },
        )
    return HealthMap(
        geopackage=out_path,
        classes=classes_out,
        index=index_out,
        index_name=index_name,
        parcels=len(stats),
        zones=len(zoning.zones),
        class_shares=shares,
        model=_model_name(model, model_path),
        notes=tuple(notes),
    )


def _model_name(model: PixelModel, model_path: str | Path | None) -> str:
    if model_path is None:
        return "shipped (trained on a synthetic world)"
    return f"{Path(model_path).name} ({model.training})"


def _areas(parcels: gpd.GeoDataFrame | None, image: Path, name: str) -> gpd.GeoDataFrame:
    """The parcels in the working copy's CRS, or the copy's extent as one parcel ``name``."""
    with rasterio.open(image) as src:
        crs, extent = src.crs, box(*src.bounds)
    if parcels is None:
        return gpd.GeoDataFrame({"parcel_id": [name]}, geometry=[extent], crs=crs)
    return parcels.to_crs(crs)


def _class_shares(classes_path: Path) -> dict[str, float]:
    """Share of the classified pixels per class."""
    counts = np.zeros(len(HEALTH_CLASSES) + 1, dtype=np.int64)
    with rasterio.open(classes_path) as src:
        for _, window in src.block_windows(1):
            counts += np.bincount(src.read(1, window=window).ravel(), minlength=counts.size)[
                : counts.size
            ]
    total = counts[1:].sum()
    return {
        name: float(counts[i + 1] / total) if total else 0.0
        for i, name in enumerate(HEALTH_CLASSES)
    }
