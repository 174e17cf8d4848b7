"""Rendering nadir frames: geometry under the DJI convention, nuisances, EXIF/XMP read back."""

from __future__ import annotations

import csv
import math
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from flights.camera import get_camera, preview
from sim.camera import FlightCamera, FrameExif, Pose, frame_to_ground, render_frame

LEFT_M, TOP_M, RES_M, SIZE_PX = 560_000.0, 3_862_000.0, 0.1, 2000
CENTRE_M = (LEFT_M + 100.0, TOP_M - 100.0)  # the drone, over the middle of the ortho
CAMERA = preview(get_camera("dji_mavic_3e"), 4)
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
ALTITUDE_M = 94.0


def write_ortho(path: Path, squares: list[tuple[float, float]], seed: int = 0) -> Path:
    """A seeded grey-noise RGB GeoTIFF (EPSG:32630) with 6 m white squares at (E, N) centres."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(40, 90, (3, SIZE_PX, SIZE_PX), dtype=np.uint8)
    for easting_m, northing_m in squares:
        col, row = (easting_m - LEFT_M) / RES_M, (TOP_M - northing_m) / RES_M
        pixels[:, int(row) - 30 : int(row) + 30, int(col) - 30 : int(col) + 30] = 255
    profile = dict(
        driver="GTiff",
        width=SIZE_PX,
        height=SIZE_PX,
        count=3,
        dtype="uint8",
        crs="EPSG:32630",
        transform=Affine(RES_M, 0.0, LEFT_M, 0.0, -RES_M, TOP_M),
        tiled=True,
    )
    with rasterio.open(path, "w", **profile) as ortho:
        ortho.write(pixels)
    return path


def bright_centroid(frame: np.ndarray) -> tuple[float, float]:
    """(col, row) centre of the white pixels of a frame."""
    rows, cols = np.nonzero(frame.min(axis=2) > 200)
    assert len(rows) > 100, "the white square is not in the frame"
    return cols.mean() + 0.5, rows.mean() + 0.5


@pytest.mark.parametrize(
    ("yaw_deg", "quadrant"),
    [(0, "top-right"), (90, "top-left"), (180, "bottom-left"), (270, "bottom-right")],
)
def test_a_square_north_east_of_the_drone_turns_with_yaw(
    tmp_path: Path, yaw_deg: float, quadrant: str
) -> None:
    ortho_path = write_ortho(tmp_path / "ortho.tif", [(CENTRE_M[0] + 20, CENTRE_M[1] + 15)])
    with rasterio.open(ortho_path) as ortho:
        frame = render_frame(ortho, CAMERA, Pose(*CENTRE_M, ALTITUDE_M, yaw_deg))
    col, row = bright_centroid(frame)
    vertical = "top" if row < CAMERA.image_height_px / 2 else "bottom"
    horizontal = "left" if col < CAMERA.image_width_px / 2 else "right"
    assert f"{vertical}-{horizontal}" == quadrant


@pytest.mark.parametrize("yaw_deg", [0.0, 33.0, 121.5])
def test_a_ground_point_lands_on_its_pinhole_pixel(tmp_path: Path, yaw_deg: float) -> None:
    square = (CENTRE_M[0] - 25.0, CENTRE_M[1] + 10.0)
    ortho_path = write_ortho(tmp_path / "ortho.tif", [square])
    pose = Pose(*CENTRE_M, ALTITUDE_M, yaw_deg)
    with rasterio.open(ortho_path) as ortho:
        frame = render_frame(ortho, CAMERA, pose)
    # Pinhole: offset along yaw (forward) goes up, offset along yaw + 90 deg goes right.
    gsd_m = ALTITUDE_M / CAMERA.focal_length_px
    d_east, d_north = square[0] - CENTRE_M[0], square[1] - CENTRE_M[1]
    yaw = math.radians(yaw_deg)
    forward_m = d_east * math.sin(yaw) + d_north * math.cos(yaw)
    right_m = d_east * math.cos(yaw) - d_north * math.sin(yaw)
    expected = (
        CAMERA.image_width_px / 2 + right_m / gsd_m,
        CAMERA.image_height_px / 2 - forward_m / gsd_m,
    )
    assert bright_centroid(frame) == pytest.approx(expected, abs=1.0)
    assert frame_to_ground(CAMERA, pose) @ expected == pytest.approx(square, abs=0.01)


def test_a_frame_beyond_the_ortho_is_black(tmp_path: Path) -> None:
    ortho_path = write_ortho(tmp_path / "ortho.tif", [])
    with rasterio.open(ortho_path) as ortho:
        frame = render_frame(ortho, CAMERA, Pose(LEFT_M - 500.0, TOP_M, ALTITUDE_M, 0.0))
    assert frame.shape == (CAMERA.image_height_px, CAMERA.image_width_px, 3)
    assert frame.max() == 0


def test_nuisances_vignette_the_corners_and_change_exposure(tmp_path: Path) -> None:
    ortho_path = write_ortho(tmp_path / "ortho.tif", [])
    exif = FrameExif(-2.34, 34.89, 106.0, 94.0, 0.0, 0.0, datetime(2026, 3, 1, 10, 0))
    with FlightCamera(ortho_path, CAMERA, tmp_path / "frames", seed=1) as flight:
        paths = [flight.capture(Pose(*CENTRE_M, ALTITUDE_M, 0.0), exif) for _ in range(3)]
    frames = [np.asarray(rasterio.open(p).read(), dtype=float) for p in paths]
    centre = frames[0][:, 400:600, 560:760].mean()
    corner = frames[0][:, :150, :150].mean()
    assert corner < 0.85 * centre
    assert len({round(frame.mean(), 1) for frame in frames}) == 3


def test_frames_carry_dji_exif_and_xmp_that_gdal_reads(tmp_path: Path) -> None:
    ortho_path = write_ortho(tmp_path / "ortho.tif", [])
    exif = FrameExif(
        lon_deg=-2.3412345,
        lat_deg=34.8976543,
        altitude_msl_m=106.25,
        relative_altitude_m=94.1,
        gimbal_yaw_deg=271.5,
        flight_yaw_deg=270.0,
        captured_at=datetime.fromisoformat("2026-03-01T09:15:30+00:00"),
    )
    with FlightCamera(ortho_path, CAMERA, tmp_path / "frames", seed=2) as flight:
        path = flight.capture(Pose(*CENTRE_M, ALTITUDE_M, 270.0), exif)

    with rasterio.open(path) as photo:
        tags, xmp = photo.tags(), photo.tags(ns="xml:XMP")["xml:XMP"]
    assert (tags["EXIF_Make"], tags["EXIF_Model"]) == ("DJI", "M3E")
    assert tags["EXIF_DateTimeOriginal"] == "2026:03:01 10:15:30"  # Morocco, UTC+1
    assert tags["EXIF_OffsetTimeOriginal"] == "+01:00"
    assert tags["EXIF_FocalPlaneResolutionUnit"] == "4"
    assert (tags["EXIF_GPSLatitudeRef"], tags["EXIF_GPSLongitudeRef"]) == ("N", "W")
    d, m, s = (float(v) for v in re.findall(r"\(([\d.]+)\)", tags["EXIF_GPSLatitude"]))
    assert d + m / 60 + s / 3600 == pytest.approx(34.8976543, abs=1e-7)
    assert float(tags["EXIF_GPSAltitude"].strip("()")) == pytest.approx(106.25)
    # Intrinsics are recoverable: sensor width = image width / (pixels per mm).
    pixels_per_mm = float(tags["EXIF_FocalPlaneXResolution"].strip("()"))
    assert int(tags["EXIF_PixelXDimension"]) / pixels_per_mm == pytest.approx(17.3, rel=1e-6)
    assert float(tags["EXIF_FocalLength"].strip("()")) == pytest.approx(12.29)
    assert 'xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"' in xmp
    assert 'drone-dji:RelativeAltitude="+94.100"' in xmp
    assert 'drone-dji:GimbalYawDegree="-88.50"' in xmp
    assert 'drone-dji:GimbalPitchDegree="-90.00"' in xmp


def test_poses_csv_records_true_and_reported_positions(tmp_path: Path) -> None:
    ortho_path = write_ortho(tmp_path / "ortho.tif", [])
    to_lonlat = Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(CENTRE_M[0] + 3.0, CENTRE_M[1] + 4.0)  # reported 5 m off
    exif = FrameExif(lon, lat, 106.0, 94.0, 0.0, 0.0, datetime(2026, 3, 1, 10, 0))
    with FlightCamera(ortho_path, CAMERA, tmp_path / "frames", seed=3) as flight:
        flight.capture(Pose(*CENTRE_M, ALTITUDE_M, 0.0), exif)
        poses_path = flight.poses_path
    [row] = list(csv.DictReader(poses_path.open()))
    assert row["file"] == "IMG_0001.JPG"
    assert float(row["true_easting_m"]) == pytest.approx(CENTRE_M[0])
    assert float(row["horizontal_error_m"]) == pytest.approx(5.0, abs=0.01)


def test_a_camera_that_cannot_open_its_poses_file_closes_the_ortho(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ortho_path = write_ortho(tmp_path / "ortho.tif", [])
    opened: list[rasterio.io.DatasetReader] = []
    real_open = rasterio.open

    def tracking_open(*args, **kwargs):
        dataset = real_open(*args, **kwargs)
        opened.append(dataset)
        return dataset

    monkeypatch.setattr(rasterio, "open", tracking_open)
    (tmp_path / "frames" / "poses.csv").mkdir(parents=True)  # a directory: open() fails
    with pytest.raises(IsADirectoryError):
        FlightCamera(ortho_path, CAMERA, tmp_path / "frames")
    [ortho] = opened
    assert ortho.closed
