"""Mosaic on a DEM: photos ray-cast onto a 30 m ridge come back onto the true orthophoto.

The photos are rendered by following each pixel's ray to the ground of a known ridge
(``photo_factory.seen_ground_m``); the mosaic is compared with the orthophoto draped on it
by phase correlation of patches at checkpoints on the crest and both slopes.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from photo_factory import (
    CRS,
    GROUND_ELEVATION_M,
    HEIGHT_PX,
    ORTHO_LEFT_M,
    ORTHO_RES_M,
    ORTHO_TOP_M,
    WIDTH_PX,
    Pose,
    Ridge,
    fly_over,
    make_ortho,
    render_frame,
    seen_ground_m,
    write_dem,
    write_photo,
)
from shapely.geometry import MultiPoint

from core.errors import InputError
from core.types import Grid, ImageRecord
from pipeline.footprint import footprint
from pipeline.ingest import ingest_folder
from pipeline.mosaic import mosaic_frames, prepare_frames, render_tile, tile_jobs, tile_windows

RIDGE = Ridge(crest_east_m=ORTHO_LEFT_M + 100.0)
ALTITUDE_M = 100.0
"""Above the take-off height, half-way up the 30 m ridge: the ground is 15 m nearer or
farther than the flat model's plane, so relief moves a point 20 m from the nadir by ~3 m."""
# Six overlapping frames (107 x 80 m on the take-off plane) either side of the crest.
POSES = tuple(
    Pose(RIDGE.crest_east_m + east, ORTHO_TOP_M - north, altitude_m=ALTITUDE_M, yaw_deg=yaw)
    for east, north, yaw in (
        (-22, 65, 0.0),
        (22, 65, 90.0),
        (-22, 100, 180.0),
        (22, 100, 30.0),
        (-22, 135, 270.0),
        (22, 135, 0.0),
    )
)
GRID = Grid.from_bounds(
    (ORTHO_LEFT_M + 40, ORTHO_TOP_M - 160, ORTHO_LEFT_M + 160, ORTHO_TOP_M - 40), ORTHO_RES_M, CRS
)
# Checkpoints (m east of the crest, m south of the orthophoto's top): crest and both slopes.
CHECKPOINTS = tuple(
    (east, north) for east in (-15, -8, 0, 8, 15) for north in (60, 80, 100, 120, 140)
)
PATCH_PX = 128
MATCH_PX = 0.5
"""Half a pixel: the flat model's error on this ridge is tens of pixels, and a wrong camera
height, footprint or height lookup would leave pixels, not tenths, of it."""


@pytest.fixture(scope="module")
def ortho() -> np.ndarray:
    return make_ortho(seed=5)


