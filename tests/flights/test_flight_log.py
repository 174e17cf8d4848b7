"""Flight logs as GeoPackage layers and CSV, from hand-made telemetry."""

from __future__ import annotations

import csv
import math
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyogrio
import pytest

from flights.flight_log import FlightLog, TelemetrySample

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def sample(k: int, *, lat_deg: float = 34.9, event: str = "") -> TelemetrySample:
    """A sample every second, flying 0.0001 deg of longitude (about 9.1 m) east each."""
    return TelemetrySample(
        time_s=float(k), lat_deg=lat_deg, lon_deg=-2.3 + 0.0001 * k, altitude_m=10.0 * k,
        heading_deg=90.0, groundspeed_m_s=9.1, battery_pct=100.0 - k, mode="AUTO",
        armed=True, mission_item=k, mission_items=5,
        captured_at=START + timedelta(seconds=k), event=event,
    )  # fmt: skip


def test_the_track_is_one_point_per_sample_and_a_line_with_the_outcome(tmp_path: Path) -> None:
    samples = (sample(0, event="armed"), sample(1), sample(2, lat_deg=math.nan), sample(3),
               sample(4, event="abort: wind"))  # fmt: skip
    path = FlightLog(samples, 4.0, "aborted: wind").write_gpkg(tmp_path / "log.gpkg")

    track = pyogrio.read_dataframe(path, layer="track")
    assert track.crs == "EPSG:32630" and len(track) == 5
    assert track.geometry.isna().tolist() == [False, False, True, False, False]
    assert track["battery_pct"].tolist() == [100.0, 99.0, 98.0, 97.0, 96.0]
    assert track["captured_at"].iloc[1] - track["captured_at"].iloc[0] == timedelta(seconds=1)

    line = pyogrio.read_dataframe(path, layer="track_line")
    assert line["outcome"][0] == "aborted: wind" and line["events"][0] == "armed; abort: wind"
    # four located samples 9.1 m apart in longitude at 34.9 deg N
    assert line["distance_m"][0] == pytest.approx(4 * 9.13, rel=0.01)
    assert line.geometry[0].length == pytest.approx(line["distance_m"][0], abs=0.01)
    assert line["max_altitude_m"][0] == 40.0


def test_a_flight_that_failed_before_any_telemetry_still_writes_a_log(tmp_path: Path) -> None:
    path = FlightLog((), 0.0, "failed: arming refused").write_gpkg(tmp_path / "log.gpkg")
    assert len(pyogrio.read_dataframe(path, layer="track")) == 0
    line = pyogrio.read_dataframe(path, layer="track_line")
    assert line["outcome"][0] == "failed: arming refused" and line.geometry[0] is None


def test_csv_has_a_header_and_one_row_per_sample(tmp_path: Path) -> None:
    path = FlightLog((sample(0), sample(1)), 1.0).write_csv(tmp_path / "log.csv")
    rows = list(csv.DictReader(path.open()))
    assert [row["mission_item"] for row in rows] == ["0", "1"] and "event" in rows[0]


def test_the_log_is_a_geopackage_of_the_version_qgis_reads(tmp_path: Path) -> None:
    path = FlightLog((sample(0), sample(1)), 1.0).write_gpkg(tmp_path / "log.gpkg")
    with sqlite3.connect(path) as db:
        user_version = db.execute("PRAGMA user_version").fetchone()[0]
    assert user_version == 10300  # GeoPackage 1.3
