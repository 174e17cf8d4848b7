"""The zoning plan: where building is allowed, read safely, and how much of a footprint
lies outside it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from core.errors import InputError

log = logging.getLogger(__name__)

ZONING_LAYER = "zoning"
YES = frozenset({"yes", "y", "true", "1", "oui", "o", "buildable", "constructible"})
NO = frozenset({"no", "n", "false", "0", "non", "not buildable", "inconstructible"})
SLIVER_SHARE = 0.01
"""Parts of a footprint under this share (edge misalignment) are not named as places."""


@dataclass(frozen=True)
class Zoning:
    """Zone polygons (``zone`` code, ``buildable`` bool) of one file, in a projected CRS;
    ``repaired`` names the zones whose invalid polygons were repaired on reading."""

    zones: gpd.GeoDataFrame
    source: str
    repaired: tuple[str, ...] = ()

    @cached_property
    def tree(self) -> shapely.STRtree:
        """A spatial index of the zone polygons (positions as in ``zones``)."""
        return shapely.STRtree(self.zones.geometry.to_numpy())


@dataclass(frozen=True)
class ZoneOverlap:
    """Where a footprint stands in the zoning plan: the share of its area outside buildable
    zones, the non-buildable zones it covers (most covered first) and the share on no zone."""

    outside_share: float
    zones: tuple[str, ...]
    unzoned_share: float

    @property
    def where(self) -> str:
        """The places outside buildable zones in words: "in zone NA-1 (not buildable)"."""
        places = []
        if self.zones:
            noun = "zone" if len(self.zones) == 1 else "zones"
            places.append(f"in {noun} {', '.join(self.zones)} (not buildable)")
        if self.unzoned_share >= SLIVER_SHARE:
            places.append("on land no zone of the plan covers")
        return " and ".join(places)


def _layer_name(path: Path, layer: str | None) -> str:
    names = [str(name) for name in pyogrio.list_layers(path)[:, 0]]
    if layer is not None and layer not in names:
        raise InputError(path, f"no layer named {layer!r} among {', '.join(names)}")
    if layer is not None:
        return layer
    if ZONING_LAYER in names:
        return ZONING_LAYER
    if len(names) == 1:
        return names[0]
    raise InputError(path, f"no layer named {ZONING_LAYER!r} among {', '.join(names)}; name one")


def _buildable(path: Path, zones: gpd.GeoDataFrame, column: str) -> pd.Series:
    """The yes/no column as booleans; any other value is an :class:`InputError`."""
    words = zones[column].map(lambda v: str(v).strip().lower() if pd.notna(v) else "")
    unknown = ~words.isin(YES | NO)
    if unknown.any():
        bad = ", ".join(
            f"{zones.at[i, 'zone']}: {zones.at[i, column]!r}" for i in words.index[unknown]
        )
        raise InputError(path, f"column {column!r} must say yes or no; it says {bad}")
    return words.isin(YES)


def _repaired(path: Path, zones: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, tuple[str, ...]]:
    """Invalid polygons made valid (their polygonal part kept); the repaired zone codes."""
    invalid = zones.geometry.notna() & ~zones.geometry.is_valid
    repaired = tuple(zones.loc[invalid, "zone"])
    if repaired:
        log.warning("%s: repaired invalid polygons of zones %s", path, ", ".join(repaired))
        fixed = shapely.make_valid(zones.geometry[invalid].values)
        polygonal = [
            shapely.union_all(
                [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
            )
            for g in fixed
        ]
        zones.loc[invalid, "geometry"] = gpd.GeoSeries(
            polygonal, index=zones.index[invalid], crs=zones.crs
        )
    unusable = zones.geometry.isna() | zones.geometry.is_empty
    unusable |= ~zones.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
    if unusable.any():
        kinds = zones.geometry[unusable].geom_type.fillna("no geometry")
        bad = ", ".join(f"{zone} ({kinds[i]})" for i, zone in zones.loc[unusable, "zone"].items())
        raise InputError(path, f"zones without a usable polygon: {bad}")
    return zones, repaired


def read_zoning(
    path: Path,
    crs: str,
    *,
    zone_column: str = "zone",
    buildable_column: str = "buildable",
    layer: str | None = None,
) -> Zoning:
    """The zoning plan of a vector file (``layer``, else the layer ``zoning`` or the file's
    only one), in ``crs``: a zone code and a yes/no buildable column (names configurable).

    Invalid polygons are repaired and named in ``repaired``; a file without a CRS, a zone
    column, a yes/no value or a polygon is an :class:`InputError` naming file and column.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "zoning file not found")
    try:
        zones = gpd.read_file(path, layer=_layer_name(path, layer), engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InputError(path, f"not a readable vector file ({exc})") from exc
    names = ", ".join(str(c) for c in zones.columns if c != "geometry")
    for column in (zone_column, buildable_column):
        if column not in zones.columns:
            raise InputError(
                path, f"no column {column!r} (columns: {names}); set the zoning column names"
            )
    if zones.empty:
        raise InputError(path, "contains no zones")
    if zones.crs is None:
        raise InputError(path, "has no CRS; zones must say where they are")
    zones = zones.assign(zone=zones[zone_column].fillna("").astype(str).str.strip())
    zones["buildable"] = _buildable(path, zones, buildable_column)
    zones, repaired = _repaired(path, zones[["zone", "buildable", "geometry"]].copy())
    return Zoning(zones.to_crs(crs), str(path), repaired)


def zone_overlap(footprint: shapely.Geometry, zoning: Zoning) -> ZoneOverlap:
    """Where ``footprint`` (in the zoning's CRS) stands: see :class:`ZoneOverlap`."""
    area_m2 = footprint.area
    if area_m2 <= 0:
        return ZoneOverlap(0.0, (), 0.0)
    touching = zoning.tree.query(footprint, predicate="intersects")
    polygons = zoning.zones.geometry.to_numpy()[touching]
    buildable = zoning.zones["buildable"].to_numpy()[touching]
    outside = footprint.difference(shapely.union_all(polygons[buildable]))
    unzoned = outside.difference(shapely.union_all(polygons))
    covered_m2 = shapely.area(shapely.intersection(polygons[~buildable], outside))
    by_zone: dict[str, float] = {}
    names = zoning.zones["zone"].to_numpy()[touching][~buildable]
    for zone, m2 in zip(names, covered_m2, strict=True):
        by_zone[zone] = by_zone.get(zone, 0.0) + float(m2)
    named = sorted((-m2, zone) for zone, m2 in by_zone.items() if m2 >= SLIVER_SHARE * area_m2)
    return ZoneOverlap(outside.area / area_m2, tuple(z for _, z in named), unzoned.area / area_m2)
