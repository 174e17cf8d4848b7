"""EXIF/XMP reading on real MicaSense and senseFly photos and on synthetic DJI photos."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import piexif
import pytest
from photo_factory import (
    FOCAL_PX,
    GROUND_ELEVATION_M,
    HEIGHT_PX,
    WIDTH_PX,
    Attitude,
    Pose,
    write_photo,
)
from PIL import Image

from core.errors import InputError
from pipeline.exif import (
    ATTITUDE_AIRFRAME,
    camera_from_metadata,
    capture_time,
    off_nadir_deg,
    read_metadata,
    record_from_metadata,
    xmp_values,
)

BERKANE = Pose(565100.0, 3864900.0, altitude_m=94.5, yaw_deg=-30.5)
MICASENSE = "drone_photos/micasense_rededge"


@pytest.fixture
def dji_photo(tmp_path: Path) -> Path:
    pixels = np.full((HEIGHT_PX, WIDTH_PX, 3), 128, np.uint8)
    return write_photo(tmp_path / "DJI_0001.JPG", pixels, BERKANE, pitch_deg=-89.9)


def _plain_photo(path: Path, taken_at: str = "2026:03:14 10:30:00") -> Path:
    """A generic camera's JPEG: EXIF only (no XMP), no time zone, no sub-seconds."""
    exif = {
        "Exif": {
            piexif.ExifIFD.DateTimeOriginal: taken_at.encode(),
            piexif.ExifIFD.FocalLength: (24, 1),
            piexif.ExifIFD.FocalLengthIn35mmFilm: 24,
        },
        "GPS": {
            piexif.GPSIFD.GPSLatitude: ((34, 1), (55, 1), (0, 1)),
            piexif.GPSIFD.GPSLongitude: ((2, 1), (19, 1), (0, 1)),
            piexif.GPSIFD.GPSLongitudeRef: b"W",
            piexif.GPSIFD.GPSAltitude: (200, 1),
        },
    }
    Image.new("RGB", (300, 200)).save(path, exif=piexif.dump(exif))
    return path


def test_micasense_gps_band_and_intrinsics(shared_data: Path) -> None:
    meta = read_metadata(shared_data / MICASENSE / "IMG_0001_4.tif")
    assert meta.lat_deg == pytest.approx(36 + 34 / 60 + 33.8934 / 3600, abs=1e-7)
    assert meta.lon_deg == pytest.approx(-(119 + 26 / 60 + 6.93744 / 3600), abs=1e-7)
    assert meta.gps_altitude_m == pytest.approx(174.527)
    assert meta.relative_altitude_m is None
    assert meta.bands == ("nir",) and meta.central_wavelengths_nm == (840.0,)
    assert meta.local_time == datetime(2017, 10, 19, 20, 42, 10, 200159)  # + SubSecTime
    camera = camera_from_metadata(meta)
    assert (camera.make, camera.model) == ("MicaSense", "RedEdge")  # TIFF IFD0, not XMP
    assert camera.sensor_width_mm == pytest.approx(4.8, abs=1e-3)  # 1280 px / 266.667 px/mm
    assert camera.focal_length_px == pytest.approx(5.5 * 266.667, rel=1e-4)


def test_micasense_bands_of_one_capture(shared_data: Path) -> None:
    metas = [read_metadata(shared_data / MICASENSE / f"IMG_0001_{i}.tif") for i in range(1, 6)]
    assert [m.bands[0] for m in metas] == ["blue", "green", "red", "nir", "red_edge"]
    assert [m.central_wavelengths_nm[0] for m in metas] == [475.0, 560.0, 668.0, 840.0, 717.0]
    assert {m.capture_id for m in metas} == {"g2R43Qr5m7EeTFGbkh1W"}
    assert metas[0].irradiance_w_m2_nm == pytest.approx((0.95743066,))
    assert metas[3].irradiance_w_m2_nm == pytest.approx((0.41153082,))
    panel = read_metadata(shared_data / MICASENSE / "IMG_0000_1.tif")
    assert panel.capture_id == "5v25BtsZg3BQBhVH7Iaz"


def test_micasense_attitude_from_the_sun_sensor(shared_data: Path) -> None:
    meta = read_metadata(shared_data / MICASENSE / "IMG_0001_1.tif")
    assert meta.attitude_source == ATTITUDE_AIRFRAME
    assert meta.yaw_deg == meta.flight_yaw_deg == pytest.approx(-21.1109, abs=1e-4)
    assert meta.flight_pitch_deg == pytest.approx(-0.5528, abs=1e-4)
    assert meta.flight_roll_deg == pytest.approx(-1.5354, abs=1e-4)
    assert meta.pitch_deg is None, "no gimbal: the camera pitch is not written"
    assert off_nadir_deg(meta) == pytest.approx(1.632, abs=1e-3)


