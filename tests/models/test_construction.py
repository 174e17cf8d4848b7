from dataclasses import replace

import numpy as np
import pytest
from shapely.geometry import box

from core.errors import InputError
from models.construction import (
    BUILDING_CLASSES,
    BuildingModel,
    _merge_seams,
    detect_buildings,
    hysteresis,
)
from models.evaluation import area_iou, object_scores
from models.features import BUILDING_FEATURES, FeatureSet
from models.training import fit_pixel_model, load_model, save_model


def test_buildings_of_a_held_out_scene_are_found_with_their_footprints(detections, test_scene):
    detected = detections
    scores = object_scores(detected, test_scene.buildings)
    assert scores.f1 >= 0.8
    assert area_iou(detected, test_scene.buildings) > 0.7
    assert list(detected.columns) == ["geometry", "score", "area_m2"]
    assert detected.crs.to_epsg() == 32630
    assert ((detected["score"] > 0.5) & (detected["score"] <= 1)).all()


def test_the_greenhouse_and_the_road_are_not_buildings(detections):
    detected = detections
    greenhouse = box(600000 + 50, 3870000 - 58, 600000 + 56, 3870000 - 52)
    road = box(600000, 3870000 - 29.5, 600060, 3870000 - 28)
    assert not detected.intersects(greenhouse).any()
    assert detected.intersection(road).area.sum() < 1.0


def test_detections_do_not_depend_on_the_block_size(building_model, test_scene):
    whole = detect_buildings(building_model, test_scene.image)
    tiled = detect_buildings(building_model, test_scene.image, block_px=128)
    assert len(whole) == len(tiled)
    np.testing.assert_allclose(sorted(whole["area_m2"]), sorted(tiled["area_m2"]), rtol=1e-6)


def test_seam_pieces_whose_edges_differ_in_the_last_bits_merge_into_one_polygon():
    """Two blocks' transforms place a shared seam ~1e-9 m apart (world 7 at row 3072): the
    pieces must still become one polygon, or the parcel cut would make two structures."""
    y = 3865374.8
    upper = box(564210.0, y, 564250.0, y + 2.0)
    lower = box(564210.0, y - 12.0, 564250.0, np.nextafter(y, 0.0))
    merged = _merge_seams([(upper, 70.0, 80, True), (lower, 460.0, 480, True)])
    assert len(merged) == 1
    geom, total, n_px = merged[0]
    assert geom.geom_type == "Polygon" and (total, n_px) == (530.0, 560)


def test_small_blobs_are_dropped(building_model, test_scene, detections):
    detected = detect_buildings(building_model, test_scene.image, min_area_m2=60.0)
    assert (detected["area_m2"] >= 60.0).all()
    assert len(detected) < len(detections)


def test_detection_runs_on_a_real_rgba_orthophoto_in_another_crs(building_model, shared_data):
    detected = detect_buildings(building_model, shared_data / "orthophotos/webodm_orthophoto.tif")
    assert detected.crs.to_epsg() == 32615
    assert detected.geometry.is_valid.all()
    assert (detected["area_m2"] >= 12.0).all()


def test_hysteresis_keeps_weak_pixels_connected_to_strong_ones():
    probability = np.zeros((20, 20), np.float32)
    probability[2:10, 2:10] = 0.4  # a plain roof's middle ...
    probability[2, 2:10] = 0.9  # ... reached by its bright parapet
    probability[14:18, 14:18] = 0.4  # weak and alone: paving
    valid = np.ones_like(probability, dtype=bool)
    built = hysteresis(probability, valid, 0.5, 0.25)
    assert built[2:10, 2:10].all()
    assert not built[14:18, 14:18].any()
    assert built.sum() == 64
    valid[2, :] = False  # without its strong pixels the roof is not seeded
    assert not hysteresis(probability, valid, 0.5, 0.25).any()


def _building_model_on(features: FeatureSet, n_features: int) -> BuildingModel:
    rng = np.random.default_rng(0)
    x, y = rng.random((200, n_features)), np.repeat(np.array([1, 2], np.int16), 100)
    return fit_pixel_model(x, y, BUILDING_CLASSES, features=features, model_type=BuildingModel)


def test_a_model_of_the_feature_set_before_shadow_sides_still_loads_and_detects(
    tmp_path, test_scene
):
    before = replace(BUILDING_FEATURES, shadow_heights_m=())
    path = save_model(_building_model_on(before, len(before.names)), tmp_path / "old.joblib")
    model = load_model(path, BUILDING_CLASSES, "building")
    assert not any(name.startswith("shadow_side") for name in model.feature_names)
    detect_buildings(model, test_scene.image)  # computes the features it was fitted on


def test_a_model_whose_classifier_does_not_fit_its_feature_set_is_refused(tmp_path):
    wrong = _building_model_on(BUILDING_FEATURES, len(BUILDING_FEATURES.names) - 2)
    path = save_model(wrong, tmp_path / "mixed.joblib")
    with pytest.raises(InputError, match="mixed.joblib: its classifier takes 28 features.*again"):
        load_model(path, BUILDING_CLASSES, "building")
