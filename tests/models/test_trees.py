"""Orchard trees: crowns on the simulated Berkane world (truth known), on a painted orchard,
on hand-made crowns and points, and one run on a real orthophoto."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from orchard_scene import make_orchard
from rasterio.transform import from_origin
from scipy.spatial import cKDTree
from shapely.geometry import Point, box

from core.errors import InputError
from models.trees import (
    CROWN_DIAMETER_M,
    crown_centres,
    detect_trees,
    missing_trees,
    point_scores,
    row_direction,
    trees_per_parcel,
)
from sim.world import World, generate

CRS = "EPSG:32630"
MATCH_M = 1.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return generate(tmp_path_factory.mktemp("world"), seed=7, width_m=250, height_m=200)


@pytest.fixture(scope="module")
def orchards(world: World) -> gpd.GeoDataFrame:
    parcels = gpd.read_file(world.paths.parcels)
    return parcels[parcels.land_use == "orchard"]


@pytest.fixture(scope="module")
def planted(world: World) -> gpd.GeoDataFrame:
    trees = gpd.read_file(world.paths.truth, layer="trees")
    return trees[trees.planting == "orchard"]


@pytest.fixture(scope="module")
def crowns(world: World, orchards: gpd.GeoDataFrame) -> dict[str, gpd.GeoDataFrame]:
    """Crowns found in each epoch's orthophoto (winter weeds and long shadows; summer)."""
    return {
        epoch: detect_trees(world.paths.ortho(epoch), parcels=orchards) for epoch, _ in world.epochs
    }


def test_living_trees_found_in_summer_with_precision_and_recall_of_0_9(
    crowns: dict, planted: gpd.GeoDataFrame
) -> None:
    alive = planted[planted.status == "alive"]
    scores = point_scores(crown_centres(crowns["epoch2"]), alive, radius_m=MATCH_M)
    assert scores.precision >= 0.9 and scores.recall >= 0.9


def test_living_trees_found_in_winter_between_green_weeds(
    crowns: dict, planted: gpd.GeoDataFrame
) -> None:
    alive = planted[planted.status == "alive"]
    scores = point_scores(crown_centres(crowns["epoch1"]), alive, radius_m=MATCH_M)
    assert scores.precision >= 0.85 and scores.recall >= 0.9


def test_crowns_are_polygons_around_their_centres_in_the_image_crs(crowns: dict) -> None:
    found = crowns["epoch2"]
    assert found.crs == CRS and found.tree_id.is_unique
    assert found.geometry.contains(crown_centres(found).geometry).mean() > 0.95
    assert found.crown_diameter_m.between(*CROWN_DIAMETER_M).all()
    sizes = found.crown_diameter_m.median()
    assert 2.8 < sizes < 4.2  # the simulator's crowns are 3-3.9 m, thinner when stressed
    assert (found.mean_index > 0.1).all() and set(found.index_name) == {"exg"}


def test_tree_count_per_parcel_within_5_percent(
    crowns: dict, planted: gpd.GeoDataFrame, orchards: gpd.GeoDataFrame
) -> None:
    per_parcel = trees_per_parcel(crowns["epoch2"], orchards).set_index("parcel_id")
    truth = planted[planted.status == "alive"].groupby("parcel_id").size()
    assert len(per_parcel) == len(truth) >= 1
    for parcel_id, count in truth.items():
        assert per_parcel.loc[parcel_id, "tree_count"] == pytest.approx(count, rel=0.05)


@pytest.mark.parametrize("epoch", ["epoch1", "epoch2"])
def test_planted_missing_trees_are_found(
    crowns: dict, planted: gpd.GeoDataFrame, orchards: gpd.GeoDataFrame, epoch: str
) -> None:
    removed = planted[planted.status == "removed"]
    found = pd.concat(
        [missing_trees(crowns[epoch], parcel) for parcel in orchards.geometry], ignore_index=True
    )
    assert len(removed) >= 10
    assert point_scores(found, removed, radius_m=MATCH_M).recall >= 0.8


