"""GDAL's block cache is capped while Raqib's raster stages run."""

from rasterio.env import get_gdal_config

from core.io import GDAL_CACHE_BYTES, bounded_gdal_cache


def test_the_cache_is_capped_in_bytes_inside_the_block_and_restored_after() -> None:
    before = get_gdal_config("GDAL_CACHEMAX")
    with bounded_gdal_cache():
        # rasterio hands an integer to GDALSetCacheMax64 as bytes: 256 would be 256 bytes.
        assert get_gdal_config("GDAL_CACHEMAX") == GDAL_CACHE_BYTES == 256 * 2**20
    assert get_gdal_config("GDAL_CACHEMAX") == before


def test_a_decorated_function_runs_with_the_cap() -> None:
    @bounded_gdal_cache()
    def cache_size() -> int:
        return get_gdal_config("GDAL_CACHEMAX")

    assert cache_size() == GDAL_CACHE_BYTES
    assert cache_size() == GDAL_CACHE_BYTES  # the decorator works on every call
