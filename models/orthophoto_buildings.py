"""Buildings, and new / grown / demolished structures, on any user's orthophotos.

What the flows do for a surveyed epoch (``flows.buildings_task``, ``flows.change_task``) for
users' own GeoTIFFs. Each image is copied onto a grid in metres at the building model's ground
resolution (:mod:`models.working_copy`; :func:`model_gsd_m`: the model's ``pixel_m`` when it
has one, else ``BUILDING_PIXEL_M``, the 10 cm the shipped model and ``raqib train buildings``
models are trained at: the features are in pixels, so the GSD must match), buildings are
detected there with the settings the flows use, and polygons go back to the input's CRS with
``score`` (their mean built-up probability, the confidence) and ``area_m2``.

For changes, AFTER's copy is warped onto BEFORE's working grid and co-registered to it by an
injected ``align`` (the command line passes :func:`pipeline.raster_alignment.aligned_onto`;
``models`` may not import ``pipeline``); polygons are compared both ways
(:func:`models.change.new_buildings`) and each change confirmed on the other image's pixels
(:func:`models.change.confirm_changes`): a new or grown structure on BEFORE's, a demolished
one on AFTER's. Changes where the other image has no data are dropped.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from rasterio.warp import transform_bounds
from shapely.geometry import box

from core.capture_time import read_capture_time
from core.errors import InputError
from core.settings import Settings
from models.change import confirm_changes, new_buildings
from models.construction import BUILDING_CLASSES, detect_buildings
from models.label_training import BUILDING_PIXEL_M
from models.parcel_input import read_user_parcels
from models.training import DEFAULT_BUILDINGS_MODEL, PixelModel, load_model
from models.working_copy import SourceImage, inspect_image, make_working_copy

CHANGES = ("new", "grown", "demolished")
CHANGE_COLUMNS = ["change", "score", "area_m2", "changed_m2", "other_built_share", "geometry"]
"""``changed_m2``: area added (new, grown) or lost (demolished); ``other_built_share``: share
of the footprint (of the added part, for grown) the other image shows built-up."""


class Aligned(Protocol):
    """A raster warped onto a reference's grid and co-registered to it."""

    path: Path

    def note(self) -> str: ...


Aligner = Callable[[Path, Path, Path], Aligned]
"""``(reference, moving, out_path)`` -> ``moving`` on ``reference``'s grid, co-registered."""


@dataclass(frozen=True)
class FoundBuildings:
    """Buildings of one orthophoto, in its CRS."""

    buildings: gpd.GeoDataFrame
    source: SourceImage
    gsd_m: float
    model: str

    def summary(self, out: Path) -> str:
        """One line for the command line."""
        area = float(self.buildings["area_m2"].sum())
        return (
            f"{out}: {len(self.buildings)} buildings ({area:,.0f} m²) on {self.source.path.name} "
            f"({self.source.gsd_m * 100:.1f} cm, analysed at {self.gsd_m * 100:.0f} cm; "
            f"model: {self.model})"
        )


@dataclass(frozen=True)
class FoundChanges:
    """Structures new, grown or demolished from BEFORE to AFTER, in BEFORE's CRS."""

    changes: gpd.GeoDataFrame
    before: SourceImage
    after: SourceImage
    alignment: str
    model: str

    def summary(self, out: Path) -> str:
        """One line for the command line."""
        counts = self.changes["change"].value_counts()
        found = ", ".join(f"{int(counts.get(kind, 0))} {kind}" for kind in CHANGES)
        return (
            f"{out}: {found} structures from {self.before.path.name} to "
            f"{self.after.path.name} (AFTER {self.alignment}; model: {self.model})"
        )


def model_gsd_m(model: PixelModel) -> float:
    """The ground resolution an orthophoto is resampled to for ``model``."""
    return model.pixel_m or BUILDING_PIXEL_M


def find_buildings(
    image_path: str | Path,
    *,
    model_path: str | Path | None = None,
    parcels_path: str | Path | None = None,
    id_column: str = "parcel_id",
    bands: Mapping[str, int] | None = None,
    settings: Settings | None = None,
    work_dir: Path | None = None,
    dsm_path: str | Path | None = None,
    captured_at: datetime | None = None,
) -> FoundBuildings:
    """Building polygons of ``image_path`` (cut along the parcels of ``parcels_path`` when
    given; with height above ground from the surface model ``dsm_path``, any CRS and grid,
    when given), in its CRS; InputError naming the file for a raster, DSM or model that cannot
    be used. Shadow sides are measured from the sun at ``captured_at``, else at the time the
    image's tags state (``TIFFTAG_DATETIME``), else left out."""
    settings = settings or Settings()
    source = inspect_image(image_path, bands)
    _require_rgb(source)
    model = load_model(model_path or DEFAULT_BUILDINGS_MODEL, BUILDING_CLASSES, "building")
    parcels = _parcels(parcels_path, source, id_column)
    gsd_m = model_gsd_m(model)
    with tempfile.TemporaryDirectory(prefix=".raqib-buildings-", dir=work_dir) as tmp:
        copy = make_working_copy(source, Path(tmp), gsd_m)
        with rasterio.open(source.path) as src:  # the copy keeps no tags
            when = captured_at or read_capture_time(src.tags())
        found = _detect(model, copy.rgb_path, parcels, settings, dsm_path, when)
    return FoundBuildings(found.to_crs(source.crs), source, gsd_m, _model_name(model_path))


