"""A tile that cannot be rendered is left as no-data and reported; the rest of the mosaic
is made as if the tile's frames had never been there."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from photo_factory import (
    CRS,
    ORTHO_LEFT_M,
    ORTHO_TOP_M,
    Pose,
    fly_over,
    make_ortho,
)
from rasterio.windows import Window
from shapely.geometry import box

from core.errors import ProcessingError
from core.types import Grid, ImageRecord
from pipeline.ingest import ingest_folder
from pipeline.mosaic import (
    TileFailure,
    failed_tiles,
    failed_tiles_frame,
    mosaic_frames,
    prepare_frames,
    render_each,
    render_tile,
    tile_jobs,
    tile_windows,
)

POSES = (
    Pose(ORTHO_LEFT_M + 75, ORTHO_TOP_M - 80, yaw_deg=0.0),
    Pose(ORTHO_LEFT_M + 125, ORTHO_TOP_M - 80, yaw_deg=90.0),
    Pose(ORTHO_LEFT_M + 75, ORTHO_TOP_M - 120, yaw_deg=180.0),
)
BOUNDS = (ORTHO_LEFT_M + 30, ORTHO_TOP_M - 170, ORTHO_LEFT_M + 170, ORTHO_TOP_M - 30)
GRID = Grid.from_bounds(BOUNDS, 0.25, CRS)
TILE_PX = 128


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImageRecord, ...]:
    flight = fly_over(make_ortho(seed=5), POSES, tmp_path_factory.mktemp("flight"))
    return ingest_folder(flight).images


def _unreadable_after_ingest(record: ImageRecord, folder: Path) -> ImageRecord:
    """``record`` pointing at a copy of its photo that was overwritten after ingest."""
    broken = folder / record.path.name
    broken.write_bytes(record.path.read_bytes()[:200])
    return replace(record, path=broken)


def test_the_tiles_of_an_unreadable_frame_are_no_data_and_the_others_unchanged(
    records: tuple[ImageRecord, ...], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = (*records[:2], _unreadable_after_ingest(records[2], tmp_path))
    with caplog.at_level(logging.WARNING, logger="pipeline.mosaic"):
        out = mosaic_frames(bad, GRID, tmp_path / "holed.tif", tile_px=TILE_PX,
                            balance_exposure=False).path  # fmt: skip
    good = mosaic_frames(records[:2], GRID, tmp_path / "good.tif", tile_px=TILE_PX,
                         balance_exposure=False).path  # fmt: skip

    layout = list(tile_windows(GRID, TILE_PX))
    jobs = tile_jobs(prepare_frames(bad, GRID, balance_exposure=False), GRID, layout)
    meeting = [w for frames, _, w in jobs if any(f.record.path == bad[2].path for f in frames)]
    failed = failed_tiles(out)
    assert [Window(f.col_off, f.row_off, f.width, f.height) for f in failed] == meeting
    assert 0 < len(failed) < len(layout)
    assert all(f.error.startswith(f"ProcessingError: {bad[2].path}: cannot decode") for f in failed)
    assert len(caplog.records) == len(failed)

    with rasterio.open(out) as holed, rasterio.open(good) as reference:
        for window in layout:
            mask = holed.dataset_mask(window=window)
            if window in meeting:
                assert not mask.any()
            else:
                np.testing.assert_array_equal(mask, reference.dataset_mask(window=window))
                np.testing.assert_array_equal(holed.read(window=window),
                                              reference.read(window=window))  # fmt: skip

    layer = failed_tiles_frame(out)
    assert layer.crs == CRS and len(layer) == len(failed)
    assert layer.geometry.iloc[0].equals(box(*failed[0].bounds))
    assert failed_tiles(good) == () and failed_tiles_frame(good).empty


def test_a_tile_that_fails_once_is_rendered_again(records: tuple[ImageRecord, ...]) -> None:
    calls: list[Window] = []

    def fails_first_time(frames, grid, window):
        calls.append(window)
        if calls.count(window) == 1:
            raise OSError("NFS server not responding")
        return render_tile(frames, grid, window)

    layout = list(tile_windows(GRID, 512))[:2]
    jobs = list(tile_jobs(prepare_frames(records, GRID), GRID, layout))
    tiles = list(render_each(fails_first_time, jobs))
    assert len(calls) == 4 and not any(isinstance(t, TileFailure) for t in tiles)
    calls.clear()
    assert (
        list(render_each(fails_first_time, jobs, retries=0))
        == [TileFailure("OSError: NFS server not responding")] * 2
    )


def test_a_mosaic_whose_every_tile_fails_is_an_error_and_not_written(
    records: tuple[ImageRecord, ...], tmp_path: Path
) -> None:
    broken = tuple(_unreadable_after_ingest(r, tmp_path) for r in records)
    under_frames = Grid.from_bounds(
        (ORTHO_LEFT_M + 60, ORTHO_TOP_M - 95, ORTHO_LEFT_M + 90, ORTHO_TOP_M - 65), 0.25, CRS
    )
    with pytest.raises(ProcessingError, match=r"mosaic.tif: no tile could be rendered: "
                       r"ProcessingError: .*DJI_000\d.JPG: cannot decode"):  # fmt: skip
        mosaic_frames(broken, under_frames, tmp_path / "mosaic.tif", tile_px=64)
    assert not (tmp_path / "mosaic.tif").exists()