def test_no_double_trees_across_window_seams(world: World, orchards: gpd.GeoDataFrame) -> None:
    whole = detect_trees(world.paths.ortho("epoch1"), parcels=orchards)
    tiled = detect_trees(world.paths.ortho("epoch1"), parcels=orchards, window_px=128)
    assert len(tiled) == len(whole)
    centres = np.column_stack([tiled.centre_x, tiled.centre_y])
    assert not cKDTree(centres).query_pairs(CROWN_DIAMETER_M[0])
    offset, _ = cKDTree(np.column_stack([whole.centre_x, whole.centre_y])).query(centres)
    assert offset.max() < 0.1


def test_finer_imagery_is_averaged_down_to_the_same_trees(tmp_path: Path) -> None:
    coarse = make_orchard(tmp_path / "coarse.tif", seed=5, gsd_m=0.1)
    fine = make_orchard(tmp_path / "fine.tif", seed=5, gsd_m=0.03)
    from_coarse, from_fine = detect_trees(coarse.image), detect_trees(fine.image)
    alive = coarse.trees[coarse.trees.status == "alive"]
    for found in (from_coarse, from_fine):
        scores = point_scores(crown_centres(found), alive, radius_m=0.3)
        assert scores.precision == scores.recall == 1.0
    _, same = cKDTree(np.column_stack([from_coarse.centre_x, from_coarse.centre_y])).query(
        np.column_stack([from_fine.centre_x, from_fine.centre_y])
    )
    assert from_fine.crown_diameter_m.to_numpy() == pytest.approx(
        from_coarse.crown_diameter_m.to_numpy()[same], rel=0.1
    )


def test_a_turned_orchard_has_its_rows_and_gaps_found(tmp_path: Path) -> None:
    orchard = make_orchard(tmp_path / "orchard.tif", seed=6, rotation_deg=10)
    found = detect_trees(orchard.image, parcels=orchard.parcel)
    direction, spacing = row_direction(np.column_stack([found.centre_x, found.centre_y]))
    assert abs(np.degrees(np.arctan2(direction[1], direction[0])) % 180 - 10) < 1
    assert spacing == pytest.approx(5.0, abs=0.2)
    removed = orchard.trees[orchard.trees.status == "removed"]
    gaps = missing_trees(found, orchard.parcel.geometry.iloc[0])
    scores = point_scores(gaps, removed, radius_m=MATCH_M)
    assert scores.precision == scores.recall == 1.0


def test_parcels_in_another_crs_give_the_same_trees(tmp_path: Path) -> None:
    orchard = make_orchard(tmp_path / "orchard.tif", seed=7)
    in_utm = detect_trees(orchard.image, parcels=orchard.parcel)
    in_lonlat = detect_trees(orchard.image, parcels=orchard.parcel.to_crs("EPSG:4326"))
    assert in_lonlat.crs == CRS and len(in_lonlat) == len(in_utm) > 0
    assert (in_lonlat.parcel_id == "P-1").all()


def test_trees_per_parcel_counts_density_diameter_and_cover() -> None:
    crowns = gpd.GeoDataFrame(
        {"crown_diameter_m": [2.0, 4.0, 2.0], "centre_x": [5.0, 15.0, 150.0]},
        geometry=[Point(5, 5).buffer(1.0), Point(15, 5).buffer(2.0), Point(150, 5).buffer(1.0)],
        crs=CRS,
    ).assign(centre_y=5.0)
    parcels = gpd.GeoDataFrame(
        {"parcel_id": ["A", "B"]}, geometry=[box(0, 0, 100, 100), box(200, 0, 300, 100)], crs=CRS
    )
    stats = trees_per_parcel(crowns, parcels).set_index("parcel_id")
    assert stats.loc["A", "tree_count"] == 2 and stats.loc["B", "tree_count"] == 0
    assert stats.loc["A", "trees_per_ha"] == pytest.approx(2.0)
    assert stats.loc["A", "mean_crown_diameter_m"] == pytest.approx(3.0)
    assert stats.loc["A", "canopy_cover_pct"] == pytest.approx(5 * np.pi / 100, rel=0.01)
    assert np.isnan(stats.loc["B", "mean_crown_diameter_m"])


