"""Flag rules: link new structures to parcels, permits and zoning, and say what looks wrong.

A structure over several parcels is cut along their boundaries and each piece judged on its
own parcel. Each rule is a pure function of a :class:`ParcelCase` (what was built on one
parcel, its permits, where it stands in the zoning plan) returning a :class:`Finding` or
``None``; ``FLAG_RULES`` holds them by reason, like rasterio's ``MERGE_METHODS``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cached_property

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from core.settings import Settings
from core.types import Flag
from gis.feedback import flag_id
from gis.zoning import ZoneOverlap, Zoning, zone_overlap

log = logging.getLogger(__name__)

ACCEPTED_STATUSES = frozenset({"approved", "valid", "active", "issued"})
ZONING_TOLERANCE = 0.1
"""Share of a footprint that may lie outside buildable zones (plan and detection edges)."""
FLAG_COLUMNS = (
    "flag_id",
    "parcel_id",
    "commune",
    "reason",
    "severity",
    "explanation",
    "permit_id",
    "built_area_m2",
    "permitted_footprint_m2",
    "captured_on",
    "record_url",
    "building_ids",
    "building_count",
    "status",
    "inspector_note",
    "carried_from",
)


REASON_STYLES = {
    "no_permit": ("No building permit", "227,26,28"),
    "off_cadastre": ("Outside every parcel", "153,0,13"),
    "permit_expired": ("Permit not valid on the date", "253,141,60"),
    "over_footprint": ("Built beyond the permit", "241,105,19"),
    "outside_buildable_zone": ("Outside the buildable zone", "106,61,154"),
}
"""Reason -> (label, RGB) on lists and maps: reds for missing permits, oranges for permit
problems."""


@dataclass(frozen=True)
class ParcelCase:
    """New structures on one parcel (``parcel_id`` None: on no parcel) and its permits."""

    parcel_id: str | None
    built_area_m2: float
    score: float
    captured_on: date
    permits: pd.DataFrame
    footprint_tolerance: float
    accepted_statuses: frozenset[str] = ACCEPTED_STATUSES
    structures: str = "New structure"
    spanning: str = ""
    """How the structure runs over other land when this is a piece of it (in words)."""
    zoning: ZoneOverlap | None = None
    zoning_tolerance: float = ZONING_TOLERANCE

    @cached_property
    def valid_permits(self) -> pd.DataFrame:
        p = self.permits
        if p.empty:
            return p
        on_date = (p["issued"] <= self.captured_on) & (self.captured_on <= p["expires"])
        return p[on_date & p["status"].isin(self.accepted_statuses)]

    @property
    def what(self) -> str:
        where = f"parcel {self.parcel_id}" if self.parcel_id else "land outside every parcel"
        part = f" ({self.spanning})" if self.spanning else ""
        return f"{self.structures} of {self.built_area_m2:.0f} m² on {where}{part}"


@dataclass(frozen=True)
class Finding:
    """What a rule found wrong on one parcel."""

    severity: float
    explanation: str
    permit_id: str | None = None
    permitted_footprint_m2: float | None = None


def off_cadastre(case: ParcelCase) -> Finding | None:
    """A structure on no registered parcel (public land, road, river bed)."""
    if case.parcel_id is not None:
        return None
    return Finding(0.9 * case.score, f"{case.what}; no cadastral parcel covers it.")


def no_permit(case: ParcelCase) -> Finding | None:
    """A parcel with new structures and no permit at all on record."""
    if case.parcel_id is None or not case.permits.empty:
        return None
    return Finding(
        0.9 * case.score, f"{case.what}; no building permit is on record for this parcel."
    )


def _why_not_valid(permit: pd.Series, captured_on: date, accepted: frozenset[str]) -> str:
    if permit["status"] not in accepted:
        return f"has status '{permit['status']}'"
    if permit["expires"] < captured_on:
        return f"expired on {permit['expires'].isoformat()}"
    return f"is only valid from {permit['issued'].isoformat()}"


def permit_expired(case: ParcelCase) -> Finding | None:
    """Permits exist for the parcel but none is valid on the capture date."""
    if case.parcel_id is None or case.permits.empty or not case.valid_permits.empty:
        return None
    latest = case.permits.sort_values(["expires", "issued"]).iloc[-1]
    why = _why_not_valid(latest, case.captured_on, case.accepted_statuses)
    return Finding(
        0.7 * case.score,
        f"{case.what}; permit {latest['permit_id']} {why}, and no other permit is valid "
        f"on {case.captured_on.isoformat()}.",
        permit_id=latest["permit_id"],
        permitted_footprint_m2=float(latest["permitted_footprint_m2"]),
    )


def over_footprint(case: ParcelCase) -> Finding | None:
    """Valid permits, but more is built than their footprint (plus tolerance) allows."""
    valid = case.valid_permits
    if case.parcel_id is None or valid.empty:
        return None
    permitted_m2 = float(valid["permitted_footprint_m2"].sum())
    if case.built_area_m2 <= permitted_m2 * (1.0 + case.footprint_tolerance):
        return None
    excess = (case.built_area_m2 - permitted_m2) / permitted_m2 if permitted_m2 > 0 else 1.0
    latest = valid.sort_values("issued").iloc[-1]
    return Finding(
        min(1.0, excess) * case.score,
        f"{case.what}; permit {latest['permit_id']} allows only {permitted_m2:.0f} m², "
        f"so {excess:.0%} more is built than permitted.",
        permit_id=latest["permit_id"],
        permitted_footprint_m2=permitted_m2,
    )


def outside_buildable_zone(case: ParcelCase) -> Finding | None:
    """More of the footprint than the tolerance lies outside the zoning plan's buildable
    zones (only when a zoning layer is given)."""
    zoning = case.zoning
    if zoning is None or zoning.outside_share <= case.zoning_tolerance:
        return None
    return Finding(
        zoning.outside_share * case.score,
        f"{case.what}; {zoning.outside_share:.0%} of it lies outside the buildable zones, "
        f"{zoning.where}.",
    )


FLAG_RULES: dict[str, Callable[[ParcelCase], Finding | None]] = {
    "off_cadastre": off_cadastre,
    "no_permit": no_permit,
    "permit_expired": permit_expired,
    "over_footprint": over_footprint,
    "outside_buildable_zone": outside_buildable_zone,
}


def _record_url(settings: Settings, parcel_id: str | None, permit_id: str | None) -> str:
    if permit_id is not None:
        return settings.permit_url_template.format(permit_id=permit_id, parcel_id=parcel_id)
    if parcel_id is not None:
        return settings.parcel_url_template.format(parcel_id=parcel_id)
    return ""


def _structures(group: pd.DataFrame) -> str:
    """How an explanation names what was built: "New structure", "Extended structure"…"""
    if len(group) > 1:
        return f"{len(group)} new structures"
    grown = "change" in group and group["change"].iloc[0] == "grown"
    return "Extended structure" if grown else "New structure"


def _spanning(group: pd.DataFrame) -> str:
    """The structures of a parcel that run over other land, in words (empty: none)."""
    parts = " and ".join(s for s in dict.fromkeys(group["_spanning"]) if s)
    return f"counting {parts}" if parts and len(group) > 1 else parts


def _scored(buildings: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Buildings with area, score (default 1) and id (default: the index)."""
    if buildings.geometry.name != "geometry":
        buildings = buildings.rename_geometry("geometry")
    area_m2 = buildings["area_m2"] if "area_m2" in buildings else buildings.geometry.area
    ids = buildings["building_id"] if "building_id" in buildings else buildings.index
    return buildings.assign(
        _area_m2=area_m2.astype(float),
        _score=buildings["score"].clip(0, 1) if "score" in buildings else 1.0,
        _id=pd.Index(ids).astype(str),
    )


