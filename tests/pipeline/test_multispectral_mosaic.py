"""Multispectral mosaics: band files of each capture aligned, placed, blended, named."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pyproj
import pytest
import rasterio
from photo_factory import (
    CRS,
    FOCAL_MM,
    GROUND_ELEVATION_M,
    ORTHO_LEFT_M,
    ORTHO_RES_M,
    ORTHO_TOP_M,
    PX_PER_MM,
    Pose,
    make_ortho,
    pix4d_band_xmp,
    render_frame,
    write_band_tiff,
    write_photo,
)

import cli
from core.errors import InputError
from core.types import Grid
from models.indices import index_raster
from pipeline.band_alignment import gradient_magnitude
from pipeline.ingest import ingest_folder
from pipeline.mosaic import validate_cog
from pipeline.multispectral_mosaic import (
    mosaic_captures,
    multispectral_captures,
)
from pipeline.radiometry import PANEL, SUN_SENSOR, UNCALIBRATED, PanelReading

MICASENSE = "drone_photos/micasense_rededge"
MICASENSE_CRS = "EPSG:32611"  # California
MICASENSE_GROUND_M = 101.9
"""Ground elevation (MSL) where the panel capture IMG_0000 was taken, on the ground."""
SEQUOIA_BANDS = (
    ("GRE", "Green", 550),
    ("RED", "Red", 660),
    ("REG", "Red edge", 735),
    ("NIR", "NIR", 790),
)
LENS_OFFSET_M = {
    "Green": (0.0, 0.0),
    "Red": (0.35, -0.2),
    "Red edge": (-0.3, 0.25),
    "NIR": (0.2, 0.4),
}
"""Where each band's lens looks from, relative to the green one (east, north): 2-4 px apart."""
FULL_SCALE_DN = 40000.0
POSES = (
    Pose(ORTHO_LEFT_M + 70, ORTHO_TOP_M - 70, yaw_deg=10.0),
    Pose(ORTHO_LEFT_M + 100, ORTHO_TOP_M - 75, yaw_deg=10.0),
    Pose(ORTHO_LEFT_M + 85, ORTHO_TOP_M - 105, yaw_deg=190.0),
)
GRID = Grid.from_bounds(
    (ORTHO_LEFT_M + 40, ORTHO_TOP_M - 130, ORTHO_LEFT_M + 130, ORTHO_TOP_M - 45), 0.1, CRS
)


def painted_ndvi(east_m: np.ndarray, north_m: np.ndarray) -> np.ndarray:
    """The scene's NDVI: smooth patches from 0.1 to 0.8 (a field with vigour gradients)."""
    x, y = east_m - ORTHO_LEFT_M, ORTHO_TOP_M - north_m
    return 0.45 + 0.35 * np.sin(2 * math.pi * x / 70.0) * np.cos(2 * math.pi * y / 55.0)


def scene_reflectance() -> dict[str, np.ndarray]:
    """Per band reflectance of the synthetic ground (on the photo factory's 0.1 m orthophoto
    grid): a textured brightness (fields, roofs) times each band's response to the NDVI."""
    texture = make_ortho(seed=11).mean(axis=2).astype(np.float32) / 255.0
    brightness = 0.05 + 0.45 * texture
    size = brightness.shape[0]
    centres = (np.arange(size) + 0.5) * ORTHO_RES_M
    ndvi = painted_ndvi(ORTHO_LEFT_M + centres[None, :], ORTHO_TOP_M - centres[:, None])
    return {
        "Green": brightness * 0.7,
        "Red": brightness * (1 - ndvi),
        "Red edge": brightness * (1 + 0.5 * ndvi),
        "NIR": brightness * (1 + ndvi),
    }


def write_flight(
    folder: Path, gains: dict[str, float] | None = None, poses: tuple[Pose, ...] = POSES
) -> Path:
    """One Sequoia-like capture (four band TIFFs, raw DN = reflectance x gain) per pose."""
    folder.mkdir()
    scene = scene_reflectance()
    for index, pose in enumerate(poses, start=1):
        for suffix, band, wavelength_nm in SEQUOIA_BANDS:
            east_m, north_m = LENS_OFFSET_M[band]
            lens = Pose(pose.east_m + east_m, pose.north_m + north_m, pose.altitude_m, pose.yaw_deg)
            dn = render_frame(scene[band], lens) * FULL_SCALE_DN * (gains or {}).get(band, 1.0)
            write_band_tiff(
                folder / f"IMG_260314_093000_{index:04d}_{suffix}.TIF",
                np.clip(dn, 0, 65535).astype(np.uint16),
                make="Parrot",
                model="Sequoia",
                lonlat=pose.lonlat,
                altitude_msl_m=GROUND_ELEVATION_M + pose.altitude_m,
                taken_at=datetime(2026, 3, 14, 9, 30, index),
                xmp=pix4d_band_xmp(band, wavelength_nm, f"cap-{index}", (pose.yaw_deg, 0.0, 0.0)),
                focal_mm=FOCAL_MM,
                px_per_mm=PX_PER_MM,
            )
    return folder