def find_changes(
    before_path: str | Path,
    after_path: str | Path,
    *,
    align: Aligner,
    model_path: str | Path | None = None,
    parcels_path: str | Path | None = None,
    id_column: str = "parcel_id",
    bands: Mapping[str, int] | None = None,
    settings: Settings | None = None,
    work_dir: Path | None = None,
) -> FoundChanges:
    """Structures new, grown or demolished from ``before_path`` to ``after_path`` (any CRS
    and grid each), in BEFORE's CRS; InputError naming the files when they do not overlap."""
    settings = settings or Settings()
    before, after = inspect_image(before_path, bands), inspect_image(after_path, bands)
    for source in (before, after):
        _require_rgb(source)
    _check_overlap(before, after)
    model = load_model(model_path or DEFAULT_BUILDINGS_MODEL, BUILDING_CLASSES, "building")
    parcels = _parcels(parcels_path, before, id_column)
    gsd_m = model_gsd_m(model)
    with tempfile.TemporaryDirectory(prefix=".raqib-changes-", dir=work_dir) as tmp:
        work = Path(tmp)
        (work / "before").mkdir()
        (work / "after").mkdir()
        before_copy = make_working_copy(before, work / "before", gsd_m)
        after_copy = make_working_copy(after, work / "after", gsd_m)
        aligned = align(before_copy.rgb_path, after_copy.rgb_path, work / "aligned.tif")
        before_found = _detect(model, before_copy.rgb_path, parcels, settings)
        after_found = _detect(model, aligned.path, parcels, settings)
        changes = structure_changes(
            model, before_copy.rgb_path, aligned.path, before_found, after_found, settings
        )
    return FoundChanges(
        changes.to_crs(before.crs), before, after, aligned.note(), _model_name(model_path)
    )


def structure_changes(
    model: PixelModel,
    before_image: str | Path,
    after_image: str | Path,
    before: gpd.GeoDataFrame,
    after: gpd.GeoDataFrame,
    settings: Settings | None = None,
) -> gpd.GeoDataFrame:
    """New and grown structures of ``after`` confirmed on ``before_image``, demolished ones
    (``before``'s without a counterpart) confirmed on ``after_image``; both images on one grid.
    Columns :data:`CHANGE_COLUMNS`; changes the other image does not cover are dropped."""
    settings = settings or Settings()
    overlap, share = settings.new_building_overlap, settings.building_score_threshold
    built = new_buildings(before, after, min_overlap=overlap)
    built = confirm_changes(
        model,
        before_image,
        before,
        built,
        after_image=after_image,
        new_below=overlap,
        threshold=share,
    )
    gone = new_buildings(after, before, min_overlap=overlap)
    gone = gone[gone["change"] == "new"].assign(change="demolished")
    gone = confirm_changes(
        model,
        after_image,
        after,
        gone,
        after_image=before_image,
        new_below=overlap,
        threshold=share,
    )
    parts = [
        frame.rename(columns={"added_m2": "changed_m2", "built_before_share": "other_built_share"})
        for frame in (built, gone)
    ]
    changes = pd.concat([part[CHANGE_COLUMNS] for part in parts], ignore_index=True)
    changes = gpd.GeoDataFrame(changes, geometry="geometry", crs=before.crs)
    return changes[np.isfinite(changes["other_built_share"].to_numpy(float))].reset_index(drop=True)


def _detect(
    model: PixelModel,
    image: Path,
    parcels: gpd.GeoDataFrame | None,
    settings: Settings,
    dsm_path: str | Path | None = None,
    captured_at: datetime | None = None,
) -> gpd.GeoDataFrame:
    """:func:`models.construction.detect_buildings` with the flows' settings."""
    return detect_buildings(
        model,
        image,
        min_area_m2=settings.min_building_area_m2,
        min_solidity=settings.min_building_solidity,
        threshold=settings.building_score_threshold,
        parcels=parcels,
        dsm=dsm_path,
        captured_at=captured_at,
    )


def _model_name(model_path: str | Path | None) -> str:
    return str(model_path) if model_path else "shipped buildings.joblib"


def _require_rgb(source: SourceImage) -> None:
    if not source.has_rgb:
        raise InputError(
            source.path,
            f"unsupported band layout: buildings need red, green and blue bands, it has "
            f"{', '.join(source.bands)} (name them with --bands red=N,green=N,blue=N)",
        )


def _parcels(
    parcels_path: str | Path | None, source: SourceImage, id_column: str
) -> gpd.GeoDataFrame | None:
    if parcels_path is None:
        return None
    with rasterio.open(source.path) as src:
        bounds = tuple(src.bounds)
    return read_user_parcels(parcels_path, bounds, source.crs, id_column=id_column)


def _check_overlap(before: SourceImage, after: SourceImage) -> None:
    """InputError naming both images when their extents do not overlap."""
    outlines = []
    for source in (before, after):
        with rasterio.open(source.path) as src:
            bounds = transform_bounds(src.crs, before.working_crs, *src.bounds, densify_pts=21)
        outlines.append(box(*bounds))
    if outlines[0].intersection(outlines[1]).area <= 0:
        extents = " and ".join(
            "(" + ", ".join(f"{v:.0f}" for v in o.bounds) + ")" for o in outlines
        )
        raise InputError(
            after.path,
            f"does not overlap {before.path}: extents {extents} in "
            f"{before.working_crs.to_string()}",
        )
