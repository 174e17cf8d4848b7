import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from core.types import Accuracy
from models.evaluation import (
    ConstructionAccuracy,
    EpochTruth,
    area_iou,
    class_scores,
    construction_markdown,
    evaluate_buildings,
    evaluate_construction,
    extensions,
    flag_reason_checks,
    flag_scores,
    object_scores,
    pooled,
    true_changes,
)


def test_object_scores_reproduce_solaris_on_its_atlanta_fixture(shared_data):
    """solaris' tests/test_eval/evaluator_test.py expects TP 8, FP 20, FN 20, F1 0.2857."""
    folder = shared_data / "labels/solaris_atlanta_vectors"
    truth, predicted = gpd.read_file(folder / "gt.geojson"), gpd.read_file(folder / "pred.geojson")
    scores = object_scores(predicted, truth)
    assert scores.extra["true_positives"] == 8
    assert scores.extra["false_positives"] == 20
    assert scores.extra["false_negatives"] == 20
    assert scores.precision == pytest.approx(0.2857142857142857)
    assert scores.recall == pytest.approx(0.2857142857142857)
    assert scores.f1 == pytest.approx(0.2857142857142857)


def test_a_truth_polygon_is_matched_by_one_prediction_only():
    truth = gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10)], crs="EPSG:32630")
    predicted = gpd.GeoDataFrame(geometry=[box(0, 0, 10, 9), box(0, 0, 10, 10)], crs="EPSG:32630")
    scores = object_scores(predicted, truth)
    assert scores.extra["true_positives"] == 1
    assert scores.extra["mean_matched_iou"] == 1
    assert scores.precision == 0.5 and scores.recall == 1


def test_area_iou_of_half_overlapping_squares():
    a = gpd.GeoDataFrame(geometry=[box(0, 0, 2, 2)], crs="EPSG:32630")
    b = gpd.GeoDataFrame(geometry=[box(1, 0, 3, 2)], crs="EPSG:32630")
    assert area_iou(a, b) == pytest.approx(1 / 3)
    assert area_iou(a, a) == 1


def test_class_scores_of_a_raster_with_one_wrong_column(tmp_path):
    codes = np.ones((10, 10), np.uint8)
    codes[:, 5:] = 2
    codes[:, 4] = 2  # one column of class 1 predicted as class 2
    path = tmp_path / "classes.tif"
    profile = {
        "driver": "GTiff",
        "width": 10,
        "height": 10,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32630",
        "transform": from_origin(0, 10, 1, 1),
        "nodata": 0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(codes, 1)
    truth = gpd.GeoDataFrame(
        {"health": ["healthy", "stressed"]},
        geometry=[box(0, 0, 5, 10), box(5, 0, 10, 10)],
        crs="EPSG:32630",
    )
    scores = class_scores(path, truth, "health", ("healthy", "stressed"))
    assert scores["healthy"].recall == pytest.approx(0.8)
    assert scores["healthy"].precision == 1
    assert scores["stressed"].precision == pytest.approx(50 / 60)
    assert scores["stressed"].kappa == pytest.approx(0.8)
    assert scores["healthy"].extra["coverage"] == 1


def _without_building(scene, index: int, path):
    """A copy of ``scene``'s image where building ``index`` (and its shadow) is bare soil."""
    with rasterio.open(scene.image) as src:
        profile, pixels = src.profile, src.read()
        footprint = scene.buildings.geometry.iloc[index].buffer(2.0)
        row0, col0 = (max(0, v) for v in src.index(footprint.bounds[0], footprint.bounds[3]))
        row1, col1 = src.index(footprint.bounds[2], footprint.bounds[1])
    rng = np.random.default_rng(3)
    soil = np.array([150, 105, 75], np.float32)[:, None, None]
    patch = soil * rng.normal(1.0, 0.08, (1, row1 - row0, col1 - col0))
    pixels[:3, row0:row1, col0:col1] = patch.clip(0, 255).astype(pixels.dtype)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
    return path


def test_construction_is_scored_per_epoch_and_for_new_buildings(
    building_model, test_scene, tmp_path
):
    before_image = _without_building(test_scene, 0, tmp_path / "before.tif")
    before = EpochTruth("before", before_image, test_scene.buildings.iloc[1:])
    after = EpochTruth("after", test_scene.image, test_scene.buildings)
    result = evaluate_construction(building_model, [before, after])
    assert list(result.epochs) == ["before", "after"]
    assert result.epochs["after"] == evaluate_buildings(
        building_model, test_scene.image, test_scene.buildings
    )
    assert result.epochs["before"].support == len(test_scene.buildings) - 1
    assert result.new.support == 1
    assert result.new.extra["true_positives"] == 1
    assert result.new.precision == 1.0
    assert result.grown.support == 0 and result.grown.extra["false_positives"] == 0
    report = construction_markdown({"scene": result}, target=0.9)
    new, grown = report.split("## Grown buildings")
    assert "| scene | 1.00 | 1.00 | 1.00 | 1 / 0 / 0 |" in new
    assert "| scene | 0.00 | 0.00 | 0.00 | 0 / 0 / 0 |" in grown
    assert "Target new-building precision and recall >= 0.90: **met**." in report


def test_true_changes_are_new_or_grown_footprints():
    before = gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10), box(20, 0, 30, 10)], crs="EPSG:32630")
    after = gpd.GeoDataFrame(
        geometry=[box(0, 0, 10, 10), box(20, 0, 30, 20), box(40, 0, 50, 10)], crs="EPSG:32630"
    )
    assert list(true_changes(before, after)["change"]) == ["grown", "new"]


