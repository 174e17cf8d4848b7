from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
import rasterio
from affine import Affine

import cli
from core.capture_time import TIFF_DATETIME_TAG, capture_tags, parse_captured_at
from core.errors import InputError
from models.sun import image_sun, shadow_px_per_m, sun_position
from models.windows import working_grid

BERKANE = (-2.297, 34.93)
WINTER_CAPTURE = datetime(2026, 1, 15, 11, 0, tzinfo=timezone(timedelta(hours=1)))


def _orthophoto(path, tags: dict[str, str]) -> None:
    """A 10 cm, 40 x 30 px RGB GeoTIFF in Berkane (UTM 30N) with ``tags``."""
    profile = dict(
        driver="GTiff",
        width=40,
        height=30,
        count=3,
        dtype="uint8",
        crs="EPSG:32630",
        transform=Affine(0.1, 0.0, 564_700.0, 0.0, -0.1, 3_865_400.0),
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((3, 30, 40), 128, np.uint8))
        dst.update_tags(**tags)


def test_sun_position_agrees_with_noaa_for_the_simulators_epochs():
    # the simulator's suns were computed with NOAA's equations (sim/world.py SEASONS)
    winter = sun_position(WINTER_CAPTURE, *BERKANE)
    summer = sun_position(datetime(2026, 7, 10, 11, 0, tzinfo=UTC), *BERKANE)
    assert (winter.azimuth_deg, winter.elevation_deg) == pytest.approx((144.5, 25.0), abs=0.5)
    assert (summer.azimuth_deg, summer.elevation_deg) == pytest.approx((122.8, 69.5), abs=0.5)


def test_no_sun_at_night():
    assert sun_position(datetime(2026, 1, 15, 23, 0, tzinfo=UTC), *BERKANE) is None


def test_the_sun_of_an_image_comes_from_its_capture_tags(tmp_path):
    _orthophoto(tmp_path / "tagged.tif", capture_tags(WINTER_CAPTURE))
    # TIFFTAG_DATETIME alone is local time, read in Berkane's zone (UTC+1 in January)
    _orthophoto(tmp_path / "datetime.tif", {TIFF_DATETIME_TAG: "2026:01:15 11:00:00"})
    _orthophoto(tmp_path / "untagged.tif", {})
    with rasterio.open(tmp_path / "tagged.tif") as src:
        tagged = image_sun(src)
    with rasterio.open(tmp_path / "datetime.tif") as src:
        assert image_sun(src) == tagged
    with rasterio.open(tmp_path / "untagged.tif") as src:
        assert image_sun(src) is None
        given = image_sun(src, captured_at=WINTER_CAPTURE)
    assert tagged.elevation_deg == pytest.approx(25.0, abs=0.5)
    assert given == tagged


def test_shadows_fall_away_from_the_sun_on_the_grid(tmp_path):
    _orthophoto(tmp_path / "ortho.tif", {})
    with rasterio.open(tmp_path / "ortho.tif") as src:
        from_south = sun_position(datetime(2026, 6, 21, 12, 10, tzinfo=UTC), *BERKANE)
        col, row = shadow_px_per_m(from_south, src, working_grid(src, None))
        coarse = shadow_px_per_m(from_south, src, working_grid(src, 0.4))
    # at solar noon the sun is south: 1 m of height casts ~0.2 m (2 px) north, up the rows
    length = 10.0 / np.tan(np.radians(from_south.elevation_deg))
    assert row == pytest.approx(-length, rel=0.05) and abs(col) < 0.05 * abs(row)
    assert coarse == pytest.approx((col / 4, row / 4))
    assert shadow_px_per_m(None, src, working_grid(src, None)) is None


def test_a_typed_capture_time_without_offset_is_berkane_time_and_a_bad_one_is_named():
    assert parse_captured_at("2026-01-15T11:00") == WINTER_CAPTURE
    with pytest.raises(InputError, match="--captured-at.*not a date and time"):
        parse_captured_at("15/01/2026")


def test_detect_buildings_names_a_bad_capture_time_without_a_traceback(tmp_path, capsys):
    _orthophoto(tmp_path / "ortho.tif", {})
    code = cli.main(
        ["detect", "buildings", str(tmp_path / "ortho.tif"), "-o", str(tmp_path / "b.gpkg"),
         "--captured-at", "15/01/2026"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0
    assert "--captured-at: '15/01/2026' is not a date and time" in err
    assert "Traceback" not in err