def test_missing_trees_inside_rows_and_at_their_ends_of_a_turned_grid() -> None:
    angle = np.radians(25.0)
    along, across = np.meshgrid(np.arange(10) * 4.0, np.arange(6) * 7.0)
    gone = {(2, 4), (2, 5), (0, 0), (5, 9), (3, 0), (3, 1)}
    keep = [(r, c) not in gone for r in range(6) for c in range(10)]
    u, v = along.ravel(), across.ravel()
    rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    xy = np.column_stack([u, v]) @ rotate.T + (1000.0, 2000.0)
    corners = np.array([(-3.0, -3.0), (39.0, -3.0), (39.0, 38.0), (-3.0, 38.0)]) @ rotate.T
    parcel = gpd.GeoSeries.from_xy(*(corners + (1000.0, 2000.0)).T).union_all().convex_hull
    trees = gpd.GeoDataFrame(
        {"centre_x": xy[keep, 0], "centre_y": xy[keep, 1]},
        geometry=gpd.points_from_xy(xy[keep, 0], xy[keep, 1]),
        crs=CRS,
    )
    found = missing_trees(trees, parcel)
    expected = gpd.GeoDataFrame(geometry=[Point(xy[r * 10 + c]) for r, c in sorted(gone)], crs=CRS)
    scores = point_scores(found, expected, radius_m=0.1)
    assert scores.precision == scores.recall == 1.0
    assert found.groupby("row_id").size().sort_values().tolist() == [1, 1, 2, 2]


def test_a_raster_too_coarse_for_the_smallest_crown_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "coarse.tif"
    profile = dict(driver="GTiff", width=20, height=20, count=3, dtype="uint8", photometric="RGB")
    transform = from_origin(600_000, 3_870_000, 1.0, 1.0)
    with rasterio.open(path, "w", crs=CRS, transform=transform, **profile) as dst:
        dst.write(np.full((3, 20, 20), 90, np.uint8))
    with pytest.raises(InputError, match="too coarse for crowns of 1.5 m"):
        detect_trees(path)
    assert len(detect_trees(path, crown_diameter_m=(4.0, 8.0))) == 0


def test_parcels_elsewhere_or_without_crs_are_refused(tmp_path: Path) -> None:
    orchard = make_orchard(tmp_path / "orchard.tif", seed=8)
    elsewhere = orchard.parcel.assign(geometry=orchard.parcel.translate(10_000.0, 0.0))
    without_crs = gpd.GeoDataFrame({"parcel_id": ["P-1"]}, geometry=list(orchard.parcel.geometry))
    with pytest.raises(InputError, match="no parcel overlaps the raster"):
        detect_trees(orchard.image, parcels=elsewhere)
    with pytest.raises(InputError, match="parcels have no CRS"):
        detect_trees(orchard.image, parcels=without_crs)
    with pytest.raises(InputError, match="crown_diameter_m"):
        detect_trees(orchard.image, crown_diameter_m=(5.0, 2.0))


def test_runs_on_the_real_webodm_orthophoto(shared_data: Path) -> None:
    """No truth here (a lakeside park in Minnesota at 0.5 m, not an orchard): only plausible
    output."""
    image = shared_data / "orthophotos" / "webodm_orthophoto.tif"
    found = detect_trees(image)
    with rasterio.open(image) as src:
        crs, bounds = src.crs, box(*src.bounds)
        alpha = src.read(4)
        rows, cols = rasterio.transform.rowcol(src.transform, found.centre_x, found.centre_y)
    assert found.crs == crs
    assert found.geometry.within(bounds).all()
    assert found.crown_diameter_m.between(*CROWN_DIAMETER_M).all()
    assert (alpha[rows, cols] > 0).all() and (found.mean_index > 0).all()
