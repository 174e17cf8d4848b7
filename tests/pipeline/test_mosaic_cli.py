"""``raqib mosaic``: a folder of photos to a COG from the command line, bad photos reported,
on flat ground or on a DEM."""

from __future__ import annotations

from pathlib import Path

import rasterio
from photo_factory import (
    ORTHO_LEFT_M,
    ORTHO_TOP_M,
    Pose,
    Ridge,
    fly_over,
    make_ortho,
    write_dem,
)

import cli
from core.types import Grid
from pipeline.ingest import ingest_folder
from pipeline.mosaic import mosaic_frames, validate_cog

POSES = (
    Pose(ORTHO_LEFT_M + 75, ORTHO_TOP_M - 80, yaw_deg=0.0),
    Pose(ORTHO_LEFT_M + 115, ORTHO_TOP_M - 80, yaw_deg=0.0),
    Pose(ORTHO_LEFT_M + 75, ORTHO_TOP_M - 110, yaw_deg=180.0),
    Pose(ORTHO_LEFT_M + 115, ORTHO_TOP_M - 110, yaw_deg=180.0),
)


def test_mosaic_command_writes_a_cog_and_reports_skipped_photos(tmp_path: Path, capsys) -> None:
    ortho = make_ortho(seed=3)
    flight = fly_over(ortho, POSES, tmp_path / "flight")
    (flight / "DJI_0099.JPG").write_bytes(b"not a photo")
    out = tmp_path / "mosaic.tif"

    assert cli.main(["mosaic", str(flight), "-o", str(out), "--no-refine"]) == 0
    printed = capsys.readouterr().out
    assert "from 4 photos, 1 skipped" in printed and "DJI_0099.JPG" in printed
    assert validate_cog(out)
    with rasterio.open(out) as cog:
        assert cog.count == 3 and cog.crs.to_string() == "EPSG:32630"
        covered = cog.dataset_mask() > 0
        assert 0.3 < covered.mean() < 1.0


def test_mosaic_command_of_a_folder_without_photos_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert cli.main(["mosaic", str(tmp_path / "empty"), "-o", str(tmp_path / "m.tif")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "empty" in err


def test_mosaic_command_names_an_unreachable_dask_cluster(tmp_path: Path, capsys) -> None:
    import socket

    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{unused.getsockname()[1]}"
    out = tmp_path / "m.tif"
    assert cli.main(["mosaic", str(tmp_path), "-o", str(out), "--cluster", address]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dask_cluster" in err and address in err
    assert cli.main(["mosaic", str(tmp_path), "-o", str(out), "--cluster", "localhost"]) == 2
    assert "tcp://host:port" in capsys.readouterr().err
    assert not out.exists()


def test_mosaic_command_orthorectifies_on_a_dem_by_the_chosen_height_rule(tmp_path: Path) -> None:
    ortho = make_ortho(seed=3)
    ridge = Ridge(crest_east_m=ORTHO_LEFT_M + 95)
    flight = fly_over(ortho, POSES[:2], tmp_path / "flight", ridge.height_m)
    dem = write_dem(tmp_path / "dem.tif", ridge.height_m)
    out = tmp_path / "mosaic.tif"
    args = ["mosaic", str(flight), "-o", str(out), "--no-refine", "--dem", str(dem)]

    assert cli.main([*args, "--dem-heights", "nadir"]) == 0
    with rasterio.open(out) as cog:
        grid = Grid(cog.crs.to_string(), cog.transform, cog.width, cog.height)
    records = ingest_folder(flight).images
    by_rule = {
        rule: mosaic_frames(records, grid, tmp_path / f"{rule}.tif", dem=dem, dem_heights=rule)
        for rule in ("nadir", "absolute")
    }
    assert out.read_bytes() == by_rule["nadir"].path.read_bytes()
    assert by_rule["nadir"].path.read_bytes() != by_rule["absolute"].path.read_bytes()


def test_mosaic_grid_on_a_dem_holds_the_ground_seen_below_the_flat_plane(tmp_path: Path) -> None:
    ortho = make_ortho(seed=3)
    ridge = Ridge(crest_east_m=ORTHO_LEFT_M + 95)  # the frames' nadir points are up its sides
    flight = fly_over(ortho, POSES, tmp_path / "flight", ridge.height_m)
    dem = write_dem(tmp_path / "dem.tif", ridge.height_m)
    flat, on_dem = tmp_path / "flat.tif", tmp_path / "on_dem.tif"
    common = ["--no-refine"]
    assert cli.main(["mosaic", str(flight), "-o", str(flat), *common]) == 0
    assert cli.main(["mosaic", str(flight), "-o", str(on_dem), "--dem", str(dem), *common]) == 0

    with rasterio.open(flat) as a, rasterio.open(on_dem) as b:
        assert b.bounds.left < a.bounds.left or b.bounds.right > a.bounds.right
        assert b.bounds.left <= a.bounds.left and b.bounds.right >= a.bounds.right
        assert b.bounds.bottom <= a.bounds.bottom and b.bounds.top >= a.bounds.top
        edge = b.dataset_mask()[:, :3]  # ground the flat grid would have cropped
        assert edge.any() or b.dataset_mask()[:, -3:].any()
    assert cli.main(["mosaic", str(flight), "-o", str(dem), "--dem", str(dem), *common]) == 2
