"""STAC items of ingested captures: footprint, assets, eo/view/proj fields, offline validation."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pystac
import pytest
from photo_factory import CRS, HEIGHT_PX, WIDTH_PX, Pose, write_photo
from pyproj import Transformer
from shapely.geometry import Point, Polygon, shape

from core.errors import InputError
from core.types import Capture, ImageRecord
from pipeline.ingest import ingest_folder
from pipeline.stac import (
    add_images,
    capture_item,
    item_id,
    local_utm_crs,
    open_catalog,
    validate_catalog,
)

EXTENSIONS = {
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
}


def _photos(folder: Path, poses: list[Pose], seed: int = 1) -> list[ImageRecord]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k, pose in enumerate(poses):
        pixels = rng.integers(0, 255, (HEIGHT_PX, WIDTH_PX, 3), np.uint8)
        write_photo(folder / f"p{k}.jpg", pixels, pose)
    return list(ingest_folder(folder).images)


def image_item(record: ImageRecord) -> pystac.Item:
    """The Item of a one-photo capture (an RGB photo)."""
    return capture_item(Capture(record.capture_id, (record,)))


def photo_item_id(record: ImageRecord) -> str:
    return item_id(Capture(record.capture_id, (record,)))


@pytest.fixture
def record(tmp_path: Path) -> ImageRecord:
    return _photos(tmp_path / "photos", [Pose(565100.0, 3864900.0, yaw_deg=10.0)])[0]


def _solar_position_deg(lat_deg: float, lon_deg: float, when: datetime) -> tuple[float, float]:
    """Sun (elevation, azimuth) from the textbook declination/equation-of-time formulas."""
    utc = when.astimezone(UTC)
    gamma = 2 * math.pi / 365 * (utc.timetuple().tm_yday - 1 + (utc.hour - 12) / 24)
    eot_min = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
    )
    solar_min = utc.hour * 60 + utc.minute + eot_min + 4 * lon_deg
    hour_angle = math.radians(solar_min / 4 - 180)
    lat = math.radians(lat_deg)
    sin_el = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    elevation = math.asin(sin_el)
    cos_az = (math.sin(decl) - math.sin(lat) * sin_el) / (math.cos(lat) * math.cos(elevation))
    azimuth = math.degrees(math.acos(cos_az))
    return math.degrees(elevation), azimuth if hour_angle < 0 else 360 - azimuth


def test_item_footprint_is_the_frame_on_the_ground_in_lonlat(record: ImageRecord) -> None:
    item = image_item(record)
    polygon = shape(item.geometry)
    assert polygon.contains(Point(record.lon_deg, record.lat_deg))
    assert list(item.bbox) == pytest.approx(list(polygon.bounds))
    assert polygon.exterior.is_ccw
    to_utm = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    corners_m = [to_utm.transform(x, y) for x, y in polygon.exterior.coords]
    assert Polygon(corners_m).area == pytest.approx(64.0 * 48.0, rel=1e-3)
    assert item.id == f"p0-{record.sha256[:12]}"
    assert item.datetime == datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
    assert item.properties["raqib:local_time"] == "2026-03-14T10:30:00+01:00"


def test_item_carries_photo_asset_bands_pose_and_hash(record: ImageRecord) -> None:
    item = image_item(record).to_dict()
    asset = item["assets"]["image"]
    assert asset["href"] == str(record.path.resolve())
    assert asset["type"] == "image/jpeg" and asset["roles"] == ["data"]
    assert [b["common_name"] for b in asset["eo:bands"]] == ["red", "green", "blue"]
    assert asset["proj:code"] is None and asset["proj:shape"] == [HEIGHT_PX, WIDTH_PX]
    assert asset["raqib:sha256"] == record.sha256
    assert list(item["assets"]) == ["image"]
    properties = item["properties"]
    assert properties["raqib:capture_id"] == record.capture_id == "p0"
    assert properties["raqib:altitude_m"] == pytest.approx(60.0)
    assert properties["gsd"] == pytest.approx(0.1)
    assert properties["instruments"] == [record.camera.name]
    assert properties["view:off_nadir"] == 0.0
    assert "view:azimuth" not in properties  # a nadir frame looks in no direction


def test_sun_position_matches_the_textbook_formula(record: ImageRecord) -> None:
    properties = image_item(record).properties
    elevation, azimuth = _solar_position_deg(record.lat_deg, record.lon_deg, record.captured_at)
    assert properties["view:sun_elevation"] == pytest.approx(elevation, abs=1.0)
    assert properties["view:sun_azimuth"] == pytest.approx(azimuth, abs=1.0)
    assert 30.0 < elevation < 40.0  # a March morning at 34.9 N


@pytest.mark.parametrize(
    ("pitch_deg", "roll_deg", "off_nadir_deg", "azimuth_deg"),
    [(-80.0, 0.0, 10.0, 10.0), (-90.0, 5.0, 5.0, 100.0), (-90.0, -5.0, 5.0, 280.0)],
)
def test_tilted_frame_has_off_nadir_angle_and_look_azimuth(
    record: ImageRecord,
    pitch_deg: float,
    roll_deg: float,
    off_nadir_deg: float,
    azimuth_deg: float,
) -> None:
    tilted = replace(record, pitch_deg=pitch_deg, roll_deg=roll_deg)  # yaw 10 deg
    properties = image_item(tilted).properties
    assert properties["view:off_nadir"] == pytest.approx(off_nadir_deg, abs=1e-3)
    assert properties["view:azimuth"] == pytest.approx(azimuth_deg, abs=1e-3)


def test_catalog_validates_offline_against_core_schemas(tmp_path: Path) -> None:
    records = _photos(tmp_path / "photos", [Pose(565100.0, 3864900.0), Pose(565140.0, 3864900.0)])
    add_images(tmp_path / "stac", records, "flight-a")
    catalog = open_catalog(tmp_path / "stac")
    assert validate_catalog(catalog) == EXTENSIONS  # no extension schema is shipped offline
    item = next(catalog.get_items(recursive=True))
    item.bbox = [0.0, 0.0]
    with pytest.raises(pystac.STACValidationError):
        validate_catalog(catalog)


def test_extension_schemas_from_a_folder_are_applied(tmp_path: Path, record: ImageRecord) -> None:
    # A stand-in for the view schema, stricter than the real one: off-nadir at most 5 deg.
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    view_uri = "https://stac-extensions.github.io/view/v1.0.0/schema.json"
    stand_in = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": view_uri,
        "type": "object",
        "properties": {
            "properties": {
                "type": "object",
                "properties": {"view:off_nadir": {"type": "number", "maximum": 5}},
            }
        },
    }
    (schemas / "view.json").write_text(json.dumps(stand_in))
    add_images(tmp_path / "stac", [record], "flight-a")
    catalog = open_catalog(tmp_path / "stac")
    assert validate_catalog(catalog, schemas) == EXTENSIONS - {view_uri}
    add_images(tmp_path / "stac", [replace(record, sha256="0" * 64, pitch_deg=-80.0)], "flight-a")
    with pytest.raises(pystac.STACValidationError, match="off_nadir"):
        validate_catalog(open_catalog(tmp_path / "stac"), schemas)


def test_adding_the_same_photos_again_adds_nothing(tmp_path: Path) -> None:
    poses = [Pose(565100.0, 3864900.0), Pose(565140.0, 3864900.0)]
    records = _photos(tmp_path / "photos", poses)
    stac_dir = tmp_path / "stac"
    assert add_images(stac_dir, records, "flight-a") == tuple(photo_item_id(r) for r in records)
    before = sorted(p.read_bytes() for p in stac_dir.rglob("*.json"))
    assert add_images(stac_dir, records, "flight-a") == ()
    assert add_images(stac_dir, records, "flight-b") == ()
    assert sorted(p.read_bytes() for p in stac_dir.rglob("*.json")) == before
    assert not list(stac_dir.rglob(".*tmp*"))


def test_new_photos_extend_their_collection(tmp_path: Path) -> None:
    first = _photos(tmp_path / "one", [Pose(565100.0, 3864900.0)])
    second = _photos(tmp_path / "two", [Pose(565400.0, 3864600.0)], seed=2)
    add_images(tmp_path / "stac", first, "flight-a")
    add_images(tmp_path / "stac", first + second, "flight-a")
    collection = open_catalog(tmp_path / "stac").get_child("flight-a")
    assert isinstance(collection, pystac.Collection)
    assert len(list(collection.get_items())) == 2
    west, south, east, north = collection.extent.spatial.bboxes[0]
    for record in first + second:
        assert west < record.lon_deg < east and south < record.lat_deg < north


def test_adding_photos_one_by_one_writes_what_a_full_pystac_save_writes(
    tmp_path: Path,
) -> None:
    records = _photos(tmp_path / "photos", [Pose(565100.0, 3864900.0), Pose(565140.0, 3864900.0)])
    for record in records:  # only the new item, its collection and the root are rewritten
        add_images(tmp_path / "one_by_one", [record], "flight-a")
    open_catalog(tmp_path / "one_by_one").normalize_and_save(
        str(tmp_path / "at_once"), pystac.CatalogType.SELF_CONTAINED
    )

    def tree(root: Path) -> dict[str, object]:
        return {str(p.relative_to(root)): json.loads(p.read_text()) for p in root.rglob("*.json")}

    assert tree(tmp_path / "one_by_one") == tree(tmp_path / "at_once")
    assert len(tree(tmp_path / "at_once")) == 4  # catalog, collection, two items


def test_bad_collection_name_and_corrupt_catalog_are_input_errors(
    tmp_path: Path, record: ImageRecord
) -> None:
    with pytest.raises(InputError, match="flight/epoch name"):
        add_images(tmp_path / "stac", [record], "../escape")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "catalog.json").write_text("{ not json")
    with pytest.raises(InputError, match="catalog.json.*move it away"):
        add_images(tmp_path / "broken", [record], "flight-a")


def test_local_utm_zone() -> None:
    assert local_utm_crs(-2.3, 34.9) == "EPSG:32630"
    assert local_utm_crs(-119.4, 36.6) == "EPSG:32611"
    assert local_utm_crs(151.2, -33.9) == "EPSG:32756"


def _micasense(shared_data: Path) -> tuple[ImageRecord, ...]:
    folder = shared_data / "drone_photos" / "micasense_rededge"
    return ingest_folder(folder, ground_elevation_m=0.0).images


def test_real_micasense_captures_become_one_item_each_with_an_asset_per_band(
    shared_data: Path, tmp_path: Path
) -> None:
    records = _micasense(shared_data)
    captures = {record.capture_id: [] for record in records}
    for record in records:
        captures[record.capture_id].append(record)
    assert [len(files) for files in captures.values()] == [5, 5]
    ids = add_images(tmp_path / "stac", records, "flight-2017-10-19")
    assert [item_id.split("-")[0] for item_id in ids] == ["IMG_0000", "IMG_0001"]
    catalog = open_catalog(tmp_path / "stac")
    assert validate_catalog(catalog) == EXTENSIONS
    items = {
        item.properties["raqib:capture_id"]: item for item in catalog.get_items(recursive=True)
    }
    assert set(items) == set(captures)
    for capture_id, files in captures.items():
        item = items[capture_id]
        assert list(item.assets) == ["blue", "green", "red", "nir", "red_edge"]
        assets = list(item.assets.values())
        assert [asset.href for asset in assets] == [str(r.path.resolve()) for r in files]
        assert [asset.extra_fields["raqib:sha256"] for asset in assets] == [r.sha256 for r in files]
        assert {asset.media_type for asset in assets} == {"image/tiff"}
        bands = [asset.extra_fields["eo:bands"] for asset in assets]
        assert bands[4] == [
            {"name": "red_edge", "common_name": "rededge", "center_wavelength": 0.717}
        ]
        assert [b[0]["center_wavelength"] for b in bands] == [0.475, 0.56, 0.668, 0.84, 0.717]
        assert shape(item.geometry).contains(Point(files[0].lon_deg, files[0].lat_deg))
        assert item.datetime == files[0].captured_at
    assert add_images(tmp_path / "stac", records, "flight-2017-10-19") == ()


def test_a_capture_item_id_depends_on_its_files_not_their_order(shared_data: Path) -> None:
    band_files = _micasense(shared_data)[:5]
    capture = Capture(band_files[0].capture_id, band_files)
    assert item_id(capture) == item_id(Capture(capture.capture_id, band_files[::-1]))
    assert item_id(capture) != item_id(Capture(capture.capture_id, band_files[:4]))


def test_band_files_catalogued_after_their_capture_get_an_item_of_their_own(
    shared_data: Path, tmp_path: Path
) -> None:
    band_files = _micasense(shared_data)[:5]
    first = add_images(tmp_path / "stac", band_files[:3], "flight-a")
    later = add_images(tmp_path / "stac", band_files, "flight-a")
    assert len(first) == len(later) == 1 and first != later
    items = list(open_catalog(tmp_path / "stac").get_items(recursive=True))
    assert sorted(len(item.assets) for item in items) == [2, 3]