def _polygonal(geometry: shapely.Geometry) -> shapely.Geometry:
    """The polygonal part of an intersection (parcels touching it along an edge add lines)."""
    parts = shapely.get_parts(geometry)
    return shapely.union_all([p for p in parts if p.geom_type in ("Polygon", "MultiPolygon")])


def _cut(
    footprint: shapely.Geometry,
    parcel_ids: np.ndarray,
    parcels: np.ndarray,
    min_piece_m2: float,
) -> list[tuple[str | None, shapely.Geometry]]:
    """(parcel id or None, piece) of ``footprint`` on each of ``parcels`` (the polygons it
    touches) and on no parcel, largest first; pieces under ``min_piece_m2`` (an edge drawn a
    little over a boundary) go with the largest one, the parcel of largest overlap."""
    rest = footprint.difference(shapely.union_all(parcels))
    pieces = [
        (str(parcel_id), _polygonal(piece))
        for parcel_id, piece in zip(
            parcel_ids, shapely.intersection(footprint, parcels), strict=True
        )
    ]
    pieces = sorted(
        [(pid, g) for pid, g in [*pieces, (None, _polygonal(rest))] if g.area > 0],
        key=lambda piece: -piece[1].area,
    )
    if not pieces:
        return [(None, footprint)]
    (main_id, main), *others = pieces
    small = [g for _, g in others if g.area < min_piece_m2]
    kept = [(pid, g) for pid, g in others if g.area >= min_piece_m2]
    return [(main_id, shapely.union_all([main, *small])), *kept]