def test_micasense_clock_is_utc(shared_data: Path) -> None:
    meta = read_metadata(shared_data / MICASENSE / "IMG_0001_1.tif")
    when, source = capture_time(meta)
    assert when == datetime(2017, 10, 19, 20, 42, 10, 200159, tzinfo=UTC)
    assert source == "MicaSense camera clock (UTC)"


def test_micasense_xmp_as_attributes_and_negative_subseconds(shared_data: Path) -> None:
    meta = read_metadata(shared_data / "drone_photos/webodm_tiny/tiny_drone_image_multispec.tif")
    assert meta.lat_deg == pytest.approx(50.98140, abs=1e-5) and meta.lon_deg > 21.4
    assert meta.bands == ("blue",) and meta.central_wavelengths_nm == (475.0,)
    assert meta.capture_id == "CqaClXcmhKgplT0yPCLE"
    assert meta.model == "RedEdge-M"
    # SubSecTime "-442065", read as OpenDroneMap does: 0.442065 s before the second.
    assert capture_time(meta)[0] == datetime(2018, 8, 22, 12, 11, 39, 557935, tzinfo=UTC)
    assert off_nadir_deg(meta) == pytest.approx(10.61, abs=0.01)  # pitch -6.96, roll 8.04


def test_sensefly_attitude_in_dji_convention(shared_data: Path) -> None:
    meta = read_metadata(shared_data / "drone_photos/webodm_tiny/tiny_drone_image.jpg")
    assert (meta.make, meta.model) == ("Canon", "Canon PowerShot S110")
    assert meta.lat_deg == pytest.approx(41.22637, abs=1e-5)
    assert meta.lon_deg == pytest.approx(-81.70550, abs=1e-5)
    assert meta.yaw_deg == pytest.approx(274.9312, abs=1e-3)
    assert meta.pitch_deg == pytest.approx(2.36006 - 90.0, abs=1e-4)  # senseFly 0 = nadir
    assert meta.bands == ("red", "green", "blue")
    assert meta.central_wavelengths_nm == (635.0, 525.0, 455.0)
    assert off_nadir_deg(meta) == pytest.approx(7.10, abs=0.01)  # pitch 2.36, roll 6.70


def test_bogus_focal_plane_resolution_is_not_trusted(shared_data: Path) -> None:
    # 13651.9 px/inch was the full 4000 px frame's; this copy is 48 px wide (0.09 mm sensor).
    meta = read_metadata(shared_data / "drone_photos/webodm_tiny/tiny_drone_image.jpg")
    with pytest.raises(InputError, match="intrinsics unknown"):
        camera_from_metadata(meta)


