"""Ingest keeps good photos, groups band files by capture, and skips each bad one with a reason."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from photo_factory import (
    HEIGHT_PX,
    WIDTH_PX,
    Attitude,
    Pose,
    make_ortho,
    pix4d_band_xmp,
    render_frame,
    write_band_tiff,
    write_photo,
)

from core.errors import InputError
from core.settings import load_settings
from pipeline import ingest
from pipeline.ingest import ingest_folder, ingest_with_settings, skipped_counts, summary_line

POSE = Pose(565100.0, 3864900.0, altitude_m=60.0, yaw_deg=15.0)
SEQUOIA_BANDS = (
    ("GRE", "Green", 550.0),
    ("RED", "Red", 660.0),
    ("REG", "Red edge", 735.0),
    ("NIR", "NIR", 790.0),
)


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
    rolled = Attitude(gimbal_roll_deg=20.0)
    write_photo(folder / "DJI_0009_rolled.jpg", frame[1:].copy(), POSE, attitude=rolled)
    (folder / "notes.txt").write_text("ignored: not a photo suffix")
    return folder


def _sequoia_flight(folder: Path) -> Path:
    """Two Sequoia captures of four band TIFFs; the second taken in a 25 deg bank."""
    folder.mkdir()
    rng = np.random.default_rng(7)
    for index, (uuid, roll_deg) in enumerate((("cap-a", 2.0), ("cap-b", 25.0)), start=1):
        for suffix, band, wavelength_nm in SEQUOIA_BANDS:
            write_band_tiff(
                folder / f"IMG_260314_093000_{index:04d}_{suffix}.TIF",
                rng.integers(0, 65535, (48, 64)).astype(np.uint16),
                make="Parrot",
                model="Sequoia",
                lonlat=(-2.3 + index * 1e-4, 34.92),
                altitude_msl_m=200.0,
                taken_at=datetime(2026, 3, 14, 9, 30, index),
                xmp=pix4d_band_xmp(band, wavelength_nm, uuid, (90.0, 1.0, roll_deg)),
            )
    return folder


def test_good_photos_are_ingested_and_bad_ones_skipped(flight: Path) -> None:
    result = ingest_folder(flight)
    assert [record.path.name for record in result.images] == ["DJI_0001.JPG", "DJI_0002.jpeg"]
    reasons = {item.path.name: item.reason for item in result.skipped}
    kinds = {item.path.name: item.kind for item in result.skipped}
    assert kinds == {
        "DJI_0003_copy.jpg": ingest.DUPLICATE,
        "DJI_0004_truncated.jpg": ingest.TRUNCATED,
        "DJI_0005_text.jpg": ingest.NOT_AN_IMAGE,
        "DJI_0006_nogps.jpg": ingest.NO_GPS,
        "DJI_0007_zero.jpg": ingest.GPS_ZERO,
        "DJI_0008_oblique.jpg": ingest.NOT_NADIR,
        "DJI_0009_rolled.jpg": ingest.NOT_NADIR,
    }
    assert reasons["DJI_0003_copy.jpg"] == "duplicate of DJI_0001.JPG"
    assert "truncated" in reasons["DJI_0004_truncated.jpg"]
    assert "not a readable image" in reasons["DJI_0005_text.jpg"]
    assert "no GPS position" in reasons["DJI_0006_nogps.jpg"]
    assert "0, 0" in reasons["DJI_0007_zero.jpg"]
    assert "45.0 deg from straight down" in reasons["DJI_0008_oblique.jpg"]
    assert "20.0 deg from straight down" in reasons["DJI_0009_rolled.jpg"]


def test_report_counts_skips_by_kind(flight: Path) -> None:
    result = ingest_folder(flight)
    assert skipped_counts(result) == {
        "not nadir": 2,
        "duplicate": 1,
        "truncated or corrupt": 1,
        "not an image": 1,
        "no GPS": 1,
        "GPS 0,0": 1,
    }
    assert summary_line(result) == (
        "2 photos in 2 captures, 7 skipped (2 not nadir, 1 duplicate, 1 truncated or corrupt, "
        "1 not an image, 1 no GPS, 1 GPS 0,0)"
    )


def test_off_nadir_limit_is_a_parameter(flight: Path) -> None:
    result = ingest_folder(flight, max_off_nadir_deg=50.0)
    assert {"DJI_0008_oblique.jpg", "DJI_0009_rolled.jpg"} <= {r.path.name for r in result.images}


def test_settings_give_the_clock_zone_the_tilt_limit_and_the_ground_elevation(
    tmp_path: Path,
) -> None:
    frame = render_frame(make_ortho(size_px=800, seed=3), Pose(565040.0, 3864960.0))
    write_photo(tmp_path / "clock_only.jpg", frame, POSE, utc_offset=None)
    write_photo(tmp_path / "tilted_20.jpg", frame[::-1].copy(), POSE, pitch_deg=-70.0)
    write_photo(tmp_path / "gps_altitude.jpg", frame[:, ::-1].copy(), POSE, with_xmp=False)

    defaults = ingest_with_settings(tmp_path, load_settings())
    assert [r.path.name for r in defaults.images] == ["clock_only.jpg"]
    assert defaults.images[0].time_source == "camera clock, assumed Africa/Casablanca"
    assert skipped_counts(defaults) == {"not nadir": 1, "incomplete metadata": 1}

    settings = load_settings(timezone="Asia/Tokyo", max_off_nadir_deg=25, ground_elevation_m=150)
    records = {r.path.name: r for r in ingest_with_settings(tmp_path, settings).images}
    assert len(records) == 3
    assert records["clock_only.jpg"].captured_at.utcoffset() == timedelta(hours=9)
    assert records["gps_altitude.jpg"].altitude_m == pytest.approx(60.0, abs=0.01)


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


def test_real_micasense_flight_needs_the_ground_elevation(shared_data: Path) -> None:
    without = ingest_folder(shared_data / "drone_photos/micasense_rededge")
    assert not without.images and len(without.skipped) == 10
    assert all("height above ground unknown" in item.reason for item in without.skipped)
    assert summary_line(without) == "0 photos in 0 captures, 10 skipped (10 incomplete metadata)"


def test_real_micasense_bands_grouped_by_capture(shared_data: Path) -> None:
    result = ingest_folder(shared_data / "drone_photos/micasense_rededge", ground_elevation_m=100.0)
    panel, flight = result.captures
    assert [capture.capture_id for capture in result.captures] == [
        "5v25BtsZg3BQBhVH7Iaz",
        "g2R43Qr5m7EeTFGbkh1W",
    ]
    assert flight.bands == ("blue", "green", "red", "nir", "red_edge")
    assert flight.wavelengths_nm == (475.0, 560.0, 668.0, 840.0, 717.0)
    assert flight.band("nir").path.name == "IMG_0001_4.tif"
    assert flight.band("red").irradiance_w_m2_nm == pytest.approx((0.68698847,))
    assert panel.band("blue").altitude_m == pytest.approx(1.861)  # calibration panel, on ground
    assert flight.band("nir").altitude_m == pytest.approx(74.527)  # in flight
    assert flight.band("nir").captured_at == datetime(2017, 10, 19, 20, 42, 10, 200159, tzinfo=UTC)
    assert summary_line(result) == "10 photos in 2 captures, none skipped"
    with pytest.raises(KeyError, match="no band 'lwir'"):
        flight.band("lwir")


def test_real_resized_photos_are_skipped_for_their_intrinsics(shared_data: Path) -> None:
    # WebODM's fixtures were shrunk to 48 px wide but kept the full frame's focal-plane
    # resolution: a 0.1-0.2 mm sensor, so the camera cannot be trusted; nothing else is wrong.
    result = ingest_folder(shared_data / "drone_photos/webodm_tiny", ground_elevation_m=200.0)
    assert not result.images
    assert [item.path.name for item in result.skipped] == [
        "tiny_drone_image.jpg",
        "tiny_drone_image_2.jpg",
        "tiny_drone_image_multispec.tif",
    ]
    assert all("intrinsics unknown" in item.reason for item in result.skipped)
    assert skipped_counts(result) == {"incomplete metadata": 3}


def test_sequoia_band_files_form_captures_and_a_banked_one_is_skipped(tmp_path: Path) -> None:
    result = ingest_folder(_sequoia_flight(tmp_path / "sequoia"), ground_elevation_m=150.0)
    (capture,) = result.captures
    assert capture.capture_id == "cap-a"
    assert capture.bands == ("green", "nir", "red", "red_edge")  # in file name order
    assert capture.wavelengths_nm == (550.0, 790.0, 660.0, 735.0)
    nir = capture.band("nir")
    assert nir.captured_at == datetime(2026, 3, 14, 9, 30, 1, tzinfo=UTC)
    assert nir.time_source == "Parrot camera clock (UTC)"
    assert nir.camera.name == "Parrot Sequoia" and nir.altitude_m == pytest.approx(50.0)
    assert nir.pitch_deg == pytest.approx(-89.0) and nir.roll_deg == pytest.approx(-2.0)
    assert skipped_counts(result) == {"not nadir": 4}
    assert all(item.path.name.startswith("IMG_260314_093000_0002") for item in result.skipped)
