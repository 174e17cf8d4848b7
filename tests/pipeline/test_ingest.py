"""Ingest keeps good photos and skips each bad one with its reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from photo_factory import HEIGHT_PX, WIDTH_PX, Pose, make_ortho, render_frame, write_photo

from core.errors import InputError
from pipeline.ingest import ingest_folder

POSE = Pose(565100.0, 3864900.0, altitude_m=60.0, yaw_deg=15.0)


@pytest.fixture
def flight(tmp_path: Path) -> Path:
    """Two good photos and every kind of bad one."""
    folder = tmp_path / "flight"
    folder.mkdir()
    ortho = make_ortho(size_px=800, seed=3)
    frame = render_frame(ortho, Pose(565040.0, 3864960.0))
    good = write_photo(folder / "DJI_0001.JPG", frame, POSE)
    write_photo(folder / "DJI_0002.jpeg", np.flipud(frame).copy(), POSE)
    shutil.copy(good, folder / "DJI_0003_copy.jpg")
    data = good.read_bytes()
    (folder / "DJI_0004_truncated.jpg").write_bytes(data[: len(data) * 2 // 3])
    (folder / "DJI_0005_text.jpg").write_text("not a photo")
    write_photo(folder / "DJI_0006_nogps.jpg", frame[::-1, ::-1].copy(), POSE, with_gps=False)
    write_photo(folder / "DJI_0007_zero.jpg", frame[:, ::-1].copy(), POSE, lonlat=(0.0, 0.0))
    write_photo(folder / "DJI_0008_oblique.jpg", frame[::2, ::2].copy(), POSE, pitch_deg=-45.0)
    (folder / "notes.txt").write_text("ignored: not a photo suffix")
    return folder


def test_good_photos_are_ingested_and_bad_ones_skipped(flight: Path) -> None:
    result = ingest_folder(flight)
    assert [record.path.name for record in result.images] == ["DJI_0001.JPG", "DJI_0002.jpeg"]
    reasons = {item.path.name: item.reason for item in result.skipped}
    assert reasons.keys() == {
        "DJI_0003_copy.jpg",
        "DJI_0004_truncated.jpg",
        "DJI_0005_text.jpg",
        "DJI_0006_nogps.jpg",
        "DJI_0007_zero.jpg",
        "DJI_0008_oblique.jpg",
    }
    assert reasons["DJI_0003_copy.jpg"] == "duplicate of DJI_0001.JPG"
    assert "truncated" in reasons["DJI_0004_truncated.jpg"]
    assert "not a readable image" in reasons["DJI_0005_text.jpg"]
    assert "no GPS position" in reasons["DJI_0006_nogps.jpg"]
    assert "0, 0" in reasons["DJI_0007_zero.jpg"]
    assert "not a nadir photo" in reasons["DJI_0008_oblique.jpg"]


def test_records_carry_hash_size_and_pose(flight: Path) -> None:
    first = ingest_folder(flight).images[0]
    assert len(first.sha256) == 64
    assert (first.width_px, first.height_px) == (WIDTH_PX, HEIGHT_PX)
    assert first.altitude_m == pytest.approx(60.0)
    assert first.yaw_deg == pytest.approx(15.0)


def test_missing_or_empty_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        ingest_folder(tmp_path / "nowhere")
    (tmp_path / "readme.md").write_text("no photos here")
    with pytest.raises(InputError, match="no photos") as error:
        ingest_folder(tmp_path)
    assert error.value.source == str(tmp_path)


def test_real_micasense_flight_with_ground_elevation(shared_data: Path) -> None:
    folder = shared_data / "drone_photos/micasense_rededge"
    without = ingest_folder(folder)
    assert not without.images and len(without.skipped) == 10
    assert all("height above ground unknown" in item.reason for item in without.skipped)
    result = ingest_folder(folder, ground_elevation_m=100.0)
    heights = {record.path.name: record.altitude_m for record in result.images}
    assert heights["IMG_0000_1.tif"] == pytest.approx(1.861)  # calibration panel, on ground
    assert heights["IMG_0001_4.tif"] == pytest.approx(74.527)  # in flight
    assert {record.bands for record in result.images} == {
        ("blue",),
        ("green",),
        ("red",),
        ("nir",),
        ("red_edge",),
    }
