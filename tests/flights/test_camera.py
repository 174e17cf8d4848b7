"""The camera database: real sensors, ground sampling distance, custom cameras, read-outs."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InputError
from flights.camera import get_camera, load_camera_database, load_cameras, preview

SURVEY_CAMERAS = {
    "dji_mavic_3e",
    "dji_mavic_3m",
    "dji_mavic_3m_multispectral",
    "dji_phantom_4_rtk",
    "dji_phantom_4_multispectral",
    "dji_m350_p1_35mm",
    "micasense_rededge_mx",
    "micasense_altum_pt",
    "parrot_sequoia_plus",
}

GOOD_ENTRY = """
[field_cam]
name = "Field camera"
make = "Acme"
model = "FC-1"
sensor_width_mm = 13.2
sensor_height_mm = 8.8
image_width_px = 5472
image_height_px = 3648
focal_length_mm = 10.0
min_trigger_interval_s = 1.5
photo_mb = 9.0
endurance_s = 1500
aliases = ["acme"]
"""


def test_builtin_database_holds_the_survey_cameras() -> None:
    cameras = load_cameras()
    assert SURVEY_CAMERAS <= set(cameras)
    assert cameras["micasense_rededge_mx"].bands == ("blue", "green", "red", "nir", "red_edge")
    assert cameras["dji_mavic_3m_multispectral"].bands == ("green", "red", "red_edge", "nir")
    for camera in cameras.values():
        assert camera.image_width_px > camera.image_height_px > 0
        assert camera.focal_length_mm > 0
        assert camera.photo_mb is not None and camera.photo_mb > 0


def test_payloads_have_no_endurance_and_drones_do() -> None:
    cameras = load_cameras()
    for key in ("micasense_rededge_mx", "micasense_altum_pt", "parrot_sequoia_plus"):
        assert cameras[key].endurance_s is None
    assert cameras["dji_mavic_3e"].endurance_s == 45 * 60
    assert cameras["dji_phantom_4_multispectral"].endurance_s == 27 * 60


@pytest.mark.parametrize(
    ("key", "height_per_cm"),
    [
        ("dji_mavic_3e", 36.5),  # DJI: GSD = H / 36.5 cm/px
        ("dji_mavic_3m_multispectral", 21.6),  # DJI: GSD = H / 21.6 cm/px
        ("dji_phantom_4_multispectral", 18.9),  # DJI: GSD = H / 18.9 cm/px
        ("dji_m350_p1_35mm", 80.0),  # DJI: P1 35 mm, GSD = H / 80 cm/px
        ("micasense_altum_pt", 120.0 / 5.28),  # MicaSense: 5.28 cm/px at 120 m
    ],
)
def test_gsd_matches_the_makers_formula(key: str, height_per_cm: float) -> None:
    camera = get_camera(key)
    assert camera.gsd_cm(100.0) == pytest.approx(100.0 / height_per_cm, rel=0.03)
    assert camera.altitude_for_gsd_m(camera.gsd_cm(80.0)) == pytest.approx(80.0)


def test_aliases_name_cameras_in_any_case() -> None:
    assert get_camera("mavic3m") == get_camera("dji_mavic_3m_multispectral")
    assert get_camera("Mavic3M") == get_camera("mavic3m")
    assert get_camera("P4M").name == "DJI Phantom 4 Multispectral"
    assert get_camera("DJI_MAVIC_3E").model == "M3E"


def test_aliases_are_unique_across_the_database() -> None:
    database = load_camera_database()
    assert not set(database.aliases) & set(database.cameras)
    assert set(database.aliases.values()) <= set(database.cameras)


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
    with pytest.raises(InputError, match="unknown camera 'gopro'.*dji_mavic_3e.*mavic3m"):
        get_camera("gopro")


def test_custom_camera_from_a_user_file_comes_first(tmp_path: Path) -> None:
    database = tmp_path / "my_cameras.toml"
    override = GOOD_ENTRY.replace("[field_cam]", "[dji_mavic_3e]").replace('"acme"', '"m3e"')
    database.write_text(GOOD_ENTRY + override, encoding="utf-8")
    camera = get_camera("acme", database)
    assert camera.name == "Field camera"
    assert camera.min_trigger_interval_s == 1.5 and camera.endurance_s == 1500.0
    assert camera.gsd_cm(100.0) == pytest.approx(100.0 * 13.2 / 5472 / 10.0 * 100.0)
    assert get_camera("dji_mavic_3e", database).model == "FC-1"  # the user's file wins
    assert get_camera("p4rtk", database).name == "DJI Phantom 4 RTK"  # then the built-in one


def test_unknown_camera_with_a_user_file_names_that_file(tmp_path: Path) -> None:
    database = tmp_path / "my_cameras.toml"
    database.write_text(GOOD_ENTRY, encoding="utf-8")
    with pytest.raises(InputError, match=r"my_cameras\.toml: unknown camera 'gopro'.*field_cam"):
        get_camera("gopro", database)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("focal_length_mm = 10.0\n", ""), r"missing field 'focal_length_mm'"),
        (("= 13.2", "= -13.2"), r"sensor_width_mm must be a positive number, got -13.2"),
        (("= 3648", "= 3648.5"), r"image_height_px must be a positive whole number"),
        (("= 3648", '= "3648"'), r"image_height_px must be a positive whole number"),
        (("= 1.5", "= 0"), r"min_trigger_interval_s must be a positive number, got 0"),
        (("= 9.0", "= nan"), r"photo_mb must be a positive number, got nan"),
        (
            ("= 5472", "= 3000"),
            r"sensor .* have different shapes; give both as width \(long side\)",
        ),
        (("photo_mb", "lens_mm"), r"unknown field 'lens_mm'"),
        (('aliases = ["acme"]', 'bands = ["nir", "nir"]'), "bands must be a list of distinct"),
        (('aliases = ["acme"]', 'aliases = "acme"'), "aliases must be a list of names"),
        (('name = "Field camera"', "name = 3"), "name must be a non-empty string"),
    ],
)
def test_bad_custom_camera_names_the_file_the_camera_and_the_field(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    database = tmp_path / "my_cameras.toml"
    database.write_text(GOOD_ENTRY.replace(*change), encoding="utf-8")
    with pytest.raises(InputError, match=rf"my_cameras\.toml: camera \[field_cam\]: {message}"):
        get_camera("field_cam", database)


def test_alias_taken_twice_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "cameras.toml"
    second = GOOD_ENTRY.replace("[field_cam]", "[other_cam]")
    database.write_text(GOOD_ENTRY + second, encoding="utf-8")
    with pytest.raises(InputError, match=r"camera \[other_cam\]: alias 'acme' already names"):
        load_cameras(database)


def test_unreadable_user_file_is_named(tmp_path: Path) -> None:
    database = tmp_path / "broken.toml"
    database.write_text("[toy\nname = ", encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.toml: cannot read camera database"):
        get_camera("toy", database)
    with pytest.raises(InputError, match=r"missing\.toml: cannot read camera database"):
        get_camera("toy", tmp_path / "missing.toml")


def test_entry_that_is_not_a_table_is_named(tmp_path: Path) -> None:
    database = tmp_path / "cameras.toml"
    database.write_text('toy = "a camera"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"cameras\.toml: camera \[toy\]: must be a table"):
        load_cameras(database)
