"""The mosaic flow's tiles and the process flow's photos and tiles as Prefect tasks on a
two-process Dask cluster: the same outputs as the local run, every task recorded by the
test's Prefect API."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
from rich.console import Console

sys.path.insert(0, str(Path(__file__).parent / "pipeline"))  # photo_factory
from photo_factory import ORTHO_LEFT_M, ORTHO_TOP_M, Pose, fly_over, make_ortho

import flows
from core.settings import load_settings
from core.types import Grid, ImageRecord, Raster
from gis.publish import STYLES_TABLE, list_layers
from pipeline.ingest import ingest_folder
from pipeline.mosaic import TILE_RETRIES, failed_tiles, mosaic_frames, tile_windows
from sim.world import generate

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
    flight = fly_over(make_ortho(seed=11), POSES, tmp_path_factory.mktemp("flight"))
    return ingest_folder(flight).images


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


async def _task_runs(flow_run_id) -> list:
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
    runs = asyncio.run(_task_runs(state.state_details.flow_run_id))
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


def test_the_tiles_of_a_photo_unreadable_after_ingest_are_no_data_and_reported(
    records: tuple[ImageRecord, ...], prefect_api_url: str, tmp_path: Path
) -> None:
    broken = tmp_path / records[-1].path.name
    broken.write_bytes(records[-1].path.read_bytes()[:100])  # truncated after ingest
    bad = (*records[:-1], replace(records[-1], path=broken))
    state = flows.mosaic_flow(bad, GRID, tmp_path / "mosaic.tif", return_state=True)
    assert state.is_completed()
    failed = failed_tiles(state.result().path)
    assert 0 < len(failed) < len(list(tile_windows(GRID, 1024)))
    assert all(f"{broken}: cannot decode the photo" in tile.error for tile in failed)

    runs = asyncio.run(_task_runs(state.state_details.flow_run_id))
    gave_up = [run for run in runs if run.state.is_failed()]
    assert len(gave_up) == len(failed), "each failed tile is a failed task run"
    assert all(run.run_count == 1 + TILE_RETRIES for run in gave_up), "after its retry"

    console = Console(record=True, width=300)
    flows.print_epoch_result(_result_with(state.result()), console)
    summary = console.export_text()
    assert summary.count("tile left as no-data at px") == len(failed)
    assert f"{broken}: cannot decode the photo" in summary


def _result_with(mosaic: Raster) -> flows.EpochResult:
    """An epoch's result around ``mosaic``, for its printed summary."""
    return flows.EpochResult(
        epoch="epoch1", captured_on=date(2026, 7, 10), out_dir=mosaic.path.parent,
        geopackage=mosaic.path.with_suffix(".gpkg"), mosaic=mosaic, images=5, skipped=(),
        buildings=0, new_buildings=0, flags=0,
    )  # fmt: skip


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


def _layers(geopackage: Path, *workspaces: Path) -> dict[str, pd.DataFrame]:
    """Every layer of ``geopackage``, paths inside ``workspaces`` made relative to them."""
    layers = {}
    for layer in list_layers(geopackage):
        if layer != STYLES_TABLE:
            frame = pyogrio.read_dataframe(geopackage, layer=layer)
            for column in frame.columns.drop("geometry", errors="ignore"):
                for workspace in workspaces:
                    if pd.api.types.is_string_dtype(frame[column]):
                        frame[column] = frame[column].str.removeprefix(f"{workspace}/")
            layers[layer] = frame
    return layers


def test_a_survey_processed_on_the_cluster_publishes_what_the_local_run_did(
    scheduler_address: str, tmp_path: Path
) -> None:
    world = generate(tmp_path / "world", width_m=150, height_m=140)
    epoch, captured_on = world.epochs[0]
    here = load_settings(workspace=tmp_path / "here", sim_speedup=40.0)
    local = flows.survey(world.root, epoch, here)  # plan, fly, process on this machine

    _, bounds = flows.survey_area(world, here.crs, None)
    cluster = load_settings(workspace=tmp_path / "cluster", dask_cluster=scheduler_address)
    state = flows.process(
        local.out_dir / "frames",
        world.paths.parcels,
        world.paths.permits,
        epoch,
        captured_on,
        cluster,
        projects_path=world.paths.projects,
        grid=Grid.from_bounds(bounds, flows.SURVEY_GSD_CM / 100.0, here.crs),
        return_state=True,
    )
    remote = state.result()

    _assert_same_mosaic(remote.mosaic.path, local.mosaic.path)
    workspaces = (here.workspace, cluster.workspace)  # both read the photos the survey took
    expected = _layers(local.geopackage, *workspaces)
    published = _layers(remote.geopackage, *workspaces)
    assert set(published) == set(expected) - {"mission"}  # the process run was given none
    assert len(published["images"]) == local.images > 10 and len(published["buildings"]) > 0
    assert published["failed_tiles"].empty
    for layer, frame in published.items():
        pd.testing.assert_frame_equal(frame, expected[layer], obj=layer)

    runs = asyncio.run(_task_runs_of_subflows(state.state_details.flow_run_id))
    assert runs["ingest_photo"] == local.images + len(local.skipped)
    assert runs["render_tile"] == len(list(tile_windows(remote.mosaic.grid, 1024)))


async def _task_runs_of_subflows(flow_run_id) -> dict[str, int]:
    """How many task runs of each name the subflows of a flow run made."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    async with get_client() as client:
        children = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])
            )
        )
        counts: dict[str, int] = {}
        for child in children:
            for run in await _task_runs(child.id):
                name = run.name.rsplit("-", 1)[0]
                counts[name] = counts.get(name, 0) + 1
    return counts
