"""EXIF/XMP reading on real MicaSense and senseFly photos and on synthetic DJI photos."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import piexif
import pytest
from photo_factory import FOCAL_PX, GROUND_ELEVATION_M, HEIGHT_PX, WIDTH_PX, Pose, write_photo
from PIL import Image

from core.errors import InputError
from pipeline.exif import camera_from_metadata, read_metadata, record_from_metadata, xmp_values

BERKANE = Pose(565100.0, 3864900.0, altitude_m=94.5, yaw_deg=-30.5)


@pytest.fixture
def dji_photo(tmp_path: Path) -> Path:
    pixels = np.full((HEIGHT_PX, WIDTH_PX, 3), 128, np.uint8)
    return write_photo(tmp_path / "DJI_0001.JPG", pixels, BERKANE, pitch_deg=-89.9)


def test_micasense_gps_band_and_intrinsics(shared_data: Path) -> None:
    meta = read_metadata(shared_data / "drone_photos/micasense_rededge/IMG_0001_4.tif")
    assert meta.lat_deg == pytest.approx(36 + 34 / 60 + 33.8934 / 3600, abs=1e-7)
    assert meta.lon_deg == pytest.approx(-(119 + 26 / 60 + 6.93744 / 3600), abs=1e-7)
    assert meta.gps_altitude_m == pytest.approx(174.527)
    assert meta.relative_altitude_m is None
    assert meta.bands == ("nir",) and meta.central_wavelengths_nm == (840.0,)
    assert meta.local_time == datetime(2017, 10, 19, 20, 42, 10)
    camera = camera_from_metadata(meta)
    assert camera.make == "MicaSense"
    assert camera.sensor_width_mm == pytest.approx(4.8, abs=1e-3)  # 1280 px / 266.667 px/mm
    assert camera.focal_length_px == pytest.approx(5.5 * 266.667, rel=1e-4)


def test_micasense_red_edge_band_name(shared_data: Path) -> None:
    meta = read_metadata(shared_data / "drone_photos/micasense_rededge/IMG_0001_5.tif")
    assert meta.bands == ("red_edge",) and meta.central_wavelengths_nm == (717.0,)


def test_sensefly_attitude_in_dji_convention(shared_data: Path) -> None:
    meta = read_metadata(shared_data / "drone_photos/webodm_tiny/tiny_drone_image.jpg")
    assert (meta.make, meta.model) == ("Canon", "Canon PowerShot S110")
    assert meta.lat_deg == pytest.approx(41.22637, abs=1e-5)
    assert meta.lon_deg == pytest.approx(-81.70550, abs=1e-5)
    assert meta.yaw_deg == pytest.approx(274.9312, abs=1e-3)
    assert meta.pitch_deg == pytest.approx(2.36006 - 90.0, abs=1e-4)  # senseFly 0 = nadir
    assert meta.bands == ("red", "green", "blue")


def test_bogus_focal_plane_resolution_is_not_trusted(shared_data: Path) -> None:
    # 13651.9 px/inch was the full 4000 px frame's; this copy is 48 px wide (0.09 mm sensor).
    meta = read_metadata(shared_data / "drone_photos/webodm_tiny/tiny_drone_image.jpg")
    with pytest.raises(InputError, match="intrinsics unknown"):
        camera_from_metadata(meta)


def test_micasense_xmp_as_attributes(shared_data: Path) -> None:
    meta = read_metadata(shared_data / "drone_photos/webodm_tiny/tiny_drone_image_multispec.tif")
    assert meta.lat_deg == pytest.approx(50.98140, abs=1e-5) and meta.lon_deg > 21.4
    assert meta.bands == ("blue",) and meta.central_wavelengths_nm == (475.0,)


def test_dji_photo_record(dji_photo: Path) -> None:
    record = record_from_metadata(read_metadata(dji_photo), "abc")
    lon, lat = BERKANE.lonlat
    assert record.lon_deg == pytest.approx(lon, abs=1e-8)
    assert record.lat_deg == pytest.approx(lat, abs=1e-8)
    assert record.altitude_m == pytest.approx(94.5)  # RelativeAltitude, not GPS MSL
    assert record.yaw_deg == pytest.approx(-30.5)
    assert record.pitch_deg == pytest.approx(-89.9)
    assert record.captured_at == datetime(2026, 3, 14, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    assert record.camera.focal_length_px == pytest.approx(FOCAL_PX)
    assert (record.width_px, record.height_px) == (WIDTH_PX, HEIGHT_PX)


def test_height_from_gps_needs_the_ground_elevation(tmp_path: Path) -> None:
    pixels = np.zeros((HEIGHT_PX, WIDTH_PX, 3), np.uint8)
    photo = write_photo(tmp_path / "no_xmp.jpg", pixels, BERKANE, with_xmp=False)
    meta = read_metadata(photo)
    with pytest.raises(InputError, match="height above ground unknown") as error:
        record_from_metadata(meta, "abc")
    assert error.value.source == str(photo)
    record = record_from_metadata(meta, "abc", ground_elevation_m=GROUND_ELEVATION_M)
    assert record.altitude_m == pytest.approx(94.5, abs=1e-3)
    assert record.pitch_deg == -90.0, "unknown pitch is taken as nadir"


def test_time_zone_default_when_no_offset(tmp_path: Path) -> None:
    path = tmp_path / "plain.jpg"
    exif = {
        "Exif": {
            piexif.ExifIFD.DateTimeOriginal: b"2026:03:14 10:30:00",
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
    meta = read_metadata(path)
    morocco = timezone(timedelta(hours=1))
    in_utc = record_from_metadata(meta, "x", ground_elevation_m=100.0)
    in_morocco = record_from_metadata(meta, "x", ground_elevation_m=100.0, default_tz=morocco)
    assert in_utc.captured_at.tzinfo == UTC
    assert in_morocco.captured_at.utcoffset() == timedelta(hours=1)
    assert in_morocco.lon_deg == pytest.approx(-(2 + 19 / 60))


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
