import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from models.evaluation import area_iou, class_scores, object_scores


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
