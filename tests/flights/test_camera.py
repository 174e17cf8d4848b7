"""The camera database: real sensors, ground sampling distance, preview read-outs."""

from __future__ import annotations

import pytest

from core.errors import InputError
from flights.camera import get_camera, load_cameras, preview


def test_builtin_database_holds_the_survey_cameras() -> None:
    cameras = load_cameras()
    assert {"dji_mavic_3e", "dji_phantom_4_rtk", "micasense_rededge_mx"} <= set(cameras)
    assert cameras["micasense_rededge_mx"].bands == ("blue", "green", "red", "nir", "red_edge")
    for camera in cameras.values():
        assert camera.image_width_px > camera.image_height_px > 0
        assert camera.focal_length_mm > 0


def test_mavic_3e_gsd_matches_dji_specification() -> None:
    # DJI: "GSD = H / 36.5 cm/px", i.e. about 2.7 cm/px at 100 m.
    camera = get_camera("dji_mavic_3e")
    assert camera.gsd_cm(100.0) == pytest.approx(2.67, abs=0.01)
    assert camera.gsd_cm(100.0) == pytest.approx(100.0 / 36.5, rel=0.03)
    assert camera.altitude_for_gsd_m(camera.gsd_cm(80.0)) == pytest.approx(80.0)


def test_preview_keeps_the_footprint_and_coarsens_the_gsd() -> None:
    camera = get_camera("dji_mavic_3e")
    quarter = preview(camera, 4)
    assert (quarter.image_width_px, quarter.image_height_px) == (1320, 989)
    assert quarter.name == "DJI Mavic 3E (1/4 preview)"
    assert quarter.gsd_cm(100.0) == pytest.approx(4 * camera.gsd_cm(100.0))
    assert quarter.footprint_m(94.0) == pytest.approx(camera.footprint_m(94.0), rel=1e-3)
    assert quarter.altitude_for_gsd_m(10.0) == pytest.approx(94.0, abs=0.5)
    assert preview(camera, 1) == camera


def test_preview_refuses_a_factor_below_one() -> None:
    with pytest.raises(ValueError, match="factor"):
        preview(get_camera("dji_mavic_3e"), 0)


def test_unknown_camera_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match="unknown camera 'gopro'.*dji_mavic_3e"):
        get_camera("gopro")


def test_bad_database_entry_names_the_file_and_camera(tmp_path) -> None:
    database = tmp_path / "cameras.toml"
    database.write_text('[toy]\nname = "Toy"\nlens = "wide"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"cameras\.toml: camera \[toy\]"):
        load_cameras(database)
