"""Mosaic: frames rendered from a known orthophoto at known poses come back onto it."""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from photo_factory import (
    CRS,
    ORTHO_LEFT_M,
    ORTHO_RES_M,
    ORTHO_TOP_M,
    Pose,
    fly_over,
    make_ortho,
    render_frame,
    write_photo,
)
from rasterio.windows import Window

from core.errors import ProcessingError
from core.types import Grid, ImageRecord
from pipeline.ingest import ingest_folder
from pipeline.mosaic import (
    mosaic_frames,
    prepare_frames,
    render_threaded,
    render_tile,
    tile_jobs,
    tile_windows,
    validate_cog,
)

# Four overlapping frames (64 x 48 m each) at yaws 0, 90, 180 and 30 deg.
POSES = (
    Pose(ORTHO_LEFT_M + 75, ORTHO_TOP_M - 80, yaw_deg=0.0),
    Pose(ORTHO_LEFT_M + 125, ORTHO_TOP_M - 80, yaw_deg=90.0),
    Pose(ORTHO_LEFT_M + 75, ORTHO_TOP_M - 120, yaw_deg=180.0),
    Pose(ORTHO_LEFT_M + 125, ORTHO_TOP_M - 120, yaw_deg=30.0),
)
GRID_BOUNDS = (ORTHO_LEFT_M + 30, ORTHO_TOP_M - 170, ORTHO_LEFT_M + 170, ORTHO_TOP_M - 30)


@pytest.fixture(scope="module")
def ortho() -> np.ndarray:
    return make_ortho(seed=7)