def test_dji_photo_record(dji_photo: Path) -> None:
    record = record_from_metadata(read_metadata(dji_photo), "abc")
    lon, lat = BERKANE.lonlat
    assert record.lon_deg == pytest.approx(lon, abs=1e-8)
    assert record.lat_deg == pytest.approx(lat, abs=1e-8)
    assert record.altitude_m == pytest.approx(94.5)  # RelativeAltitude, not GPS MSL
    assert record.absolute_altitude_m == pytest.approx(GROUND_ELEVATION_M + 94.5)
    assert record.yaw_deg == pytest.approx(-30.5)
    assert record.pitch_deg == pytest.approx(-89.9)
    assert record.captured_at == datetime(2026, 3, 14, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    assert record.time_source == "EXIF OffsetTimeOriginal"
    assert record.camera.focal_length_px == pytest.approx(FOCAL_PX)
    assert (record.width_px, record.height_px) == (WIDTH_PX, HEIGHT_PX)
    assert record.capture_id == "DJI_0001", "no capture id in XMP: the photo is its own"


def test_dji_gimbal_and_flight_attitude_are_kept_apart(tmp_path: Path) -> None:
    pixels = np.zeros((HEIGHT_PX, WIDTH_PX, 3), np.uint8)
    attitude = Attitude(
        gimbal_pitch_deg=-80.0,
        gimbal_roll_deg=3.0,
        flight_yaw_deg=100.0,
        flight_pitch_deg=-12.0,
        flight_roll_deg=4.0,
    )
    photo = write_photo(
        tmp_path / "DJI_0002.JPG", pixels, BERKANE, attitude=attitude, capture_uuid="c-42"
    )
    record = record_from_metadata(read_metadata(photo), "abc")
    camera = (record.yaw_deg, record.pitch_deg, record.roll_deg)
    flight = (record.flight_yaw_deg, record.flight_pitch_deg, record.flight_roll_deg)
    assert camera == pytest.approx((-30.5, -80.0, 3.0))
    assert flight == pytest.approx((100.0, -12.0, 4.0))
    assert record.capture_id == "c-42"
    # The gimbal, not the (pitched-forward) airframe, decides how far off nadir the camera is.
    assert off_nadir_deg(read_metadata(photo)) == pytest.approx(10.43, abs=0.01)


def test_gps_time_is_utc_when_the_camera_states_no_offset(tmp_path: Path) -> None:
    pixels = np.zeros((HEIGHT_PX, WIDTH_PX, 3), np.uint8)
    gps_utc = datetime(2026, 3, 14, 9, 30, 2)
    no_offset = write_photo(tmp_path / "a.jpg", pixels, BERKANE, utc_offset=None, gps_utc=gps_utc)
    when, source = capture_time(read_metadata(no_offset))
    assert when == gps_utc.replace(tzinfo=UTC) and source == "EXIF GPS date and time (UTC)"
    with_offset = write_photo(
        tmp_path / "b.jpg", pixels, BERKANE, utc_offset="+01:00", gps_utc=gps_utc
    )
    when, source = capture_time(read_metadata(with_offset))
    assert when == datetime(2026, 3, 14, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    assert source == "EXIF OffsetTimeOriginal"


def test_clock_without_zone_is_read_in_morocco_time(tmp_path: Path) -> None:
    # Africa/Casablanca is UTC+1, but UTC+0 around Ramadan (2026-02-15 .. 2026-03-21).
    in_ramadan = read_metadata(_plain_photo(tmp_path / "march.jpg", "2026:03:14 10:30:00"))
    in_may = read_metadata(_plain_photo(tmp_path / "may.jpg", "2026:05:14 10:30:00"))
    march, source = capture_time(in_ramadan)
    assert march.utcoffset() == timedelta(0)
    assert source == "camera clock, assumed Africa/Casablanca"
    assert capture_time(in_may)[0].utcoffset() == timedelta(hours=1)
    assert capture_time(in_may, UTC)[0] == datetime(2026, 5, 14, 10, 30, tzinfo=UTC)


def test_generic_camera_record_needs_the_ground_elevation(tmp_path: Path) -> None:
    meta = read_metadata(_plain_photo(tmp_path / "plain.jpg"))
    assert meta.attitude_source == "" and off_nadir_deg(meta) is None
    with pytest.raises(InputError, match="height above ground unknown") as error:
        record_from_metadata(meta, "x")
    assert error.value.source == str(tmp_path / "plain.jpg")
    record = record_from_metadata(meta, "x", ground_elevation_m=100.0)
    assert record.altitude_m == pytest.approx(100.0)  # GPSAltitude 200 m - ground 100 m
    assert record.lon_deg == pytest.approx(-(2 + 19 / 60))
    assert record.pitch_deg == -90.0, "unknown pitch is taken as nadir"


def test_missing_capture_time_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notime.jpg"
    Image.new("RGB", (300, 200)).save(path)
    with pytest.raises(InputError, match="no capture time"):
        capture_time(read_metadata(path))


def test_focal_length_from_35mm_equivalent(tmp_path: Path) -> None:
    path = tmp_path / "f35.jpg"
    exif = {"Exif": {piexif.ExifIFD.FocalLength: (12, 1), piexif.ExifIFD.FocalLengthIn35mmFilm: 24}}
    Image.new("RGB", (400, 300)).save(path, exif=piexif.dump(exif))
    camera = camera_from_metadata(read_metadata(path))
    assert camera.focal_length_px == pytest.approx(24 / 43.27 * 500)
    assert camera.focal_length_mm == 12


def test_focal_plane_resolution_in_inches(tmp_path: Path) -> None:
    path = tmp_path / "inch.jpg"
    exif = {
        "Exif": {
            piexif.ExifIFD.FocalLength: (88, 10),
            piexif.ExifIFD.FocalPlaneXResolution: (5080, 1),  # 200 px/mm
            piexif.ExifIFD.FocalPlaneResolutionUnit: 2,
        }
    }
    Image.new("RGB", (2000, 1500)).save(path, exif=piexif.dump(exif))
    camera = camera_from_metadata(read_metadata(path))
    assert camera.sensor_width_mm == pytest.approx(10.0)
    assert camera.focal_length_px == pytest.approx(1760.0)


def test_xmp_elements_sequences_and_bad_packets() -> None:
    packet = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
      xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description
      xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"
      xmlns:Camera="http://pix4d.com/camera/1.0/">
      <drone-dji:GimbalYawDegree>+12.5</drone-dji:GimbalYawDegree>
      <Camera:BandName><rdf:Seq><rdf:li>Red</rdf:li><rdf:li>NIR</rdf:li></rdf:Seq></Camera:BandName>
      </rdf:Description></rdf:RDF></x:xmpmeta>"""
    values = xmp_values(packet)
    assert values == {"drone-dji:GimbalYawDegree": "+12.5", "Camera:BandName": "Red,NIR"}
    assert xmp_values("<x:xmpmeta truncated") == {}