@pytest.fixture(scope="module")
def records(ortho: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> list[ImageRecord]:
    folder = fly_over(ortho, POSES, tmp_path_factory.mktemp("ridge_flight"), RIDGE.height_m)
    return list(ingest_folder(folder).images)


@pytest.fixture(scope="module")
def dem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dem(tmp_path_factory.mktemp("dem") / "ridge_utm.tif", RIDGE.height_m)


@pytest.fixture(scope="module")
def dem_mosaic(records: list[ImageRecord], dem: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mosaic") / "on_dem.tif"
    return mosaic_frames(records, GRID, out, tile_px=512, dem=dem).path


def _read_rgb(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as src:
        return src.read().transpose(1, 2, 0), src.dataset_mask() > 0


def _grid_pixel(east_m: float, north_m: float) -> tuple[int, int]:
    left, _, _, top = GRID.bounds
    return round((east_m - left) / ORTHO_RES_M), round((top - north_m) / ORTHO_RES_M)


def _on_grid(ortho: np.ndarray, east_m: np.ndarray, north_m: np.ndarray) -> np.ndarray:
    """The orthophoto sampled at ground points (bilinear)."""
    cols = ((east_m - ORTHO_LEFT_M) / ORTHO_RES_M - 0.5).astype(np.float32)
    rows = ((ORTHO_TOP_M - north_m) / ORTHO_RES_M - 0.5).astype(np.float32)
    return cv2.remap(ortho, cols, rows, cv2.INTER_LINEAR)


def _patch_pixels(east_m: float, north_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Ground coordinates of the grid pixel centres of the patch around a point."""
    col, row = _grid_pixel(east_m, north_m)
    offsets = np.arange(PATCH_PX) - PATCH_PX // 2 + 0.5
    left, _, _, top = GRID.bounds
    return np.meshgrid(left + (col + offsets) * ORTHO_RES_M, top - (row + offsets) * ORTHO_RES_M)


def _shift_px(expected: np.ndarray, mosaic: np.ndarray, east_m: float, north_m: float):
    """Phase-correlation shift (px) of the mosaic's patch against the expected one."""
    col, row = _grid_pixel(east_m, north_m)
    half = PATCH_PX // 2
    patch = mosaic[row - half : row + half, col - half : col + half]

    def grey(rgb: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)

    window = cv2.createHanningWindow((PATCH_PX, PATCH_PX), cv2.CV_32F)
    (dx, dy), _response = cv2.phaseCorrelate(grey(expected), grey(patch), window)
    return float(np.hypot(dx, dy))


def _shifts_against_truth(ortho: np.ndarray, mosaic: np.ndarray) -> list[float]:
    shifts = []
    for east, north in CHECKPOINTS:
        east_m, north_m = RIDGE.crest_east_m + east, ORTHO_TOP_M - north
        truth = _on_grid(ortho, *_patch_pixels(east_m, north_m))
        shifts.append(_shift_px(truth, mosaic, east_m, north_m))
    return shifts


def test_the_mosaic_on_the_dem_matches_the_ground_on_the_ridge(
    ortho: np.ndarray, dem_mosaic: Path
) -> None:
    mosaic, covered = _read_rgb(dem_mosaic)
    assert covered.all()
    shifts = _shifts_against_truth(ortho, mosaic)
    assert max(shifts) <= MATCH_PX, shifts


def test_a_dem_in_lon_lat_gives_the_same_match(
    ortho: np.ndarray, records: list[ImageRecord], tmp_path: Path
) -> None:
    dem = write_dem(tmp_path / "ridge_wgs84.tif", RIDGE.height_m, crs="EPSG:4326", spacing=1e-5)
    out = mosaic_frames(records, GRID, tmp_path / "mosaic.tif", dem=dem).path
    shifts = _shifts_against_truth(ortho, _read_rgb(out)[0])
    assert max(shifts) <= MATCH_PX, shifts


def _flat_model_ground(pose: Pose, east_m: np.ndarray, north_m: np.ndarray):
    """The ground point the flat model shows at (east, north): the camera sees it on the
    line to the flat plane's point, so it solves P = C + (X - C) (camera - ground(P)) / H."""
    camera_m = GROUND_ELEVATION_M + pose.altitude_m
    ground_e, ground_n = east_m, north_m
    for _ in range(60):
        depth_m = camera_m - RIDGE.height_m(ground_e, ground_n)
        ground_e = pose.east_m + (east_m - pose.east_m) * depth_m / pose.altitude_m
        ground_n = pose.north_m + (north_m - pose.north_m) * depth_m / pose.altitude_m
    return ground_e, ground_n


def test_without_the_dem_the_ridge_moves_by_metres_as_its_geometry_says(
    ortho: np.ndarray, records: list[ImageRecord], dem: Path, tmp_path: Path
) -> None:
    record, pose = records[3], POSES[3]  # one frame: no blending of differently moved copies
    flat = _read_rgb(mosaic_frames([record], GRID, tmp_path / "flat.tif").path)[0]
    on_dem = _read_rgb(mosaic_frames([record], GRID, tmp_path / "dem.tif", dem=dem).path)[0]
    moved_m = []
    for east, north in ((-20, 0), (-15, -15), (-15, 15), (-10, 20), (20, 0), (20, -15)):
        east_m, north_m = pose.east_m + east, pose.north_m + north
        ground_e, ground_n = _flat_model_ground(pose, np.array(east_m), np.array(north_m))
        moved_m.append(float(np.hypot(ground_e - east_m, ground_n - north_m)))
        shown = _on_grid(ortho, *_flat_model_ground(pose, *_patch_pixels(east_m, north_m)))
        truth = _on_grid(ortho, *_patch_pixels(east_m, north_m))
        assert _shift_px(shown, flat, east_m, north_m) <= MATCH_PX, (east, north)
        assert _shift_px(truth, on_dem, east_m, north_m) <= MATCH_PX, (east, north)
    assert min(moved_m) > 1.0, f"the flat mosaic's error at the checkpoints: {moved_m} m"


def _flat_flight(ortho: np.ndarray, folder: Path) -> list[ImageRecord]:
    flat_poses = [dataclasses.replace(pose, altitude_m=60.0) for pose in POSES[:4]]
    return list(ingest_folder(fly_over(ortho, flat_poses, folder)).images)


@pytest.mark.parametrize(
    ("ground_m", "rule"),
    [(GROUND_ELEVATION_M, "absolute"), (GROUND_ELEVATION_M + 50.0, "nadir")],
    ids=["take-off height, absolute", "another datum, nadir"],
)
def test_a_flat_dem_gives_the_flat_mosaic(
    ortho: np.ndarray, tmp_path: Path, ground_m: float, rule: str
) -> None:
    (tmp_path / "flight").mkdir()
    records = _flat_flight(ortho, tmp_path / "flight")
    dem = write_dem(tmp_path / "flat.tif", lambda east, north: np.full(np.shape(east), ground_m))
    flat, flat_covered = _read_rgb(mosaic_frames(records, GRID, tmp_path / "a.tif").path)
    on_dem, covered = _read_rgb(
        mosaic_frames(records, GRID, tmp_path / "b.tif", dem=dem, dem_heights=rule).path
    )
    assert (covered != flat_covered).mean() < 1e-4, "a frame's edge pixel may round either way"
    both = covered & flat_covered
    difference = np.abs(on_dem.astype(int) - flat.astype(int))[both]
    assert difference.max() <= 1 and difference.mean() < 0.01


def test_the_nadir_rule_needs_no_datum_where_absolute_altitudes_mislead(
    ortho: np.ndarray, records: list[ImageRecord], dem: Path, tmp_path: Path
) -> None:
    """GPS altitudes above the ellipsoid over a DEM above the geoid: 50 m too high at
    Berkane. The photos' heights above the ground under them place them right anyway."""
    camera_m = GROUND_ELEVATION_M + ALTITUDE_M
    above_ground = [
        dataclasses.replace(
            record,
            altitude_m=camera_m - float(RIDGE.height_m(pose.east_m, pose.north_m)),
            absolute_altitude_m=camera_m + 50.0,
        )
        for record, pose in zip(records, POSES, strict=True)
    ]
    nadir = mosaic_frames(above_ground, GRID, tmp_path / "n.tif", dem=dem, dem_heights="nadir")
    absolute = mosaic_frames(above_ground, GRID, tmp_path / "a.tif", dem=dem)
    assert max(_shifts_against_truth(ortho, _read_rgb(nadir.path)[0])) <= MATCH_PX
    assert max(_shifts_against_truth(ortho, _read_rgb(absolute.path)[0])) > 10 * MATCH_PX


def test_records_without_absolute_altitude_use_the_nadir_rule(
    records: list[ImageRecord], dem: Path
) -> None:
    no_absolute = [dataclasses.replace(r, absolute_altitude_m=None) for r in records[:2]]
    frames = prepare_frames(no_absolute, GRID, balance_exposure=False, dem=dem)
    for frame, pose in zip(frames, POSES[:2], strict=True):
        expected_m = float(RIDGE.height_m(pose.east_m, pose.north_m)) + ALTITUDE_M
        assert frame.camera_elevation_m == pytest.approx(expected_m, abs=0.01)


def test_footprints_hold_all_the_ground_a_frame_sees_below_the_flat_plane(
    ortho: np.ndarray, dem: Path, tmp_path: Path
) -> None:
    pose = Pose(RIDGE.crest_east_m + 60, ORTHO_TOP_M - 100, altitude_m=ALTITUDE_M, yaw_deg=20.0)
    write_photo(tmp_path / "DJI_0001.JPG", render_frame(ortho, pose), pose)
    (record,) = ingest_folder(tmp_path).images
    (frame,) = prepare_frames([record], GRID, balance_exposure=False, dem=dem)
    border = np.concatenate(
        [
            np.stack([np.linspace(0, WIDTH_PX, 65), np.full(65, edge)], axis=1)
            for edge in (0.0, HEIGHT_PX)
        ]
        + [
            np.stack([np.full(49, edge), np.linspace(0, HEIGHT_PX, 49)], axis=1)
            for edge in (0.0, WIDTH_PX)
        ]
    )
    seen = MultiPoint(np.stack(seen_ground_m(pose, RIDGE.height_m, *border.T), axis=1))
    assert frame.footprint.contains(seen)
    assert not footprint(record, CRS).contains(seen), "the valley is seen beyond the flat one"


def test_a_tile_on_the_dem_renders_alone_after_pickling(
    records: list[ImageRecord], dem: Path, dem_mosaic: Path
) -> None:
    frames = prepare_frames(records, GRID, dem=dem)
    layout = list(tile_windows(GRID, 512))
    job = list(tile_jobs(frames, GRID, layout))[4]
    rgb, mask = render_tile(*pickle.loads(pickle.dumps(job)), dem=dem)
    with rasterio.open(dem_mosaic) as src:
        np.testing.assert_array_equal(rgb, src.read(window=job[2]))
        np.testing.assert_array_equal(mask, src.dataset_mask(window=job[2]))


def test_a_dem_above_the_camera_names_the_datum(records: list[ImageRecord], tmp_path: Path) -> None:
    dem = write_dem(tmp_path / "high.tif", lambda east, north: RIDGE.height_m(east, north) + 120)
    with pytest.raises(InputError, match="vertical datum") as caught:
        mosaic_frames(records, GRID, tmp_path / "m.tif", dem=dem)
    assert str(dem) in str(caught.value) and records[0].path.name in str(caught.value)
    assert not (tmp_path / "m.tif").exists()
