"""`raqib detect buildings|change` and `raqib evaluate buildings|change` on users' files: a
change between two simulator epochs handed over in different CRSs, grids and a 1.5 m offset;
a simulator orthophoto with no-data cut out of it; the real WebODM orthophoto; the solaris
footprints scored as solaris scores them."""

from __future__ import annotations

import contextlib
import io
import sqlite3
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from byo_images import cut_out, reprojected, run
from rasterio import features as rio_features
from rasterio.windows import from_bounds

import cli
from models.evaluation import true_changes
from sim.world import World, generate

SHIFT_M = (1.3, -0.8)
"""AFTER's georeferencing error: what two flights without ground control disagree by."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return generate(tmp_path_factory.mktemp("world"), seed=7, width_m=200, height_m=160)


def shifted(image: Path, out: Path, east_m: float, north_m: float) -> Path:
    """``image`` with its georeferencing moved by (east_m, north_m)."""
    with rasterio.open(image) as src:
        profile = src.profile | {"transform": Affine.translation(east_m, north_m) @ src.transform}
        pixels, tags = src.read(), src.tags()
    with rasterio.open(out, "w", **profile) as dst:
        dst.update_tags(**tags)
        dst.write(pixels)
    return out


def matches_at_half_iou(predicted: gpd.GeoDataFrame, truth: gpd.GeoDataFrame) -> int:
    """Pairs at IoU >= 0.5, counted pair by pair: each polygon has at most one such partner
    when the polygons of each side do not overlap, so no assignment is needed."""
    count = 0
    for p in predicted.geometry:
        for t in truth.geometry:
            union = p.union(t).area
            count += union > 0 and p.intersection(t).area / union >= 0.5
    return count


def world_changes(world: World) -> gpd.GeoDataFrame:
    """The world's true new or grown buildings from epoch 1 to epoch 2."""
    before, after = (
        gpd.read_file(world.paths.truth, layer=f"buildings_{epoch}")
        for epoch in ("epoch1", "epoch2")
    )
    return true_changes(before, after)


def geopackage_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


