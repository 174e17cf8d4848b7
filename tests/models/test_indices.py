import math

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from core.errors import InputError
from core.radiometry import irradiance_scale, panel_scale
from models.indices import (
    INDICES,
    VEGETATION_INDICES,
    canonical_band,
    compute_index,
    index_raster,
    index_values,
    vari,
)

REFLECTANCE = {"red": 0.1, "green": 0.2, "blue": 0.05, "nir": 0.5, "rededge": 0.3}
"""A healthy leaf, hand-computed below."""
EXPECTED = {
    "ndvi": 0.4 / 0.6,
    "ndre": 0.2 / 0.8,
    "gndvi": 0.3 / 0.7,
    "savi": 1.5 * 0.4 / 1.1,
    "osavi": 0.4 / 0.76,
    "vari": 0.1 / 0.25,
    "exg": 0.25 / 0.35,
    "exgr": (0.6 - 0.24 - 0.05) / 0.35,
    "gli": 0.25 / 0.55,
    "tgi": -0.5 * (190 * -0.1 - 120 * 0.05),
    "ngrdi": 0.1 / 0.3,
}
ZERO_DENOMINATOR = {
    "ndvi": {"nir": 1.0, "red": -1.0},
    "ndre": {"nir": 0.0, "rededge": 0.0},
    "gndvi": {"nir": 0.0, "green": 0.0},
    "savi": {"nir": 0.0, "red": -0.5},
    "osavi": {"nir": 0.0, "red": -0.16},
    "vari": {"red": 0.1, "green": 0.2, "blue": 0.3},
    "exg": {"red": 0.0, "green": 0.0, "blue": 0.0},
    "exgr": {"red": 0.0, "green": 0.0, "blue": 0.0},
    "gli": {"red": 0.0, "green": 0.0, "blue": 0.0},
    "ngrdi": {"red": 0.0, "green": 0.0},
}


def _bands(values: dict[str, float]) -> dict[str, np.ndarray]:
    return {band: np.array([value], np.float32) for band, value in values.items()}


def test_the_registry_holds_every_index_of_the_issue():
    assert sorted(VEGETATION_INDICES) == sorted(EXPECTED)
    assert VEGETATION_INDICES["ndre"].bands == ("nir", "rededge")
    assert VEGETATION_INDICES["tgi"].bands == ("red", "green", "blue")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_index_gives_its_hand_computed_value_on_a_healthy_leaf(name):
    values = index_values(name, _bands(REFLECTANCE), "leaf")
    assert values.dtype == np.float32
    assert values[0] == pytest.approx(EXPECTED[name], rel=1e-5)


@pytest.mark.parametrize("name", sorted(ZERO_DENOMINATOR))
def test_each_ratio_index_is_nan_where_its_denominator_is_zero(name):
    bands = {**REFLECTANCE, **ZERO_DENOMINATOR[name]}
    assert np.isnan(index_values(name, _bands(bands), "zeros")).all()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_index_is_nan_where_an_input_is_nan(name):
    bands = _bands(REFLECTANCE)
    bands[VEGETATION_INDICES[name].bands[0]][0] = np.nan
    assert np.isnan(index_values(name, bands, "nan input")).all()


def test_vari_of_green_vegetation_is_positive_and_of_soil_negative():
    red, green, blue = (np.array(v, np.float32) for v in ([60, 150], [130, 105], [45, 75]))
    values = vari(red, green, blue)
    assert values[0] == pytest.approx(70 / 145)
    assert values[1] < 0


def test_the_classifier_indices_are_unchanged_and_computed_from_rgb_arrays():
    assert list(INDICES) == ["vari", "exg", "gli", "ngrdi"]
    rgb = np.array([[[60]], [[130]], [[45]]], np.uint8)
    assert compute_index("tgi", rgb)[0, 0] == pytest.approx(-0.5 * (190 * -70 - 120 * 15))
    with pytest.raises(InputError, match=r"'ndvi' needs band\(s\) \['nir'\]"):
        compute_index("ndvi", rgb)


@pytest.mark.parametrize(
    ("recorded", "canonical"),
    [
        ("Blue", "blue"),
        ("Red edge", "rededge"),
        ("red_edge", "rededge"),
        ("NIR", "nir"),
        ("G", "green"),
        ("R", "red"),
        ("RE", "rededge"),
        ("lwir", None),
    ],
)
def test_band_names_of_micasense_and_mavic_3m_map_onto_the_index_bands(recorded, canonical):
    assert canonical_band(recorded) == canonical


