import geopandas as gpd
import numpy as np
import pytest
import rasterio
from model_scene import make_scene
from shapely.geometry import box

from core.errors import InputError, ProcessingError
from models.crop_health import (
    HEALTH_CLASSES,
    HEALTH_PIXEL_M,
    classify_health,
    parcel_health,
    train_health,
    validate_health,
)
from models.evaluation import class_scores
from models.indices import index_raster
from models.training import load_model, save_model
from models.unsupervised import train_health_unsupervised, unsupervised_report


def test_a_model_trained_on_one_scene_classifies_another(health_raster, test_scene):
    scores = class_scores(health_raster, test_scene.health, "health", HEALTH_CLASSES)
    assert set(scores) == set(HEALTH_CLASSES)
    assert all(s.recall > 0.85 and s.precision > 0.85 for s in scores.values())
    assert scores["healthy"].kappa > 0.8


def test_pixels_under_alpha_zero_or_outside_the_mask_are_nodata(health_model, test_scene, tmp_path):
    fields = test_scene.health
    raster = classify_health(
        health_model, test_scene.image, tmp_path / "health.tif", mask_polygons=fields
    )
    with rasterio.open(raster.path) as src:
        codes = src.read(1)
        inside = rasterio.features.geometry_mask(
            fields.geometry, codes.shape, src.transform, invert=True
        )
    assert raster.nodata == 0 and raster.crs == "EPSG:32630"
    assert raster.transform.a == pytest.approx(HEALTH_PIXEL_M)  # 4 x 4 image pixels
    assert (codes[~inside] == 0).all()
    alpha_zero = 40 // 4
    assert (codes[:, :alpha_zero] == 0).all()
    inside[:, :alpha_zero] = False
    assert (codes[inside] > 0).all()


def test_parcel_health_summarises_each_parcel(health_raster, test_scene):
    parcels = test_scene.health.assign(parcel_id=["P1", "P2", "P3"])
    summary = parcel_health(health_raster, test_scene.image, parcels)
    assert list(summary["parcel_id"]) == ["P1", "P2", "P3"]
    assert list(summary["dominant"]) == ["healthy", "stressed", "bare"]
    shares = summary[["healthy_pct", "stressed_pct", "bare_pct"]].sum(axis=1)
    np.testing.assert_allclose(shares, 100.0)
    assert summary["mean_vari"].is_monotonic_decreasing
    assert summary.crs == parcels.crs


def test_parcel_health_reads_a_precomputed_index_raster(health_raster, test_scene, tmp_path):
    parcels = test_scene.health.assign(parcel_id=["P1", "P2", "P3"])
    exg = index_raster(test_scene.image, "exg", tmp_path / "exg.tif")
    summary = parcel_health(health_raster, exg, parcels)
    assert summary["mean_exg"].iloc[0] > summary["mean_exg"].iloc[2]


def test_a_parcel_outside_the_image_has_no_dominant_class(health_raster, test_scene):
    far = gpd.GeoDataFrame({"parcel_id": ["far"]}, geometry=[box(0, 0, 10, 10)], crs="EPSG:32630")
    summary = parcel_health(health_raster, test_scene.image, far)
    assert summary["dominant"].iloc[0] is None
    assert summary["classified_m2"].iloc[0] == 0


def test_a_saved_model_predicts_the_same(health_model, health_raster, test_scene, tmp_path):
    loaded = load_model(save_model(health_model, tmp_path / "health.joblib"))
    assert loaded.training_hash == health_model.training_hash
    again = classify_health(loaded, test_scene.image, tmp_path / "again.tif")
    with rasterio.open(health_raster.path) as ra, rasterio.open(again.path) as rb:
        assert (ra.read() == rb.read()).all()


def test_training_labels_with_an_unknown_class_name_the_column(train_scene):
    labels = train_scene.health.assign(health=["healthy", "dead", "bare"])
    with pytest.raises(InputError, match="'health'.*dead"):
        train_health(train_scene.image, labels)