def _place(parcel_id: str | None) -> str:
    return f"parcel {parcel_id}" if parcel_id else "land outside every parcel"


def _pieces(
    buildings: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame, min_piece_m2: float
) -> gpd.GeoDataFrame:
    """``buildings`` (as from :func:`_scored`) cut along parcel boundaries, with
    ``parcel_id``, the piece's share of ``_area_m2`` and ``_spanning`` (the whole structure
    and the land it spans, in words; empty when it stands on one parcel)."""
    polygons, ids = parcels.geometry.to_numpy(), parcels["parcel_id"].to_numpy()
    hits_building, hits_parcel = shapely.STRtree(polygons).query(
        buildings.geometry.to_numpy(), predicate="intersects"
    )
    rows = []
    for i, building in enumerate(buildings.to_dict("records")):
        footprint = building["geometry"]
        on = hits_parcel[hits_building == i]
        pieces = _cut(footprint, ids[on], polygons[on], min_piece_m2)
        places = [_place(pid) for pid, _ in pieces]
        spanning = (
            f"part of a {building['_area_m2']:.0f} m² structure spanning "
            f"{', '.join(places[:-1])} and {places[-1]}"
            if len(pieces) > 1
            else ""
        )
        for parcel_id, piece in pieces:
            share = piece.area / footprint.area if footprint.area > 0 else 1.0
            rows.append(
                building
                | {
                    "parcel_id": parcel_id,
                    "_area_m2": building["_area_m2"] * share,
                    "_spanning": spanning,
                    "geometry": piece,
                }
            )
    columns = [*buildings.columns.drop("parcel_id", errors="ignore"), "parcel_id", "_spanning"]
    return gpd.GeoDataFrame(rows, columns=columns, geometry="geometry", crs=buildings.crs)


def _outside_projects(
    buildings: gpd.GeoDataFrame, projects: gpd.GeoDataFrame | None, captured_on: date
) -> gpd.GeoDataFrame:
    """Buildings not standing in a public project started by ``captured_on`` (public works
    are authorised by the project record, not by a building permit)."""
    if projects is None or projects.empty:
        return buildings
    started = projects[projects["start"] <= captured_on].to_crs(buildings.crs)
    inside = shapely.union_all(started.geometry.values)
    in_project = shapely.within(buildings.geometry.representative_point().values, inside)
    if in_project.any():
        log.info("%d new structure(s) stand in public projects: not flagged", in_project.sum())
    return buildings[~in_project]


