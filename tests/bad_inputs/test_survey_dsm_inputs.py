"""Bad surface models given to ``raqib survey --dsm`` and ``raqib process --dsm``: one clear
line naming the DSM, exit 2, checked before anything is planned, flown or ingested."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform_bounds

import cli
import flows
from core.errors import InputError
from core.settings import load_settings
from core.types import Grid


def not_a_raster(folder: Path, _world) -> Path:
    path = folder / "dsm.tif"
    path.write_text("heights to follow", encoding="utf-8")
    return path


def elsewhere(folder: Path, world) -> Path:
    """A DSM of the same size as the world's, 50 km east of it."""
    path = folder / "oujda_dsm.tif"
    with rasterio.open(world.paths.dsm("epoch1")) as src:
        moved = Affine(
            src.transform.a, 0, src.transform.c + 50_000, 0, src.transform.e, src.transform.f
        )
        with rasterio.open(path, "w", **(src.profile | {"transform": moved})) as dst:
            dst.write(np.full((src.height, src.width), 120.0, np.float32), 1)
    return path


CASES: dict[str, tuple[Callable[[Path, object], Path], str]] = {
    "text file named .tif": (not_a_raster, "cannot open raster"),
    "DSM of another place": (elsewhere, "surface model does not overlap the image"),
}


@pytest.fixture(scope="module")
def world(world_copy, tmp_path_factory: pytest.TempPathFactory):
    return world_copy(tmp_path_factory.mktemp("dsm_world") / "world")


def _one_line_naming(err: str, dsm: Path, expected: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert str(dsm) in err and expected in err, err


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_survey_with_a_bad_dsm_flies_nothing(
    prefect_server: None, world, tmp_path: Path, capsys, case: str
) -> None:
    make, expected = CASES[case]
    dsm = make(tmp_path, world)
    workspace = tmp_path / "ws"
    args = ["survey", "--world", str(world.root), "--workspace", str(workspace)]
    assert cli.main([*args, "--dsm", str(dsm)]) == 2
    captured = capsys.readouterr()
    _one_line_naming(captured.err, dsm, expected)
    assert "Traceback" not in captured.err + captured.out
    assert not (workspace / "epoch1").exists(), "nothing planned or flown"


def test_process_with_a_dsm_that_is_no_raster_stops_before_ingest(
    world, tmp_path: Path, capsys
) -> None:
    dsm = not_a_raster(tmp_path, world)
    frames = tmp_path / "frames"
    frames.mkdir()
    args = [
        "process", str(frames), "--parcels", str(world.paths.parcels),
        "--permits", str(world.paths.permits), "--date", "2026-06-15",
        "--workspace", str(tmp_path / "ws"), "--dsm", str(dsm),
    ]  # fmt: skip
    assert cli.main(args) == 2
    _one_line_naming(capsys.readouterr().err, dsm, "cannot open raster")
    assert not (tmp_path / "ws").exists()


def test_process_on_a_known_grid_checks_the_dsm_overlaps_it_first(
    prefect_server: None, world, tmp_path: Path
) -> None:
    dsm = elsewhere(tmp_path, world)
    settings = load_settings(workspace=tmp_path / "ws")
    bounds = transform_bounds(world.crs, settings.crs, *world.bounds)
    with pytest.raises(InputError, match="does not overlap the image") as raised:
        flows.process(
            tmp_path / "no_photos_here",
            world.paths.parcels,
            world.paths.permits,
            "epoch1",
            date(2026, 1, 15),
            settings,
            grid=Grid.from_bounds(bounds, 0.1, settings.crs),
            dsm=dsm,
        )
    assert str(dsm) in str(raised.value)
    assert not settings.workspace.exists()