def _write_multispectral(path, bands: dict[str, int], *, descriptions: bool = False) -> None:
    """A 2 x 3 uint16 raster whose band k holds ``bands``' k-th value, nodata 0 at (0, 0)."""
    profile = {
        "driver": "GTiff",
        "width": 3,
        "height": 2,
        "count": len(bands),
        "dtype": "uint16",
        "crs": "EPSG:32630",
        "transform": from_origin(600000, 3870000, 0.1, 0.1),
        "nodata": 0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        for number, (name, value) in enumerate(bands.items(), start=1):
            pixels = np.full((2, 3), value, np.uint16)
            pixels[0, 0] = 0
            dst.write(pixels, number)
            if descriptions:
                dst.set_band_description(number, name)


def _read(raster) -> np.ndarray:
    with rasterio.open(raster.path) as src:
        assert src.descriptions[0] is not None
        return src.read(1)


def test_ndre_of_a_micasense_stack_uses_the_bands_ingest_recorded(tmp_path):
    recorded = ("blue", "green", "red", "nir", "red_edge")
    dns = dict(zip(recorded, (500, 2000, 1000, 5000, 3000), strict=True))
    _write_multispectral(tmp_path / "rededge.tif", dns)
    out = index_raster(tmp_path / "rededge.tif", "ndre", tmp_path / "ndre.tif", band_names=recorded)
    values = _read(out)
    assert np.isnan(values[0, 0])  # nodata in the source
    assert values[1, 2] == pytest.approx(2000 / 8000)


def test_gndvi_of_a_mavic_3m_stack_reads_its_band_descriptions(tmp_path):
    dns = {"G": 2000, "R": 1000, "RE": 3000, "NIR": 5000}
    _write_multispectral(tmp_path / "m3m.tif", dns, descriptions=True)
    values = _read(index_raster(tmp_path / "m3m.tif", "gndvi", tmp_path / "gndvi.tif"))
    assert values[1, 1] == pytest.approx(3000 / 7000)


def test_an_index_needing_a_band_the_raster_lacks_names_the_raster_and_the_band(tmp_path):
    _write_multispectral(tmp_path / "rgn.tif", {"red": 1, "green": 2, "lwir": 3})
    with pytest.raises(InputError, match=r"rgn\.tif: index 'ndvi' needs band\(s\) \['nir'\]"):
        index_raster(
            tmp_path / "rgn.tif", "ndvi", tmp_path / "ndvi.tif", band_names=("red", "green", "lwir")
        )
    assert not (tmp_path / "ndvi.tif").exists()


def test_band_names_must_match_the_band_count(tmp_path):
    _write_multispectral(tmp_path / "rg.tif", {"red": 1, "green": 2})
    with pytest.raises(InputError, match="3 band names given for 2 bands"):
        index_raster(tmp_path / "rg.tif", "ngrdi", tmp_path / "x.tif", band_names=("r", "g", "b"))


def test_sun_sensor_calibration_turns_radiance_into_reflectance():
    assert irradiance_scale(math.pi) == pytest.approx(1.0)
    assert 0.02 * irradiance_scale(1.2) == pytest.approx(math.pi * 0.02 / 1.2)
    with pytest.raises(InputError, match="irradiance must be > 0"):
        irradiance_scale(0.0)


def test_panel_calibration_makes_the_panel_read_its_certified_reflectance():
    assert 8000 * panel_scale(8000, 0.49) == pytest.approx(0.49)
    with pytest.raises(InputError, match="calibration panel"):
        panel_scale(8000, 1.5)


def test_per_band_scales_change_a_ratio_index(tmp_path):
    dns = {"red": 1000, "nir": 3000}
    _write_multispectral(tmp_path / "rn.tif", dns, descriptions=True)
    scales = {"red": panel_scale(1000, 0.05), "nir": panel_scale(6000, 0.5)}
    values = _read(index_raster(tmp_path / "rn.tif", "ndvi", tmp_path / "n.tif", scales=scales))
    assert values[1, 1] == pytest.approx((0.25 - 0.05) / (0.25 + 0.05), rel=1e-6)


def test_index_raster_writes_nan_where_the_alpha_band_is_zero(test_scene, tmp_path):
    out = index_raster(test_scene.image, "exg", tmp_path / "exg.tif")
    with rasterio.open(out.path) as src:
        values = src.read(1)
        assert src.dtypes[0] == "float32" and np.isnan(src.nodata)
        assert src.crs.to_epsg() == 32630
        assert src.descriptions == ("exg",)
    assert np.isnan(values[:, :40]).all()
    assert np.isfinite(values[:, 40:]).all()


def test_index_raster_rejects_an_unknown_index(test_scene, tmp_path):
    with pytest.raises(InputError, match="unknown index 'ndwi'"):
        index_raster(test_scene.image, "ndwi", tmp_path / "ndwi.tif")


def test_index_raster_honours_the_nodata_of_a_real_landsat_scene(shared_data, tmp_path):
    out = index_raster(shared_data / "rasters/rasterio/RGB.byte.tif", "vari", tmp_path / "v.tif")
    with rasterio.open(out.path) as src:
        values = src.read(1)
    assert out.crs == "EPSG:32618"
    assert np.isnan(values[0, 0])  # the collar of the scene is nodata 0
    assert np.isfinite(values).mean() > 0.5