def grid_centres_m(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    return grid.transform * (cols, rows)


def interior(valid: np.ndarray, margin_px: int = 15) -> np.ndarray:
    """Valid pixels at least ``margin_px`` from an invalid one (no capture-edge effects)."""
    kernel = np.ones((2 * margin_px + 1, 2 * margin_px + 1), np.uint8)
    return cv2.erode(valid.astype(np.uint8), kernel).astype(bool)


def shift_px(reference: np.ndarray, image: np.ndarray, region: np.ndarray) -> float:
    """Offset between two images' edges over the bounding box of ``region`` (phase correlation)."""
    rows, cols = np.nonzero(region)
    box = np.s_[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    a, b = (np.nan_to_num(gradient_magnitude(np.nan_to_num(x))[box]) for x in (reference, image))
    (dx, dy), _ = cv2.phaseCorrelate(a.astype(np.float64), b.astype(np.float64))
    return math.hypot(dx, dy)


@pytest.fixture(scope="module")
def real_mosaic(shared_data: Path, tmp_path_factory) -> tuple[Path, tuple[float, float]]:
    """The real in-flight RedEdge capture (IMG_0001_*) alone, mosaicked in UTM 11N on a grid
    about its GPS position, and that position (east, north)."""
    folder = tmp_path_factory.mktemp("rededge")
    for path in sorted((shared_data / MICASENSE).glob("IMG_0001_*.tif")):
        (folder / path.name).symlink_to(path)
    captures = multispectral_captures(ingest_folder(folder, ground_elevation_m=MICASENSE_GROUND_M))
    centre = pyproj.Transformer.from_crs("EPSG:4326", MICASENSE_CRS, always_xy=True).transform(
        captures[0].images[0].lon_deg, captures[0].images[0].lat_deg
    )
    grid = Grid.from_bounds(
        (centre[0] - 40, centre[1] - 40, centre[0] + 40, centre[1] + 40), 0.05, MICASENSE_CRS
    )
    out = folder / "rededge.tif"
    mosaic_captures(captures, grid, out, tile_px=512)
    return out, centre


def test_real_rededge_capture_becomes_a_named_reflectance_cog(real_mosaic) -> None:
    path, _ = real_mosaic
    assert validate_cog(path)
    with rasterio.open(path) as src:
        assert src.descriptions == ("blue", "green", "red", "nir", "rededge")
        assert src.dtypes == ("float32",) * 5 and math.isnan(src.nodata)
        assert src.tags()["radiometry"] == SUN_SENSOR
        pixels = src.read()
    valid = ~np.isnan(pixels).any(axis=0)
    medians = dict(
        zip(
            ("blue", "green", "red", "nir", "rededge"),
            np.median(pixels[:, valid], axis=1),
            strict=True,
        )
    )
    assert all(0.01 < value < 0.7 for value in medians.values()), medians
    assert medians["nir"] > 2 * medians["red"]  # a green field, in reflectance


def test_real_rededge_capture_lies_where_its_gps_says(real_mosaic) -> None:
    path, (gps_east_m, gps_north_m) = real_mosaic
    with rasterio.open(path) as src:
        valid = src.read_masks(1) > 0
        rows, cols = np.nonzero(valid)
        east_m, north_m = src.transform * (cols.mean() + 0.5, rows.mean() + 0.5)
        area_m2 = valid.sum() * src.res[0] * src.res[1]
    # A nadir frame is centred under the camera (the bands' common area shrinks a little).
    assert math.hypot(east_m - gps_east_m, north_m - gps_north_m) < 1.0
    # 72.6 m above ground, 5.5 mm lens, 3.75 um pixels: a 63.4 x 47.5 m frame.
    assert 2800 < area_m2 < 3020


def test_real_rededge_bands_are_aligned_within_a_pixel(real_mosaic) -> None:
    path, _ = real_mosaic
    with rasterio.open(path) as src:
        pixels = src.read()
    core = interior(~np.isnan(pixels).any(axis=0))
    green = pixels[1]
    for band in (0, 2, 3, 4):
        assert shift_px(green, pixels[band], core) < 1.0


@pytest.fixture(scope="module")
def synthetic_mosaic(tmp_path_factory) -> Path:
    """Three overlapping synthetic captures, raw values, mosaicked on ``GRID``."""
    flight = write_flight(tmp_path_factory.mktemp("sequoia") / "flight")
    captures = multispectral_captures(ingest_folder(flight, ground_elevation_m=GROUND_ELEVATION_M))
    out = flight.parent / "ms.tif"
    raster = mosaic_captures(captures, GRID, out, tile_px=256)
    assert raster.count == 4 and raster.grid == GRID
    return out


def test_mosaic_ndvi_equals_the_painted_ndvi(synthetic_mosaic: Path, tmp_path: Path) -> None:
    assert validate_cog(synthetic_mosaic)
    index_raster(synthetic_mosaic, "ndvi", tmp_path / "ndvi.tif")
    with rasterio.open(tmp_path / "ndvi.tif") as src, rasterio.open(synthetic_mosaic) as mosaic:
        ndvi = src.read(1)
        assert mosaic.descriptions == ("green", "nir", "red", "rededge")
        assert mosaic.tags()["radiometry"] == UNCALIBRATED
    truth = painted_ndvi(*grid_centres_m(GRID))
    core = interior(~np.isnan(ndvi))
    assert core.mean() > 0.5
    error = np.abs(ndvi - truth)[core]
    assert np.median(error) < 0.005 and np.percentile(error, 95) < 0.02


def test_mosaic_is_placed_where_the_gps_says(synthetic_mosaic: Path) -> None:
    with rasterio.open(synthetic_mosaic) as src:
        green = src.read(1)
    truth = scene_reflectance()["Green"]
    left = round((GRID.bounds[0] - ORTHO_LEFT_M) / ORTHO_RES_M)
    top = round((ORTHO_TOP_M - GRID.bounds[3]) / ORTHO_RES_M)
    expected = truth[top : top + GRID.height, left : left + GRID.width]
    assert shift_px(expected, green, interior(~np.isnan(green))) < 0.5


def test_panel_readings_turn_raw_values_into_reflectance(tmp_path: Path) -> None:
    gains = {"Green": 1.3, "Red": 0.6, "Red edge": 1.0, "NIR": 0.45}
    flight = write_flight(tmp_path / "flight", gains, POSES[:1])
    captures = multispectral_captures(ingest_folder(flight, ground_elevation_m=GROUND_ELEVATION_M))
    panels = {
        name.lower(): PanelReading(0.5 * FULL_SCALE_DN * gain, 0.5) for name, gain in gains.items()
    }
    out = mosaic_captures(captures, GRID, tmp_path / "ms.tif", panels=panels).path
    with rasterio.open(out) as src:
        assert src.tags()["radiometry"] == PANEL
        nir = src.read(src.descriptions.index("nir") + 1)
    truth = scene_reflectance()["NIR"]
    left = round((GRID.bounds[0] - ORTHO_LEFT_M) / ORTHO_RES_M)
    top = round((ORTHO_TOP_M - GRID.bounds[3]) / ORTHO_RES_M)
    expected = truth[top : top + GRID.height, left : left + GRID.width]
    core = interior(~np.isnan(nir))
    assert np.median(np.abs(nir - expected)[core]) < 0.01


def test_a_panel_reading_missing_a_band_is_refused(tmp_path: Path) -> None:
    flight = write_flight(tmp_path / "flight", poses=POSES[:1])
    captures = multispectral_captures(ingest_folder(flight, ground_elevation_m=GROUND_ELEVATION_M))
    with pytest.raises(InputError, match="no reading for band.*nir"):
        mosaic_captures(captures, GRID, tmp_path / "ms.tif", panels={"red": PanelReading(1e4, 0.5)})


def test_a_capture_missing_a_band_is_named(tmp_path: Path) -> None:
    flight = write_flight(tmp_path / "flight", poses=POSES[:2])
    (flight / "IMG_260314_093000_0002_NIR.TIF").unlink()
    result = ingest_folder(flight, ground_elevation_m=GROUND_ELEVATION_M)
    with pytest.raises(InputError, match=r"IMG_260314_093000_0002_GRE.TIF.*missing: nir"):
        multispectral_captures(result)


def test_rgb_photos_among_band_files_are_named(tmp_path: Path) -> None:
    flight = write_flight(tmp_path / "flight", poses=POSES[:1])
    write_photo(flight / "DJI_0001.JPG", make_ortho(size_px=480)[:, :, :], POSES[0])
    with pytest.raises(InputError, match=r"mixes 1 RGB photo\(s\) \(DJI_0001.JPG\)"):
        multispectral_captures(ingest_folder(flight, ground_elevation_m=GROUND_ELEVATION_M))


def test_mosaic_command_recognises_a_multispectral_flight(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("RAQIB_GROUND_ELEVATION_M", str(GROUND_ELEVATION_M))
    flight = write_flight(tmp_path / "flight", poses=POSES[:2])
    out = tmp_path / "ms.tif"
    assert cli.main(["mosaic", str(flight), "-o", str(out)]) == 0  # co-registered too
    assert "from 2 captures of 4 bands, 0 skipped" in capsys.readouterr().out
    with rasterio.open(out) as src:
        assert src.count == 4 and src.descriptions == ("green", "nir", "red", "rededge")

    write_photo(flight / "DJI_0001.JPG", make_ortho(size_px=480), POSES[0])
    assert cli.main(["mosaic", str(flight), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DJI_0001.JPG" in err and "mixes" in err
