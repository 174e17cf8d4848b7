"""`raqib trees` on a user's orthophoto: the simulator's in its UTM and in Web Mercator find the
same crowns, close to the planted trees (measured P 0.89 / R 0.85 within 1 m), and the trees
missing from the orchard's rows (measured: all 12 removed ones, 2 false); the real WebODM
orthophoto runs."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from byo_images import reprojected, run

from models.trees import point_scores
from sim.world import generate


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    return generate(tmp_path_factory.mktemp("world"), seed=7, width_m=200, height_m=160)


@pytest.mark.slow
def test_utm_and_web_mercator_find_the_planted_trees(world, tmp_path: Path, capsys) -> None:
    mercator = reprojected(world.paths.ortho("epoch1"), tmp_path / "wm.tif", "EPSG:3857")
    truth = gpd.read_file(world.paths.truth, layer="trees")
    removed = truth[truth["status"] == "removed"]
    found = {}
    for name, image in (("utm", world.paths.ortho("epoch1")), ("wm", mercator)):
        out = tmp_path / f"{name}.gpkg"
        code, stdout, stderr = run("trees", image, "-o", out, "--parcels", world.paths.parcels,
                                   capsys=capsys)  # fmt: skip
        assert code == 0, stderr
        assert stdout.startswith(f"{out}: ") and "tree crowns in 17 parcels (" in stdout
        layers = {"tree_crowns", "tree_points", "missing_trees", "trees_per_parcel"}
        assert set(dict(pyogrio.list_layers(out))) == layers
        points = gpd.read_file(out, layer="tree_points")
        crowns = gpd.read_file(out, layer="tree_crowns")
        assert points.crs == crowns.crs == (world.crs if name == "utm" else "EPSG:3857")
        assert (points.geometry.x == points["centre_x"]).all()
        assert points.within(crowns.geometry.buffer(0.5)).all()
        counts = gpd.read_file(out, layer="trees_per_parcel")
        missing = gpd.read_file(out, layer="missing_trees")
        assert missing.crs == points.crs and f"({len(missing)} missing from their rows)" in stdout
        per_parcel = missing.groupby("parcel_id").size()
        assert counts.set_index("parcel_id")["missing_trees"].to_dict() == {
            parcel: per_parcel.get(parcel, 0) for parcel in counts["parcel_id"]
        }
        gaps = point_scores(missing.to_crs(world.crs), removed, radius_m=1.0)
        assert gaps.recall >= 0.9 and gaps.precision >= 0.75, gaps
        found[name] = (points, counts)
    utm_points, utm_counts = found["utm"]
    wm_points, wm_counts = found["wm"]
    alike = point_scores(wm_points.to_crs(world.crs), utm_points, radius_m=0.5)
    assert alike.f1 >= 0.95, alike
    counts = utm_counts.merge(wm_counts.drop(columns="geometry"), on="parcel_id")
    assert (abs(counts["tree_count_x"] - counts["tree_count_y"]) <= 2).all()
    assert counts["tree_count_x"].sum() == len(utm_points)
    for points in (utm_points, wm_points):
        against_truth = point_scores(points.to_crs(world.crs), truth, radius_m=1.0)
        assert against_truth.precision >= 0.85 and against_truth.recall >= 0.8, against_truth


def test_the_real_webodm_orthophoto_runs(shared_data: Path, tmp_path: Path, capsys) -> None:
    ortho = shared_data / "orthophotos" / "webodm_orthophoto.tif"
    code, stdout, stderr = run("trees", ortho, "-o", tmp_path / "odm.gpkg", capsys=capsys)
    assert code == 0, stderr
    count = int(stdout.split(": ")[1].split(" tree crowns")[0])
    crowns = gpd.read_file(tmp_path / "odm.gpkg", layer="tree_crowns")
    assert len(crowns) == count and crowns.crs == "EPSG:32615"
    assert set(dict(pyogrio.list_layers(tmp_path / "odm.gpkg"))) == {"tree_crowns", "tree_points"}


def test_parcels_away_from_the_image_are_refused(world, tmp_path: Path, capsys) -> None:
    parcels = gpd.read_file(world.paths.parcels)
    parcels.geometry = parcels.geometry.translate(5000, 0)
    parcels.to_file(tmp_path / "elsewhere.gpkg")
    code, _, stderr = run("trees", world.paths.ortho("epoch1"), "-o", tmp_path / "x.gpkg",
                          "--parcels", tmp_path / "elsewhere.gpkg", capsys=capsys)  # fmt: skip
    assert code == 2 and "elsewhere.gpkg: no parcel overlaps the image" in stderr
