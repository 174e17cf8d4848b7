import numpy as np
import pytest
import rasterio

from core.errors import InputError
from models.indices import INDICES, compute_index, index_raster, vari


def test_vari_of_green_vegetation_is_positive_and_of_soil_negative():
    red, green, blue = (np.array(v, np.float32) for v in ([60, 150], [130, 105], [45, 75]))
    values = vari(red, green, blue)
    assert values[0] == pytest.approx(70 / 145)
    assert values[1] < 0


@pytest.mark.parametrize("name", sorted(INDICES))
def test_every_index_is_nan_where_its_denominator_is_zero(name):
    black = np.zeros((3, 2, 2), np.uint8)
    values = compute_index(name, black)
    assert values.dtype == np.float32
    assert np.isnan(values).all()


def test_index_raster_writes_nan_where_the_alpha_band_is_zero(test_scene, tmp_path):
    out = index_raster(test_scene.image, "exg", tmp_path / "exg.tif")
    with rasterio.open(out.path) as src:
        values = src.read(1)
        assert src.dtypes[0] == "float32" and np.isnan(src.nodata)
        assert src.crs.to_epsg() == 32630
    assert np.isnan(values[:, :40]).all()
    assert np.isfinite(values[:, 40:]).all()


def test_index_raster_rejects_an_unknown_index(test_scene, tmp_path):
    with pytest.raises(InputError, match="ndvi"):
        index_raster(test_scene.image, "ndvi", tmp_path / "ndvi.tif")


def test_index_raster_honours_the_nodata_of_a_real_landsat_scene(shared_data, tmp_path):
    out = index_raster(shared_data / "rasters/rasterio/RGB.byte.tif", "vari", tmp_path / "v.tif")
    with rasterio.open(out.path) as src:
        values = src.read(1)
    assert out.crs == "EPSG:32618"
    assert np.isnan(values[0, 0])  # the collar of the scene is nodata 0
    assert np.isfinite(values).mean() > 0.5
