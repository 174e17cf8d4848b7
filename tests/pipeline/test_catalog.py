"""The catalog tables: an ``images`` layer of footprints and a table of skipped photos."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from photo_factory import CRS, HEIGHT_PX, WIDTH_PX, Pose, write_photo

from core.types import IngestResult
from pipeline.catalog import images_frame, skipped_frame
from pipeline.ingest import ingest_folder


@pytest.fixture
def result(tmp_path: Path) -> IngestResult:
    pixels = np.random.default_rng(1).integers(0, 255, (HEIGHT_PX, WIDTH_PX, 3), np.uint8)
    write_photo(tmp_path / "a.jpg", pixels, Pose(565100.0, 3864900.0, yaw_deg=10.0))
    write_photo(tmp_path / "b.jpg", pixels[::-1].copy(), Pose(565140.0, 3864900.0))
    (tmp_path / "c.jpg").write_bytes(b"\xff\xd8 broken")
    return ingest_folder(tmp_path)


def test_images_layer_round_trips_through_geopackage(result: IngestResult, tmp_path: Path) -> None:
    frame = images_frame(result, CRS)
    assert list(frame["file"]) == ["a.jpg", "b.jpg"]
    assert frame.crs.to_epsg() == 32630
    assert frame.geometry.area.to_numpy() == pytest.approx([64.0 * 48.0] * 2, rel=1e-4)
    assert (
        frame.geometry.iloc[0].centroid.distance(
            gpd.points_from_xy([565100.0], [3864900.0], crs=CRS)[0]
        )
        < 0.01
    )
    assert frame["captured_at"].iloc[0] == "2026-03-14T10:30:00+01:00"
    out = tmp_path / "catalog.gpkg"
    frame.to_file(out, layer="images")
    back = gpd.read_file(out, layer="images")
    assert list(back["sha256"]) == list(frame["sha256"])
    assert back["altitude_m"].to_numpy() == pytest.approx([60.0, 60.0])


def test_skipped_table_names_file_and_reason(result: IngestResult) -> None:
    table = skipped_frame(result)
    assert list(table.columns) == ["path", "reason"]
    assert table["path"].iloc[0].endswith("c.jpg")
    assert "not a readable image" in table["reason"].iloc[0]


def test_empty_result_gives_empty_layers() -> None:
    frame = images_frame(IngestResult(images=()), CRS)
    assert len(frame) == 0 and "sha256" in frame.columns and frame.crs.to_epsg() == 32630
    assert skipped_frame(IngestResult(images=())).empty