def run_captured(*args: str | Path) -> tuple[int, str, str]:
    """``raqib ARGS`` in this process, for module fixtures (which cannot use ``capsys``)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main([str(arg) for arg in args])
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def changes(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[gpd.GeoDataFrame, str]:
    """``raqib detect change`` from epoch 1 (UTM) to epoch 2 moved by SHIFT_M and warped to
    Web Mercator (another CRS and grid): the layer and the printed line."""
    folder = tmp_path_factory.mktemp("change")
    moved = shifted(world.paths.ortho("epoch2"), folder / "moved.tif", *SHIFT_M)
    after = reprojected(moved, folder / "after_3857.tif", "EPSG:3857")
    out = folder / "changes.gpkg"
    code, stdout, stderr = run_captured("detect", "change", world.paths.ortho("epoch1"), after,
                                         "-o", out)  # fmt: skip
    assert code == 0, stderr
    assert geopackage_version(out) == 10300
    return gpd.read_file(out, layer="structure_changes"), stdout


@pytest.mark.slow
def test_change_finds_the_new_buildings_across_crs_grid_and_offset(
    world: World, changes: tuple[gpd.GeoDataFrame, str]
) -> None:
    found, line = changes
    assert len(line.splitlines()) == 1
    assert "0 demolished structures from ortho_epoch1.tif to after_3857.tif" in line
    moved = float(line.split("moved by up to ")[1].split(" m")[0])
    assert moved == pytest.approx(np.hypot(*SHIFT_M), abs=0.25)  # the offset was found
    assert found.crs.to_epsg() == 32630  # BEFORE's CRS
    built = world_changes(world).to_crs(found.crs)
    assert set(found["change"]) <= {"new", "grown"}
    new, truly_new = found[found["change"] == "new"], built[built["change"] == "new"]
    matched = matches_at_half_iou(new, truly_new)
    # Measured 4 new found of 7, none false; both "grown" lie on true changes (a new house
    # merged with its neighbour's roof, the planted extension with its house). Before the
    # growth rule took any room-wide addition (issue #7) and the shadow feature, 6 of 7 new
    # were found: the blob merging on the warped copy is the weak spot (docs/byo_imagery.md).
    # Without the co-registration every roof edge moved 1.5 m and nothing matched.
    assert matched / len(new) >= 0.75 and matched / len(truly_new) >= 0.5, found
    assert all(built.intersects(shape).any() for shape in found.geometry), found


@pytest.mark.slow
def test_evaluate_change_scores_by_class(
    world: World, changes: tuple[gpd.GeoDataFrame, str], tmp_path: Path, capsys
) -> None:
    found, _ = changes
    truth = world_changes(world)[["change", "geometry"]].to_crs("EPSG:4326")
    truth.to_file(tmp_path / "truth.gpkg", layer="changes")
    found.to_file(tmp_path / "found.gpkg", layer="changes")
    code, stdout, stderr = run("evaluate", "change", tmp_path / "found.gpkg",
                               tmp_path / "truth.gpkg", capsys=capsys)  # fmt: skip
    assert code == 0, stderr
    matched = matches_at_half_iou(found, truth.to_crs(found.crs))
    assert f"changes: precision {matched / len(found):.3f}, recall {matched / len(truth):.3f}" in (
        stdout
    )
    new = found[found["change"] == "new"]
    assert f"new: precision {matches_at_half_iou(new, truth.to_crs(found.crs)) / len(new):.3f}" in (
        stdout
    )


def cropped(image: Path, out: Path, width_m: float, height_m: float) -> Path:
    """The bottom-right ``width_m`` x ``height_m`` of ``image``."""
    with rasterio.open(image) as src:
        right, bottom = src.bounds.right, src.bounds.bottom
        window = from_bounds(right - width_m, bottom, right, bottom + height_m, src.transform)
        window = window.round_offsets().round_lengths()
        profile = src.profile | {"width": window.width, "height": window.height,
                                 "transform": src.window_transform(window)}  # fmt: skip
        with rasterio.open(out, "w", **profile) as dst:
            dst.update_tags(**src.tags())
            dst.write(src.read(window=window))
    return out


@pytest.mark.slow
def test_no_data_cut_out_of_an_orthophoto_makes_no_detection_along_the_cut(
    world: World, tmp_path: Path, capsys
) -> None:
    """An ODM-like footprint (corners cut off) marked by an alpha band, a nodata value, or
    only by a white fill (the WebODM sample's collar): nothing new along the cut, and every
    building the cut leaves whole still found."""
    image = cropped(world.paths.ortho("epoch2"), tmp_path / "crop.tif", 130, 80)
    with rasterio.open(image) as src:
        left, bottom, right, top = src.bounds
    keep = shapely.Polygon([(left + 25, top), (right - 30, top), (right, top - 40),
                            (right, bottom + 25), (right - 35, bottom), (left + 30, bottom),
                            (left, bottom + 50), (left, top - 20)])  # fmt: skip
    along_cut = keep.boundary.buffer(10)

    def detect(path: Path) -> gpd.GeoDataFrame:
        code, _, stderr = run("detect", "buildings", path, "-o", path.with_suffix(".gpkg"),
                              capsys=capsys)  # fmt: skip
        assert code == 0, stderr
        return gpd.read_file(path.with_suffix(".gpkg"), layer="buildings")

    whole = detect(image)
    left_whole = whole[(whole.intersection(keep).area >= 0.9 * whole.area).to_numpy()]
    assert len(left_whole) >= 4
    for how in ("alpha", "nodata", "collar"):
        found = detect(cut_out(image, tmp_path / f"{how}.tif", keep, how))
        new = found[found.intersects(along_cut) & ~found.intersects(whole.union_all())]
        # Before the collar mask and the fill (models.nodata): white fill taken for roofs
        # ("collar"), and the house 90 % inside the bottom-right cut lost to the fake edge
        # ("alpha", "nodata").
        assert new.empty, (how, new)
        assert left_whole.intersects(found.union_all()).all(), how


@pytest.mark.slow
def test_the_real_webodm_orthophoto_gives_a_valid_layer(
    shared_data: Path, tmp_path: Path, capsys
) -> None:
    ortho = shared_data / "orthophotos" / "webodm_orthophoto.tif"
    out = tmp_path / "new folder" / "webodm.gpkg"  # made when missing, as `raqib plan -o` does
    code, stdout, stderr = run("detect", "buildings", ortho, "-o", out, capsys=capsys)
    assert code == 0, stderr
    assert len(stdout.splitlines()) == 1 and "(50.0 cm, analysed at 10 cm;" in stdout
    assert geopackage_version(out) == 10300
    found = gpd.read_file(out, layer="buildings")
    assert stdout.startswith(f"{out}: {len(found)} buildings")
    assert found.crs.to_epsg() == 32615
    with rasterio.open(ortho) as src:
        frame = shapely.box(*src.bounds)
        white = (src.read((1, 2, 3)) >= 240).all(axis=0)  # its fill: alpha says it is data
        footprints = rio_features.rasterize(found.geometry, out_shape=white.shape,
                                            transform=src.transform).astype(bool)  # fmt: skip
    # Measured before models.nodata: a 241 m² "building" of white fill in the north-west corner
    assert (white & footprints).sum() <= 0.05 * footprints.sum()
    assert found.geometry.is_valid.all() and found.within(frame.buffer(0.5)).all()
    assert set(found.geom_type) <= {"Polygon", "MultiPolygon"}
    assert found["score"].between(0.25, 1.0).all()
    assert np.allclose(found["area_m2"], found.geometry.area, rtol=0.01)
    assert (found["area_m2"] >= 12.0).all()  # the min_building_area_m2 setting


def test_evaluate_buildings_counts_the_solaris_footprints_as_solaris_does(
    shared_data: Path, capsys
) -> None:
    folder = shared_data / "labels" / "solaris_atlanta_vectors"
    code, stdout, stderr = run("evaluate", "buildings", folder / "pred.geojson",
                               folder / "gt.geojson", capsys=capsys)  # fmt: skip
    assert code == 0, stderr
    predicted, truth = gpd.read_file(folder / "pred.geojson"), gpd.read_file(folder / "gt.geojson")
    matched = matches_at_half_iou(predicted, truth)
    assert matched == 8  # solaris' own test: TruePos 8, FalsePos 20, FalseNeg 20
    precision, recall = matched / len(predicted), matched / len(truth)
    f1 = 2 * precision * recall / (precision + recall)
    assert (
        f"buildings: precision {precision:.3f}, recall {recall:.3f}"
        f", F1 {f1:.3f} ({matched} matched, {len(predicted) - matched} false, "
        f"{len(truth) - matched} missed) at IoU >= 0.5; pixel IoU "
    ) in stdout
    union = predicted.union_all().union(truth.union_all()).area
    pixel_iou = predicted.union_all().intersection(truth.union_all()).area / union
    assert f"pixel IoU {pixel_iou:.3f}" in stdout


def test_masks_are_scored_pixel_for_pixel(shared_data: Path, tmp_path: Path, capsys) -> None:
    folder = shared_data / "labels" / "solaris_atlanta_vectors"
    footprints = {name: gpd.read_file(folder / f"{name}.geojson") for name in ("pred", "gt")}
    left, bottom, right, top = pd.concat(footprints.values()).total_bounds
    transform = Affine(0.3, 0, left - 3, 0, -0.3, top + 3)  # one 30 cm grid for both
    shape = (int((top - bottom + 6) / 0.3), int((right - left + 6) / 0.3))
    masks = {}
    for name, polygons in footprints.items():
        masks[name] = rio_features.rasterize(
            polygons.geometry, out_shape=shape, transform=transform, dtype="uint8"
        )
        profile = {"driver": "GTiff", "width": shape[1], "height": shape[0], "count": 1,
                   "dtype": "uint8", "crs": polygons.crs, "transform": transform}  # fmt: skip
        with rasterio.open(tmp_path / f"{name}.tif", "w", **profile) as dst:
            dst.write(masks[name], 1)
    code, stdout, stderr = run("evaluate", "buildings", tmp_path / "pred.tif",
                               tmp_path / "gt.tif", capsys=capsys)  # fmt: skip
    assert code == 0, stderr
    both = masks["pred"].astype(bool) & masks["gt"].astype(bool)
    either = masks["pred"].astype(bool) | masks["gt"].astype(bool)
    assert f"pixel IoU {both.sum() / either.sum():.3f}" in stdout
