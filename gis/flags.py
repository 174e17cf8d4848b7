"""Flag rules: link new structures to parcels and permits, and say what looks wrong.

Each rule is a pure function of a :class:`ParcelCase` (what was built on one parcel, and the
permits on record for it) returning a :class:`Finding` or ``None``; ``FLAG_RULES`` holds
them by reason, like rasterio's ``MERGE_METHODS``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import geopandas as gpd
import pandas as pd
import shapely

from core.settings import Settings
from core.types import Flag
from gis.parcels import parcel_of

log = logging.getLogger(__name__)

ACCEPTED_STATUSES = frozenset({"approved", "valid", "active", "issued"})
FLAG_COLUMNS = (
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
)


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

    @property
    def valid_permits(self) -> pd.DataFrame:
        p = self.permits
        on_date = (p["issued"] <= self.captured_on) & (self.captured_on <= p["expires"])
        return p[on_date & p["status"].isin(self.accepted_statuses)]

    @property
    def what(self) -> str:
        where = f"parcel {self.parcel_id}" if self.parcel_id else "land outside every parcel"
        return f"{self.structures} of {self.built_area_m2:.0f} m² on {where}"


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


FLAG_RULES: dict[str, Callable[[ParcelCase], Finding | None]] = {
    "off_cadastre": off_cadastre,
    "no_permit": no_permit,
    "permit_expired": permit_expired,
    "over_footprint": over_footprint,
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


def _located(buildings: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Buildings with their parcel, area, score (default 1) and id (default: the index)."""
    located = parcel_of(buildings, parcels)
    area_m2 = located["area_m2"] if "area_m2" in located else located.geometry.area
    ids = located["building_id"] if "building_id" in located else located.index
    return located.assign(
        _area_m2=area_m2.astype(float),
        _score=located["score"].clip(0, 1) if "score" in located else 1.0,
        _id=pd.Index(ids).astype(str),
    )


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
) -> gpd.GeoDataFrame:
    """One flag per (parcel, reason) for new or grown ``buildings`` (geometry, score,
    area_m2, change), with the parcel polygon as geometry (the buildings' own outline when
    they stand on no parcel), in the buildings' CRS. ``permits`` as from ``read_permits``;
    structures inside ``projects`` (as from ``read_projects``) started by then are exempt.
    """
    located = _located(_outside_projects(buildings, projects, captured_on), parcels)
    parcels = parcels.to_crs(buildings.crs).set_index("parcel_id")
    permits_of = {str(k): v for k, v in permits.groupby("parcel_id")}
    rows = []
    for key, group in located.groupby("parcel_id", dropna=False, sort=True):
        parcel_id = None if pd.isna(key) else str(key)
        case = ParcelCase(
            parcel_id=parcel_id,
            built_area_m2=float(group["_area_m2"].sum()),
            score=float(group["_score"].max()),
            captured_on=captured_on,
            permits=permits_of.get(parcel_id or "", permits.iloc[:0]),
            footprint_tolerance=settings.footprint_tolerance,
            accepted_statuses=accepted_statuses,
            structures=_structures(group),
        )
        for reason, rule in FLAG_RULES.items():
            finding = rule(case)
            if finding is None:
                continue
            rows.append(
                {
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
                    "geometry": parcels.geometry[parcel_id]
                    if parcel_id
                    else shapely.union_all(group.geometry.values),
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
