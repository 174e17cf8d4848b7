"""A planned campaign as files: a GeoPackage for QGIS and a CSV for the crew's day sheets."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
from shapely.geometry import LineString

from core.io import atomic_path, write_geopackage
from core.spreadsheet import csv_safe
from core.types import Mission
from flights.aoi import LONLAT
from flights.campaign import Campaign


def _sortie_rows(campaign: Campaign) -> list[dict[str, object]]:
    rows = []
    for day in campaign.days:
        for sortie in day.sorties:
            resume = sortie.resume
            rows.append(
                {
                    "mission": sortie.mission.name,
                    "status": "planned",
                    "aoi_id": sortie.aoi_id,
                    "commune": sortie.commune,
                    "site_id": sortie.site_id,
                    "day": day.day.isoformat(),
                    "takeoff": sortie.takeoff.isoformat(timespec="seconds"),
                    "landing": sortie.landing.isoformat(timespec="seconds"),
                    "battery_swap": sortie.battery_swap,
                    "flight_time_min": round(sortie.flight_time_s / 60, 2),
                    "distance_m": round(sortie.mission.distance_m, 1),
                    "photo_count": sortie.photo_count,
                    "data_mb": round(sortie.data_mb, 1),
                    "resume_lon": resume.lon_deg,
                    "resume_lat": resume.lat_deg,
                }
            )
    return rows


def _refused_rows(campaign: Campaign) -> list[dict[str, object]]:
    return [
        {
            "mission": r.area.name,
            "status": "refused",
            "aoi_id": r.area.aoi_id,
            "commune": r.area.commune,
            "reason": r.reason,
        }
        for r in campaign.refused
    ]


def _mission_line(mission: Mission) -> LineString:
    home = (mission.home.lon_deg, mission.home.lat_deg)
    return LineString([home, *((w.lon_deg, w.lat_deg) for w in mission.waypoints), home])


def write_campaign(campaign: Campaign, gpkg_path: str | Path, csv_path: str | Path) -> None:
    """Write ``campaign`` as a GeoPackage 1.3 (``missions`` lines from launch to launch with
    their attributes, ``launch_sites`` points, ``refused_aois`` polygons with the reason) and
    a CSV with one row per sortie (``status`` planned) and per refused area, atomically
    (text a spreadsheet would run as a formula quoted)."""
    rows = _sortie_rows(campaign)
    refused_rows = _refused_rows(campaign)
    refused = gpd.GeoDataFrame(
        pd.DataFrame(refused_rows, columns=["mission", "status", "aoi_id", "commune", "reason"]),
        geometry=gpd.GeoSeries([r.area.polygon_m for r in campaign.refused], crs=campaign.crs),
    )
    lines = gpd.GeoSeries([_mission_line(s.mission) for s in campaign.sorties], crs=LONLAT)
    missions = gpd.GeoDataFrame(rows, geometry=lines.to_crs(campaign.crs))
    per_site = pd.DataFrame(rows).groupby("site_id")
    sites = gpd.GeoDataFrame(
        {
            "site_id": [s.site_id for s in campaign.sites],
            "visit_order": range(1, len(campaign.sites) + 1),
            "sorties": [per_site.size()[s.site_id] for s in campaign.sites],
            "first_day": [per_site.day.min()[s.site_id] for s in campaign.sites],
        },
        geometry=gpd.points_from_xy(
            [s.lon_deg for s in campaign.sites], [s.lat_deg for s in campaign.sites], crs=LONLAT
        ).to_crs(campaign.crs),
    )
    write_geopackage(
        gpkg_path, {"missions": missions, "launch_sites": sites, "refused_aois": refused}
    )
    sheet = pd.DataFrame(rows + refused_rows)
    text = sheet.select_dtypes(include=["object", "str"]).columns
    sheet[text] = sheet[text].map(csv_safe)  # AOI ids and communes come from the user's layer
    with atomic_path(csv_path) as partial:
        sheet.to_csv(partial, index=False)
