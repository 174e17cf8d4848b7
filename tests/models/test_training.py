import joblib
import numpy as np
import pytest
import shapely

from core.errors import InputError
from models.features import BUILDING_FEATURES, CROP_FEATURES
from models.training import load_model, sample_labelled_pixels, softened_copy


@pytest.mark.parametrize(
    "content",
    [bytes((i * 37 + 11) % 256 for i in range(512)), b"just some text\nnot a model\n", b""],
    ids=["random-bytes", "text", "empty"],
)
def test_a_file_that_is_not_a_model_is_an_input_error(tmp_path, content):
    path = tmp_path / "model.joblib"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a Raqib model file") as caught:
        load_model(path)
    assert caught.value.source == str(path)


def test_a_missing_model_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not a Raqib model file: no such file"):
        load_model(tmp_path / "absent.joblib")


def test_a_joblib_file_of_something_else_is_an_input_error(tmp_path):
    path = tmp_path / "other.joblib"
    joblib.dump({"not": "a model"}, path)
    with pytest.raises(InputError, match="not a Raqib"):
        load_model(path)


def test_sampled_pixels_lie_in_their_polygon_and_weigh_what_it_covers(train_scene):
    shapes = [(geom, code) for code, geom in enumerate(train_scene.health.geometry, start=1)]
    sample = sample_labelled_pixels(
        train_scene.image, shapes, 3, features=BUILDING_FEATURES, max_samples_per_class=1000
    )
    for geom, code in shapes:
        mine = sample.y == code
        assert mine.sum() == 1000
        assert shapely.contains_xy(geom, sample.xy[mine, 0], sample.xy[mine, 1]).all()
        covered_px = geom.area / 0.1**2
        assert sample.weight[mine].sum() == pytest.approx(covered_px, rel=0.01)


def test_a_sample_keeps_all_pixels_of_a_class_below_the_cap(train_scene):
    small = train_scene.health.geometry.iloc[0].centroid.buffer(0.5, cap_style="square")
    sample = sample_labelled_pixels(train_scene.image, [(small, 1)], 1, features=BUILDING_FEATURES)
    assert sample.y.size == 100
    assert np.all(sample.weight == 1.0)


def test_on_a_coarser_working_grid_a_sample_counts_its_cells(train_scene):
    small = train_scene.health.geometry.iloc[0].centroid.buffer(2.0, cap_style="square")
    sample = sample_labelled_pixels(
        train_scene.image, [(small, 1)], 1, features=CROP_FEATURES, pixel_m=0.4
    )
    assert 100 <= sample.y.size <= 121  # 4 m x 4 m: 10-11 cells of 0.4 m a side
    assert sample.x.shape[1] == len(CROP_FEATURES.names)
    assert shapely.intersects_xy(small, sample.xy[:, 0], sample.xy[:, 1]).all()


def test_a_model_saved_before_feature_sets_is_refused(tmp_path, health_model):
    import dataclasses

    old = dict(dataclasses.asdict(health_model), feature_names=health_model.feature_names)
    del old["features"]
    stale = object.__new__(type(health_model))
    object.__setattr__(stale, "__dict__", old)
    joblib.dump(stale, tmp_path / "old.joblib")
    with pytest.raises(InputError, match="older Raqib"):
        load_model(tmp_path / "old.joblib")


def test_a_softened_copy_keeps_grid_and_alpha_and_weakens_fine_texture(tmp_path, shared_data):
    """The real RGBA WebODM orthophoto: colour bands blurred, alpha and georeferencing kept."""
    import shutil

    import numpy as np
    import rasterio

    image = shutil.copy(shared_data / "orthophotos/webodm_orthophoto.tif", tmp_path / "o.tif")
    soft = softened_copy(image, 0.8)
    assert soft.name == "o_soft0.8.tif"
    with rasterio.open(image) as a, rasterio.open(soft) as b:
        assert (b.crs, b.transform, b.count) == (a.crs, a.transform, a.count)
        before, after = a.read().astype(float), b.read().astype(float)
    assert np.array_equal(before[3], after[3])  # alpha untouched
    roughness = [np.abs(np.diff(x[0], axis=1)).mean() for x in (before, after)]
    assert roughness[1] < 0.8 * roughness[0]
    assert softened_copy(image, 0.8) == soft  # written once