def test_classify_runs_on_a_real_rgba_orthophoto_in_another_crs(
    health_model, shared_data, tmp_path
):
    ortho = shared_data / "orthophotos/webodm_orthophoto.tif"
    raster = classify_health(health_model, ortho, tmp_path / "health.tif")
    with rasterio.open(raster.path) as src, rasterio.open(ortho) as rgba:
        codes, alpha = src.read(1), rgba.read(4)
    assert raster.crs == "EPSG:32615"
    assert (codes[alpha == 0] == 0).all()
    assert set(np.unique(codes[alpha > 0])) <= {1, 2, 3}
    assert len(np.unique(codes[alpha > 0])) >= 2


def test_a_building_model_is_refused_for_crop_health(building_model, test_scene, tmp_path):
    with pytest.raises(ProcessingError, match="not a crop health model"):
        classify_health(building_model, test_scene.image, tmp_path / "health.tif")


def test_a_single_band_raster_is_refused_with_its_name(health_model, health_raster, tmp_path):
    with pytest.raises(InputError, match="health.tif.*uint8 bands"):
        classify_health(health_model, health_raster.path, tmp_path / "again.tif")


def test_training_reads_a_gpkg_with_its_own_class_column(train_scene, test_scene, tmp_path):
    labels = tmp_path / "agronomist.gpkg"
    train_scene.health.rename(columns={"health": "etat"}).to_file(labels, layer="visite")
    model = train_health(train_scene.image, labels, class_column="etat", max_samples_per_class=2000)
    raster = classify_health(model, test_scene.image, tmp_path / "health.tif")
    scores = class_scores(raster, test_scene.health, "health", HEALTH_CLASSES)
    assert scores["healthy"].kappa > 0.8
    assert model.training == "supervised"


def test_spatial_cross_validation_of_a_scene_reports_every_class(tmp_path):
    scene = make_scene(tmp_path / "wide.tif", seed=3, size_px=1800)  # three 60 m wide fields
    report = validate_health(
        [(scene.image, scene.health)], block_m=28.0, n_folds=3, max_samples_per_class=1500
    )
    assert [s.name for s in report.scores] == list(HEALTH_CLASSES)
    assert report.block_m == 28.0 and report.buffer_m == pytest.approx(34 * HEALTH_PIXEL_M)
    assert 0 < sum(s.tested_px for s in report.scores) <= 4500
    assert report.sources == ("labels over wide.tif",)
    assert "| healthy |" in report.markdown() and "Cohen's kappa" in report.markdown()


def test_the_unsupervised_fallback_orders_clusters_by_index_and_says_so(test_scene, tmp_path):
    model = train_health_unsupervised(test_scene.image, mask_polygons=test_scene.health)
    assert model.training == "unsupervised"
    raster = classify_health(model, test_scene.image, tmp_path / "clusters.tif")
    with rasterio.open(raster.path) as src:
        assert src.tags()["training"] == "unsupervised"
    summary = parcel_health(raster, test_scene.image, test_scene.health.assign(parcel_id=[1, 2, 3]))
    assert summary["healthy_pct"].iloc[0] > summary["healthy_pct"].iloc[2]
    assert summary["bare_pct"].iloc[2] > summary["bare_pct"].iloc[0]
    text = unsupervised_report(model, test_scene.image).markdown()
    assert "accuracy unknown" in text and "`unsupervised`" in text
    assert not {"kappa", "precision", "recall"} & set(text.lower().split())


def test_a_supervised_raster_is_tagged_supervised(health_raster):
    with rasterio.open(health_raster.path) as src:
        assert src.tags()["training"] == "supervised"


def test_an_unsupervised_model_keeps_its_mark_when_saved(test_scene, tmp_path):
    model = train_health_unsupervised(test_scene.image, max_samples=5000)
    loaded = load_model(save_model(model, tmp_path / "clusters.joblib"))
    assert loaded.training == "unsupervised"
    assert unsupervised_report(loaded, test_scene.image) == unsupervised_report(
        model, test_scene.image
    )
