"""Labelled polygons for training: read, checked against a class list, repaired, in an image's CRS.

Agronomists draw labels in QGIS; what they hand over can be in another CRS, hold invalid
rings or leave a class empty. Repairs that lose nothing (reprojection, ``make_valid``) are
made and reported in ``Labels.notes``; anything that would change what was meant is an
:class:`InputError` naming the labels file and the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from core.errors import InputError
from models.windows import open_rgb

POLYGONAL = ("Polygon", "MultiPolygon")
LabelSource = gpd.GeoDataFrame | str | Path


@dataclass(frozen=True)
class Labels:
    """Checked label polygons of one image: ``(geometry, code)`` in the image's CRS, code
    ``i + 1`` for ``classes[i]``; ``notes`` says what was repaired or left out."""

    source: str
    image: Path
    shapes: tuple[tuple[BaseGeometry, int], ...]
    classes: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def classes_present(self) -> tuple[str, ...]:
        """The classes at least one polygon has, in ``classes`` order."""
        codes = {code for _, code in self.shapes}
        return tuple(name for i, name in enumerate(self.classes) if i + 1 in codes)


def read_labels(labels: LabelSource, *, layer: str | None = None) -> tuple[gpd.GeoDataFrame, str]:
    """The label polygons and the name errors should give them (the file, or ``"labels"``)."""
    if isinstance(labels, gpd.GeoDataFrame):
        return labels, "labels"
    path = Path(labels)
    if not path.exists():
        raise InputError(path, "labels file not found")
    try:
        frame = gpd.read_file(path, layer=layer)
    except Exception as exc:  # pyogrio raises several types for unreadable or absent layers
        raise InputError(path, f"cannot read labels: {exc}") from exc
    return frame, str(path)


def checked_labels(
    labels: LabelSource,
    class_column: str,
    classes: Sequence[str],
    image_path: str | Path,
    *,
    layer: str | None = None,
) -> Labels:
    """``labels`` read (if a path), checked, repaired and reprojected onto ``image_path``.

    Refused with an :class:`InputError` naming the labels: a missing class column, no CRS,
    empty or unknown class values, non-polygon geometries, no polygon over the image.
    """
    frame, source = read_labels(labels, layer=layer)
    if class_column not in frame.columns:
        columns = [c for c in frame.columns if c != frame.geometry.name]
        raise InputError(source, f"no class column {class_column!r}; its columns are {columns}")
    if frame.crs is None:
        raise InputError(source, "label polygons have no CRS")
    values = frame[class_column]
    empty = values.isna() | (values.astype(str).str.strip() == "")
    if empty.any():
        raise InputError(
            source, f"{int(empty.sum())} polygon(s) with no {class_column!r} value: {_rows(empty)}"
        )
    unknown = sorted(set(map(str, values)) - set(classes))
    if unknown:
        raise InputError(
            source, f"column {class_column!r} has classes {unknown} not in {tuple(classes)}"
        )
    notes: list[str] = []
    frame = _repaired(frame, source, notes)
    if frame.empty:
        raise InputError(source, "no label polygon has an area")
    with open_rgb(image_path) as src:
        if frame.crs != src.crs:
            notes.append(f"reprojected from {frame.crs.to_string()} to {src.crs.to_string()}")
            frame = frame.to_crs(src.crs)
        image_box = box(*src.bounds)
        crs_name = src.crs.to_string()
    overlapping = frame[frame.intersects(image_box)]
    if overlapping.empty:
        raise InputError(
            source,
            f"no label polygon overlaps {image_path} (labels {_bounds(frame.total_bounds)}, "
            f"image {_bounds(image_box.bounds)} in {crs_name})",
        )
    shapes = tuple(
        (geom, list(classes).index(str(name)) + 1)
        for geom, name in zip(overlapping.geometry, overlapping[class_column], strict=True)
    )
    return Labels(source, Path(image_path), shapes, tuple(classes), tuple(notes))


def require_two_classes(labels: Sequence[Labels]) -> None:
    """Refuse labels that, over all their images, name fewer than two classes."""
    present = {name for one in labels for name in one.classes_present}
    if len(present) < 2:
        source = labels[0].source if len({one.source for one in labels}) == 1 else "labels"
        raise InputError(
            source,
            f"only class {sorted(present)} over the image; training needs at least two of "
            f"{labels[0].classes}",
        )


def _repaired(frame: gpd.GeoDataFrame, source: str, notes: list[str]) -> gpd.GeoDataFrame:
    """Polygons only: invalid ones made valid, missing or empty ones dropped (both noted)."""
    geoms = frame.geometry
    present = geoms.notna() & ~geoms.is_empty
    not_polygonal = present & ~geoms.geom_type.isin(POLYGONAL)
    if not_polygonal.any():
        kinds = sorted(set(geoms.geom_type[not_polygonal]))
        raise InputError(source, f"labels must be polygons, not {kinds}: {_rows(not_polygonal)}")
    invalid = present & ~geoms.is_valid
    if invalid.any():
        reasons = shapely.is_valid_reason(geoms[invalid].to_numpy())
        detail = "; ".join(
            f"row {row}: {reason}"
            for row, reason in zip(geoms.index[invalid], reasons, strict=True)
        )
        notes.append(f"repaired {int(invalid.sum())} invalid polygon(s) ({detail})")
        geoms = geoms.copy()
        geoms[invalid] = [_polygonal(g) for g in shapely.make_valid(geoms[invalid].to_numpy())]
        frame = frame.set_geometry(geoms)
    missing = geoms.isna() | geoms.is_empty
    if missing.any():
        notes.append(f"left out {int(missing.sum())} polygon(s) without area: {_rows(missing)}")
        frame = frame[~missing.to_numpy()]
    return frame


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The polygonal part of a repaired geometry (``make_valid`` may add lines or points)."""
    if geom.geom_type in POLYGONAL:
        return geom
    parts = [part for part in shapely.get_parts(geom) if part.geom_type in POLYGONAL]
    return shapely.union_all(parts)


def _rows(mask: pd.Series) -> str:
    """The index of the rows ``mask`` marks (file order, from 0), at most ten of them."""
    rows = [str(row) for row in mask.index[mask.to_numpy()]]
    return (
        "rows " + ", ".join(rows[:10]) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
    )


def _bounds(bounds: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in bounds) + ")"