def test_a_room_added_to_a_large_house_is_true_growth_and_its_extension_is_the_room():
    house = box(0, 0, 20, 20)
    annex = box(5, -6, 11, 0)  # 36 m2: 9 % more
    before = gpd.GeoDataFrame(geometry=[house], crs="EPSG:32630")
    after = gpd.GeoDataFrame(geometry=[house.union(annex)], crs="EPSG:32630")
    grown = true_changes(before, after)
    assert list(grown["change"]) == ["grown"]
    (exact,) = extensions(grown, before, exact=True).geometry
    assert exact.symmetric_difference(annex).area == pytest.approx(0, abs=1e-9)
    (seen,) = extensions(grown, before).geometry  # as detection sees it: beyond a 0.5 m edge
    assert seen.area == pytest.approx(6 * 5.5)


def test_pooled_scores_add_up_the_counts_of_each_scene():
    first = Accuracy.of_matches("a", 9, 10, 9)  # one false alarm
    second = Accuracy.of_matches("b", 8, 8, 10)  # two missed
    total = pooled([first, second], "all")
    assert total.extra["true_positives"] == 17
    assert total.precision == pytest.approx(17 / 18)
    assert total.recall == pytest.approx(17 / 19)
    none = gpd.GeoDataFrame(geometry=[], crs="EPSG:32630")
    report = construction_markdown(
        {
            "one": ConstructionAccuracy({}, first, first, none),
            "two": ConstructionAccuracy({}, second, second, none),
        },
        reasons={
            "one": flag_reason_checks(
                pd.DataFrame({"parcel_id": ["A"], "reason": ["no_permit"]}), _planted_world()
            )
        },
    )
    assert "| **all scenes** | 0.94 | 0.89 | 0.92 | 17 / 1 / 2 |" in report
    assert "**not met**" in report
    assert report.count("| **all scenes** | 0.94 | 0.89 | 0.92 | 17 / 1 / 2 |") == 2  # grown too
    assert "| one | B | new | expired_permit | permit_expired | - | **no** |" in report
    assert "| one | E | grown | over_footprint | over_footprint | - | **no** |" in report
    assert "Flag reasons right on 2 of 3 new planted cases." in report
    assert "Flag reasons right on 0 of 1 grown planted cases." in report
    assert "Flag reasons right on 2 of 4 parcels (50%)." in report


def _planted_world() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"parcel_id": ["A", "B", "C", "D", "E"],
         "case": ["unpermitted", "expired_permit", "permitted", "existing", "over_footprint"],
         "change": ["new", "new", "new", "unchanged", "grown"]},
        geometry=[box(i, 0, i + 1, 1) for i in range(5)], crs="EPSG:32630",
    )  # fmt: skip


def test_flag_scores_count_every_flag_and_every_violation() -> None:
    flagged = gpd.GeoDataFrame(
        {"parcel_id": ["A", "C", None], "reason": ["no_permit", "over_footprint", "off_cadastre"]},
        geometry=[box(0, 0, 1, 1)] * 3,
        crs="EPSG:32630",
    )
    scores = flag_scores(flagged, _planted_world())
    assert scores.precision == pytest.approx(1 / 3)
    assert scores.recall == pytest.approx(1 / 3)
    assert scores.support == 3
    # A right; B and E missed; C flagged though permitted; the off-cadastre flag is wrong too
    assert scores.extra == {"reasons_correct": 1.0, "reason_checks": 5.0}


def test_reason_checks_want_exactly_the_planted_reasons_on_each_parcel() -> None:
    flagged = pd.DataFrame(
        {"parcel_id": ["A", "B", "B", "E", "F"],
         "reason": ["no_permit", "permit_expired", "over_footprint", "over_footprint", "no_permit"]}
    )  # fmt: skip
    checks = {c.parcel_id: c for c in flag_reason_checks(flagged, _planted_world())}
    assert sorted(checks) == ["A", "B", "C", "E", "F"]  # "existing" D is no planted case
    assert checks["A"].correct and checks["C"].correct and checks["E"].correct
    assert not checks["B"].correct  # one reason too many
    assert checks["F"].case == "none" and not checks["F"].correct
    assert (checks["A"].change, checks["E"].change) == ("new", "grown")
