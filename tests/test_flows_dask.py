"""The mosaic flow's tiles as Prefect tasks on a two-process Dask cluster: the same COG as
the local run, every tile recorded by the test's Prefect API."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio

sys.path.insert(0, str(Path(__file__).parent / "pipeline"))  # photo_factory
from photo_factory import ORTHO_LEFT_M, ORTHO_TOP_M, Pose, make_ortho, render_frame, write_photo

import flows
from core.errors import ProcessingError
from core.settings import load_settings
from core.types import Grid, ImageRecord
from pipeline.ingest import ingest_folder
from pipeline.mosaic import mosaic_frames, tile_windows

pytestmark = pytest.mark.slow

CRS = "EPSG:32630"
# Six overlapping frames (64 x 48 m each); 0.05 m pixels make a 3 x 3 grid of 1024 px tiles.
POSES = tuple(
    Pose(ORTHO_LEFT_M + east, ORTHO_TOP_M - north, yaw_deg=yaw)
    for east, north, yaw in (
        (75, 80, 0.0),
        (125, 80, 90.0),
        (75, 120, 180.0),
        (125, 120, 30.0),
        (100, 100, 45.0),
        (100, 140, 270.0),
    )
)
GRID = Grid.from_bounds(
    (ORTHO_LEFT_M + 40, ORTHO_TOP_M - 170, ORTHO_LEFT_M + 170, ORTHO_TOP_M - 40), 0.05, CRS
)


@pytest.fixture(scope="module")
def prefect_api_url() -> Iterator[str]:
    """The Prefect API of this test session (a test harness, unless one is already up),
    exported so that processes started from now on (Dask workers) report to it too."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with pytest.MonkeyPatch.context() as env:
        if PREFECT_API_URL.value():
            env.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
            yield PREFECT_API_URL.value()
            return
        with prefect_test_harness(server_startup_timeout=120):
            env.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
            yield PREFECT_API_URL.value()


@pytest.fixture(scope="module")
def scheduler_address(prefect_api_url: str) -> Iterator[str]:
    """A local dask.distributed cluster of two single-threaded worker processes."""
    from distributed import LocalCluster

    assert os.environ["PREFECT_API_URL"] == prefect_api_url
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        host="127.0.0.1",
        processes=True,
        dashboard_address=None,
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImageRecord, ...]:
    ortho = make_ortho(seed=11)
    folder = tmp_path_factory.mktemp("flight")
    for index, pose in enumerate(POSES):
        write_photo(folder / f"DJI_{index:04d}.JPG", render_frame(ortho, pose), pose)
    return ingest_folder(folder).images


@pytest.fixture(scope="module")
def local_mosaic(records: tuple[ImageRecord, ...], tmp_path_factory: pytest.TempPathFactory):
    return mosaic_frames(records, GRID, tmp_path_factory.mktemp("local") / "mosaic.tif").path


def _pixels_and_mask(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as src:
        return src.read(), src.dataset_mask()


def _assert_same_mosaic(path: Path, reference: Path) -> None:
    pixels, mask = _pixels_and_mask(path)
    expected_pixels, expected_mask = _pixels_and_mask(reference)
    np.testing.assert_array_equal(mask, expected_mask)
    np.testing.assert_array_equal(pixels, expected_pixels)
    assert path.read_bytes() == reference.read_bytes()


async def _render_tile_runs(flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        return await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


def test_tiles_on_a_dask_cluster_make_the_local_mosaic(
    records: tuple[ImageRecord, ...],
    local_mosaic: Path,
    scheduler_address: str,
    tmp_path: Path,
) -> None:
    from distributed import Client
    from prefect_dask import DaskTaskRunner

    state = flows.mosaic_flow.with_options(task_runner=DaskTaskRunner(address=scheduler_address))(
        records, GRID, tmp_path / "mosaic.tif", return_state=True
    )
    raster = state.result()
    _assert_same_mosaic(raster.path, local_mosaic)
    assert 0.3 < (_pixels_and_mask(raster.path)[1] > 0).mean() < 0.9, "covered and bare ground"

    tiles = len(list(tile_windows(GRID, 1024)))
    assert tiles == 9
    runs = asyncio.run(_render_tile_runs(state.state_details.flow_run_id))
    assert len(runs) == tiles, "every tile is a task run in the test's Prefect API"
    assert {run.name.split("-")[0] for run in runs} == {"render_tile"}
    assert all(run.state.is_completed() for run in runs)

    def frames_decoded_here() -> int:  # runs on each worker (a closure pickles by value)
        from pipeline import mosaic

        return mosaic._decoded_frame.cache_info().currsize

    with Client(scheduler_address) as client:
        decoded = client.run(frames_decoded_here)
    assert len(decoded) == 2 and all(decoded.values()), f"both workers rendered tiles: {decoded}"


def test_tile_tasks_on_local_threads_make_the_same_mosaic(
    records: tuple[ImageRecord, ...], local_mosaic: Path, prefect_api_url: str, tmp_path: Path
) -> None:
    raster = flows.mosaic_flow(records, GRID, tmp_path / "mosaic.tif")
    _assert_same_mosaic(raster.path, local_mosaic)


def test_an_unreadable_photo_fails_the_flow_naming_it(
    records: tuple[ImageRecord, ...], prefect_api_url: str, tmp_path: Path
) -> None:
    broken = tmp_path / "DJI_9999.JPG"
    broken.write_bytes(b"not a jpeg")
    bad = (*records[:-1], replace(records[-1], path=broken))
    with pytest.raises(ProcessingError, match="DJI_9999.JPG: cannot decode"):
        flows.mosaic_flow(bad, GRID, tmp_path / "mosaic.tif")
    assert not (tmp_path / "mosaic.tif").exists()


def test_mosaic_folder_uses_the_configured_cluster_and_reports_progress(
    records: tuple[ImageRecord, ...], scheduler_address: str, tmp_path: Path
) -> None:
    folder = records[0].path.parent
    settings = load_settings(workspace=tmp_path, dask_cluster=scheduler_address)
    progress: list[tuple[int, int]] = []

    def on_tile(done: int, total: int) -> None:
        progress.append((done, total))

    raster, ingested = flows.mosaic_folder(
        folder, tmp_path / "cluster.tif", settings, refine=False, on_tile=on_tile
    )
    local = mosaic_frames(ingested.images, raster.grid, tmp_path / "local.tif").path
    _assert_same_mosaic(raster.path, local)
    assert progress[-1] == (len(progress), len(progress))
