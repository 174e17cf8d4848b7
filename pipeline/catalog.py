"""The image catalog as tables: one footprint row per ingested photo, one row per skip."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd

from core.types import IngestResult
from pipeline.footprint import footprint

IMAGE_COLUMNS = (
    "file",
    "path",
    "sha256",
    "captured_at",
    "lon",
    "lat",
    "altitude_m",
    "yaw_deg",
    "pitch_deg",
    "camera",
    "width_px",
    "height_px",
)


def images_frame(result: IngestResult, crs: str) -> gpd.GeoDataFrame:
    """Ingested photos with their ground footprints in ``crs`` (the ``images`` layer)."""
    rows = [
        {
            "file": record.path.name,
            "path": str(record.path),
            "sha256": record.sha256,
            "captured_at": record.captured_at.isoformat(),
            "lon": record.lon_deg,
            "lat": record.lat_deg,
            "altitude_m": record.altitude_m,
            "yaw_deg": record.yaw_deg,
            "pitch_deg": record.pitch_deg,
            "camera": record.camera.name,
            "width_px": record.width_px,
            "height_px": record.height_px,
        }
        for record in result.images
    ]
    geometry = [footprint(record, crs) for record in result.images]
    frame = pd.DataFrame(rows, columns=list(IMAGE_COLUMNS))
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometry, crs=crs), crs=crs)


def skipped_frame(result: IngestResult) -> pd.DataFrame:
    """Photos left out of the ingest and why (columns ``path``, ``reason``)."""
    return pd.DataFrame(
        [{"path": str(item.path), "reason": item.reason} for item in result.skipped],
        columns=["path", "reason"],
    )