@pytest.fixture(scope="module")
def records(ortho: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> list[ImageRecord]:
    return list(ingest_folder(fly_over(ortho, POSES, tmp_path_factory.mktemp("flight"))).images)


def _ortho_window(ortho: np.ndarray, grid: Grid) -> np.ndarray:
    """The orthophoto pixels on ``grid`` (same resolution, whole-pixel offset)."""
    left, _, _, top = grid.bounds
    col = round((left - ORTHO_LEFT_M) / ORTHO_RES_M)
    row = round((ORTHO_TOP_M - top) / ORTHO_RES_M)
    return ortho[row : row + grid.height, col : col + grid.width].transpose(2, 0, 1)


@pytest.fixture(scope="module")
def mosaic(records: list[ImageRecord], tmp_path_factory: pytest.TempPathFactory) -> Path:
    grid = Grid.from_bounds(GRID_BOUNDS, ORTHO_RES_M, CRS)
    out = tmp_path_factory.mktemp("mosaic") / "epoch1" / "mosaic.tif"
    raster = mosaic_frames(records, grid, out, tile_px=512)
    assert raster.path == out and raster.grid == grid
    return out


def test_mosaic_is_a_cog_exactly_on_the_grid(mosaic: Path) -> None:
    grid = Grid.from_bounds(GRID_BOUNDS, ORTHO_RES_M, CRS)
    assert validate_cog(mosaic)
    with rasterio.open(mosaic) as src:
        assert (src.count, src.dtypes[0]) == (3, "uint8")
        assert src.crs.to_epsg() == 32630
        assert src.transform.almost_equals(grid.transform)
        assert (src.height, src.width) == grid.shape
        assert src.overviews(1), "a COG carries overviews"
    assert [p.name for p in mosaic.parent.iterdir()] == ["mosaic.tif"], "no temporary left"


def test_mosaic_matches_the_ortho_where_covered(mosaic: Path, ortho: np.ndarray) -> None:
    grid = Grid.from_bounds(GRID_BOUNDS, ORTHO_RES_M, CRS)
    with rasterio.open(mosaic) as src:
        pixels = src.read()
        covered = cv2.erode(src.dataset_mask(), np.ones((5, 5), np.uint8)) > 0
    truth = _ortho_window(ortho, grid)
    difference = np.abs(pixels.astype(int) - truth.astype(int))[:, covered]
    assert covered.mean() > 0.4
    assert difference.mean() < 4.0
    assert np.percentile(difference, 99) < 20
    gray_mosaic = np.where(covered, pixels.mean(axis=0), 0).astype(np.float32)
    gray_truth = np.where(covered, truth.mean(axis=0), 0).astype(np.float32)
    (shift_col, shift_row), _ = cv2.phaseCorrelate(gray_mosaic, gray_truth)
    assert abs(shift_col) < 0.25 and abs(shift_row) < 0.25


def test_mask_marks_uncovered_ground(mosaic: Path) -> None:
    with rasterio.open(mosaic) as src:
        mask = src.dataset_mask()
        pixels = src.read()
    assert mask[0, 0] == 0 and mask[-1, 0] == 0, "grid corners are outside every frame"
    assert mask[700, 450] == 255, "centre of the first frame's overlap is covered"
    assert (pixels[:, mask == 0] == 0).all()


def test_coarser_grid_decodes_frames_reduced(
    records: list[ImageRecord], ortho: np.ndarray, tmp_path: Path
) -> None:
    grid = Grid.from_bounds(GRID_BOUNDS, 0.4, CRS)
    out = mosaic_frames(records, grid, tmp_path / "coarse.tif").path
    with rasterio.open(out) as src:
        pixels = src.read()
        covered = cv2.erode(src.dataset_mask(), np.ones((3, 3), np.uint8)) > 0
    truth = cv2.resize(
        _ortho_window(ortho, Grid.from_bounds(GRID_BOUNDS, ORTHO_RES_M, CRS)).transpose(1, 2, 0),
        (grid.width, grid.height),
        interpolation=cv2.INTER_AREA,
    ).transpose(2, 0, 1)
    assert (pixels.shape[1], pixels.shape[2]) == grid.shape
    assert np.abs(pixels.astype(int) - truth.astype(int))[:, covered].mean() < 6.0


def test_no_frames_is_a_processing_error(tmp_path: Path) -> None:
    grid = Grid.from_bounds(GRID_BOUNDS, 1.0, CRS)
    with pytest.raises(ProcessingError, match="no frames"):
        mosaic_frames([], grid, tmp_path / "empty.tif")
    assert not list(tmp_path.iterdir())


def test_jpeg_profile_keeps_the_mask(records: list[ImageRecord], tmp_path: Path) -> None:
    grid = Grid.from_bounds(GRID_BOUNDS, 0.2, CRS)
    out = mosaic_frames(records, grid, tmp_path / "jpeg.tif", cog_profile="jpeg").path
    assert validate_cog(out)
    with rasterio.open(out) as src:
        assert src.compression.name == "jpeg"
        mask = src.dataset_mask()
    assert mask[0, 0] == 0 and mask[350, 225] == 255


def _reversed_via_pickle(render, jobs):
    """A mapper that renders every tile from a pickled copy of its job, last tile first."""
    jobs = [pickle.loads(pickle.dumps(job)) for job in jobs]
    tiles = [render(*job) for job in reversed(jobs)]
    yield from reversed(tiles)


def test_tiles_rendered_apart_in_any_order_give_the_same_cog(
    records: list[ImageRecord], mosaic: Path, tmp_path: Path
) -> None:
    grid = Grid.from_bounds(GRID_BOUNDS, ORTHO_RES_M, CRS)
    out = mosaic_frames(
        records, grid, tmp_path / "apart.tif", tile_px=512, map_tiles=_reversed_via_pickle
    ).path
    assert out.read_bytes() == mosaic.read_bytes()


def test_tiles_rendered_on_threads_give_the_same_cog(
    records: list[ImageRecord], mosaic: Path, tmp_path: Path
) -> None:
    grid = Grid.from_bounds(GRID_BOUNDS, ORTHO_RES_M, CRS)
    threaded = partial(render_threaded, threads=3)
    out = mosaic_frames(records, grid, tmp_path / "threads.tif", tile_px=512, map_tiles=threaded)
    assert out.path.read_bytes() == mosaic.read_bytes()


def test_each_tile_is_written_before_the_next_is_rendered(
    records: list[ImageRecord], tmp_path: Path
) -> None:
    rendered: list[int] = []
    written: list[tuple[int, int]] = []

    def counting(render, jobs):
        for job in jobs:
            rendered.append(1)
            yield render(*job)

    grid = Grid.from_bounds(GRID_BOUNDS, 0.2, CRS)
    mosaic_frames(
        records,
        grid,
        tmp_path / "streamed.tif",
        tile_px=128,
        map_tiles=counting,
        on_tile=lambda done, total: written.append((done, len(rendered))),
    )
    assert len(written) == len(list(tile_windows(grid, 128))) == 36
    assert all(done == rendered_so_far for done, rendered_so_far in written)


def test_a_tile_alone_is_the_mosaic_there(records: list[ImageRecord], mosaic: Path) -> None:
    grid = Grid.from_bounds(GRID_BOUNDS, ORTHO_RES_M, CRS)
    window = Window(0, 0, 512, 512)
    frames, _, _ = next(tile_jobs(prepare_frames(records, grid), grid, [window]))
    rgb, mask = render_tile(frames, grid, window)
    with rasterio.open(mosaic) as src:
        np.testing.assert_array_equal(rgb, src.read(window=window))
        np.testing.assert_array_equal(mask, src.dataset_mask(window=window))
    assert 0 < len(frames) < len(records), "only the frames meeting the tile"
    assert 0 < mask.mean() < 255


def test_a_photo_rewritten_in_place_is_decoded_again(ortho: np.ndarray, tmp_path: Path) -> None:
    pose = POSES[0]
    grid = Grid.from_bounds(GRID_BOUNDS, 0.2, CRS)
    window = Window(0, 0, grid.width, grid.height)
    tiles = []
    for pixels in (render_frame(ortho, pose), 255 - render_frame(ortho, pose)):
        write_photo(tmp_path / "DJI_0001.JPG", pixels, pose)
        (record,) = ingest_folder(tmp_path).images
        tiles.append(render_tile(prepare_frames([record], grid), grid, window))
    (first, mask), (second, _) = tiles
    covered = mask > 0
    assert np.abs(first[:, covered].astype(int) + second[:, covered] - 255).mean() < 3
