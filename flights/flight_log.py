"""The record of a flight: telemetry samples and events, written as CSV or a GeoPackage.

The GeoPackage (version 1.3, for QGIS) holds a ``track`` point layer (one row per sample:
time, altitude, speed, battery, mode, mission item, event) and a ``track_line`` layer (the
flown path with the flight's outcome), in a projected CRS.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, astuple, dataclass, fields
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from pyproj import Transformer

from core.io import atomic_path, write_geopackage

DEFAULT_CRS = "EPSG:32630"


@dataclass(frozen=True)
class TelemetrySample:
    """One telemetry reading during a flight (altitude above home).

    ``event`` is empty for routine samples and says what happened otherwise (an abort and
    its reason, a low battery, a lost link).
    """

    time_s: float
    lat_deg: float
    lon_deg: float
    altitude_m: float
    heading_deg: float
    groundspeed_m_s: float
    battery_pct: float
    mode: str
    armed: bool
    mission_item: int
    mission_items: int
    captured_at: datetime
    event: str = ""


@dataclass(frozen=True)
class FlightLog:
    """The telemetry of one flight and how it ended.

    ``outcome`` is ``completed`` (the mission ran to its end and the vehicle landed),
    ``aborted: <reason>`` (returned to launch early) or ``failed: <error>``.
    """

    samples: tuple[TelemetrySample, ...]
    duration_s: float
    outcome: str = "completed"

    @property
    def events(self) -> list[TelemetrySample]:
        return [sample for sample in self.samples if sample.event]

    def write_csv(self, path: str | Path) -> Path:
        """Write the samples as CSV (atomically: temporary file, then rename)."""
        path = Path(path)
        with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(field.name for field in fields(TelemetrySample))
            writer.writerows(astuple(sample) for sample in self.samples)
        return path

    def write_gpkg(self, path: str | Path, crs: str = DEFAULT_CRS) -> Path:
        """Write layers ``track`` (points) and ``track_line`` in ``crs`` (atomically)."""
        path = Path(path)
        track = self.track(crs)
        return write_geopackage(path, {"track": track, "track_line": self.track_line(track)})

    def track(self, crs: str = DEFAULT_CRS) -> gpd.GeoDataFrame:
        """One point per sample (no geometry where the position was unknown)."""
        rows = [asdict(sample) for sample in self.samples]
        frame = pd.DataFrame(rows, columns=[field.name for field in fields(TelemetrySample)])
        frame["captured_at"] = pd.to_datetime(frame["captured_at"], utc=True)
        to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        x, y = to_crs.transform(frame["lon_deg"].to_numpy(), frame["lat_deg"].to_numpy())
        points = shapely.points(x, y)
        points[~(pd.notna(frame["lat_deg"]) & pd.notna(frame["lon_deg"])).to_numpy()] = None
        return gpd.GeoDataFrame(frame, geometry=points, crs=crs)

    def track_line(self, track: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """The flown path as one line, with the outcome and a summary of the flight."""
        located = track[track.geometry.notna()]
        path = (
            shapely.linestrings(shapely.get_coordinates(located.geometry.values))
            if len(located) >= 2
            else None
        )
        summary = {
            "outcome": self.outcome,
            "started_at": track["captured_at"].min() if len(track) else pd.NaT,
            "duration_s": round(self.duration_s, 3),
            "distance_m": round(path.length, 2) if path is not None else 0.0,
            "max_altitude_m": float(track["altitude_m"].max()) if len(track) else math.nan,
            "samples": len(track),
            "events": "; ".join(sample.event for sample in self.events),
        }
        return gpd.GeoDataFrame([summary], geometry=[path], crs=track.crs)