def flag_new_buildings(
    buildings: gpd.GeoDataFrame,
    parcels: gpd.GeoDataFrame,
    permits: pd.DataFrame,
    *,
    captured_on: date,
    settings: Settings,
    projects: gpd.GeoDataFrame | None = None,
    accepted_statuses: frozenset[str] = ACCEPTED_STATUSES,
    zoning: Zoning | None = None,
    zoning_tolerance: float = ZONING_TOLERANCE,
) -> gpd.GeoDataFrame:
    """One flag per (parcel, reason) for new or grown ``buildings`` (geometry, score,
    area_m2, change), with the parcel polygon as geometry (the buildings' own outline when
    they stand on no parcel), in the buildings' CRS. ``permits`` as from ``read_permits``;
    structures inside ``projects`` (as from ``read_projects``) started by then are exempt.

    A structure over several parcels is judged piece by piece on each parcel; pieces under
    ``settings.min_building_area_m2`` count on the parcel of largest overlap. With
    ``zoning`` (as from :func:`gis.zoning.read_zoning`), footprints more than
    ``zoning_tolerance`` outside buildable zones are flagged too. Each flag has a stable
    ``flag_id``, ``status`` ``new`` and an empty ``inspector_note`` (see ``gis.feedback``).
    """
    parcels = parcels.to_crs(buildings.crs)
    located = _pieces(
        _scored(_outside_projects(buildings, projects, captured_on)),
        parcels,
        settings.min_building_area_m2,
    )
    parcels = parcels.set_index("parcel_id")
    permits_of = {str(k): v for k, v in permits.groupby("parcel_id")}
    rows = []
    for key, group in located.groupby("parcel_id", dropna=False, sort=True):
        parcel_id = None if pd.isna(key) else str(key)
        footprint = shapely.union_all(group.geometry.values)
        case = ParcelCase(
            parcel_id=parcel_id,
            built_area_m2=float(group["_area_m2"].sum()),
            score=float(group["_score"].max()),
            captured_on=captured_on,
            permits=permits_of.get(parcel_id or "", permits.iloc[:0]),
            footprint_tolerance=settings.footprint_tolerance,
            accepted_statuses=accepted_statuses,
            structures=_structures(group),
            spanning=_spanning(group),
            zoning=zone_overlap(footprint, zoning) if zoning is not None else None,
            zoning_tolerance=zoning_tolerance,
        )
        for reason, rule in FLAG_RULES.items():
            finding = rule(case)
            if finding is None:
                continue
            rows.append(
                {
                    "flag_id": flag_id(captured_on, reason, parcel_id),
                    "parcel_id": parcel_id,
                    "commune": parcels.at[parcel_id, "commune"] if parcel_id else "",
                    "reason": reason,
                    "severity": round(float(finding.severity), 3),
                    "explanation": finding.explanation,
                    "permit_id": finding.permit_id,
                    "built_area_m2": round(case.built_area_m2, 1),
                    "permitted_footprint_m2": finding.permitted_footprint_m2,
                    "captured_on": captured_on,
                    "record_url": _record_url(settings, parcel_id, finding.permit_id),
                    "building_ids": ",".join(group["_id"]),
                    "building_count": len(group),
                    "status": "new",
                    "inspector_note": "",
                    "carried_from": "",
                    "geometry": parcels.geometry[parcel_id] if parcel_id else footprint,
                }
            )
    return gpd.GeoDataFrame(rows, columns=[*FLAG_COLUMNS, "geometry"], crs=buildings.crs)


def _text(value: object) -> str:
    return "" if value is None or pd.isna(value) else str(value)


def to_flags(frame: pd.DataFrame) -> list[Flag]:
    """Flagged parcels as :class:`core.types.Flag` values (for notifications, reports)."""
    return [
        Flag(
            parcel_id=_text(row.parcel_id),
            reason=row.reason,
            severity=float(row.severity),
            explanation=row.explanation,
            commune=_text(row.commune),
            permit_id=_text(row.permit_id) or None,
            record_url=row.record_url,
        )
        for row in frame.itertuples(index=False)
    ]
