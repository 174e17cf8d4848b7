"""The image catalogue: ``images``/``image_centres`` layers, skipped photos, and a persistent
catalogue (GeoPackage + STAC) that re-ingesting the same photos leaves unchanged and
re-ingesting a re-flown folder under the same collection replaces, not doubles."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from photo_factory import CRS, HEIGHT_PX, WIDTH_PX, Pose, write_photo

from core.errors import InputError
from core.types import IngestResult
from pipeline.catalog import (
    CATALOG_GPKG,
    CENTRES_LAYER,
    IMAGES_LAYER,
    catalog_images,
    centres_frame,
    images_frame,
    skipped_frame,
)
from pipeline.ingest import ingest_folder
from pipeline.stac import open_catalog


@pytest.fixture
def result(tmp_path: Path) -> IngestResult:
    pixels = np.random.default_rng(1).integers(0, 255, (HEIGHT_PX, WIDTH_PX, 3), np.uint8)
    write_photo(tmp_path / "a.jpg", pixels, Pose(565100.0, 3864900.0, yaw_deg=10.0))
    write_photo(tmp_path / "b.jpg", pixels[::-1].copy(), Pose(565140.0, 3864900.0))
    (tmp_path / "c.jpg").write_bytes(b"\xff\xd8 broken")
    return ingest_folder(tmp_path)


def test_images_layer_round_trips_through_geopackage(result: IngestResult, tmp_path: Path) -> None:
    frame = images_frame(result, CRS)
    assert list(frame["file"]) == ["a.jpg", "b.jpg"]
    assert frame.crs.to_epsg() == 32630
    assert frame.geometry.area.to_numpy() == pytest.approx([64.0 * 48.0] * 2, rel=1e-4)
    assert (
        frame.geometry.iloc[0].centroid.distance(
            gpd.points_from_xy([565100.0], [3864900.0], crs=CRS)[0]
        )
        < 0.01
    )
    assert frame["captured_at"].iloc[0] == "2026-03-14T10:30:00+01:00"
    assert frame[["centre_x_m", "centre_y_m"]].iloc[0].tolist() == pytest.approx(
        [565100.0, 3864900.0], abs=0.01
    )
    assert frame["bands"].iloc[0] == "red,green,blue"
    assert frame["capture_id"].iloc[0] == "a"  # an RGB photo is a capture of its own
    assert frame["stac_item"].iloc[0] == f"a-{frame['sha256'].iloc[0][:12]}"
    out = tmp_path / "catalog.gpkg"
    frame.to_file(out, layer="images")
    back = gpd.read_file(out, layer="images")
    assert list(back["sha256"]) == list(frame["sha256"])
    assert back["altitude_m"].to_numpy() == pytest.approx([60.0, 60.0])


def test_skipped_table_names_file_and_reason(result: IngestResult) -> None:
    table = skipped_frame(result)
    assert list(table.columns) == ["path", "reason"]
    assert table["path"].iloc[0].endswith("c.jpg")
    assert "not a readable image" in table["reason"].iloc[0]


def test_empty_result_gives_empty_layers() -> None:
    frame = images_frame(IngestResult(images=()), CRS)
    assert len(frame) == 0 and "sha256" in frame.columns and frame.crs.to_epsg() == 32630
    assert skipped_frame(IngestResult(images=())).empty


def test_centres_layer_puts_points_at_the_camera_positions(result: IngestResult) -> None:
    centres = centres_frame(images_frame(result, CRS))
    assert list(centres.geom_type) == ["Point", "Point"]
    assert centres.geometry.x.tolist() == pytest.approx([565100.0, 565140.0], abs=0.01)
    assert centres.geometry.y.tolist() == pytest.approx([3864900.0, 3864900.0], abs=0.01)


def _photo(folder: Path, name: str, east_m: float, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 255, (HEIGHT_PX, WIDTH_PX, 3), np.uint8)
    write_photo(folder / name, pixels, Pose(east_m, 3864900.0))


def test_recataloguing_the_same_folder_adds_nothing_and_a_new_photo_adds_one(
    tmp_path: Path,
) -> None:
    photos, catalog_dir = tmp_path / "photos", tmp_path / "catalog"
    photos.mkdir()
    _photo(photos, "a.jpg", 565100.0, 1)
    _photo(photos, "b.jpg", 565140.0, 2)
    first = catalog_images(ingest_folder(photos), catalog_dir, CRS)
    assert len(first.added) == 2 and first.already_catalogued == ()
    assert first.collection == "flight-2026-03-14"
    again = catalog_images(ingest_folder(photos), catalog_dir, CRS)
    assert again.added == () and set(again.already_catalogued) == set(first.added)
    assert len(gpd.read_file(catalog_dir / CATALOG_GPKG, layer=IMAGES_LAYER)) == 2
    _photo(photos, "c.jpg", 565180.0, 3)
    third = catalog_images(ingest_folder(photos), catalog_dir, CRS)
    assert len(third.added) == 1 and len(third.already_catalogued) == 2
    images = gpd.read_file(catalog_dir / CATALOG_GPKG, layer=IMAGES_LAYER)
    centres = gpd.read_file(catalog_dir / CATALOG_GPKG, layer=CENTRES_LAYER)
    assert list(images["file"]) == ["a.jpg", "b.jpg", "c.jpg"]
    assert list(centres["sha256"]) == list(images["sha256"])
    assert images.crs.to_epsg() == 32630 and set(images.geom_type) == {"Polygon"}
    stac = open_catalog(catalog_dir / "stac")
    items = list(stac.get_items(recursive=True))
    assert sorted(item.id for item in items) == sorted(images["stac_item"])
    assert not list(catalog_dir.rglob(".*.tmp*"))


def test_catalogue_in_another_crs_is_refused(result: IngestResult, tmp_path: Path) -> None:
    catalog_images(result, tmp_path, CRS)
    with pytest.raises(InputError, match="EPSG:32630, not EPSG:32631"):
        catalog_images(result, tmp_path, "EPSG:32631")


def test_real_micasense_flight_is_catalogued_in_its_utm_zone(
    shared_data: Path, tmp_path: Path
) -> None:
    ingested = ingest_folder(
        shared_data / "drone_photos" / "micasense_rededge", ground_elevation_m=0.0
    )
    update = catalog_images(ingested, tmp_path, "EPSG:32611", collection="rededge-2017")
    assert len(update.added) == 10
    images = gpd.read_file(update.geopackage, layer=IMAGES_LAYER)
    assert list(images["bands"].iloc[:5]) == ["blue", "green", "red", "nir", "red_edge"]
    assert (images["collection"] == "rededge-2017").all()
    assert images.groupby("capture_id")["file"].apply(list).tolist() == [
        [f"IMG_000{capture}_{band}.tif" for band in range(1, 6)] for capture in range(2)
    ]
    assert images.groupby("capture_id")["stac_item"].nunique().tolist() == [1, 1]
    assert images["captured_at"].iloc[0].startswith("2017-10-19T20:40:39")
    for footprint, x_m, y_m in zip(
        images.geometry, images["centre_x_m"], images["centre_y_m"], strict=True
    ):
        assert footprint.contains(gpd.points_from_xy([x_m], [y_m])[0])
    items = list(open_catalog(tmp_path / "stac").get_items(recursive=True))
    assert sorted(item.id for item in items) == sorted(set(images["stac_item"]))
    assert [len(item.assets) for item in items] == [5, 5]


def test_a_catalogue_without_capture_ids_says_to_start_afresh(
    result: IngestResult, tmp_path: Path
) -> None:
    update = catalog_images(result, tmp_path, CRS)
    older = gpd.read_file(update.geopackage, layer=IMAGES_LAYER).drop(columns="capture_id")
    older.to_file(update.geopackage, layer=IMAGES_LAYER)
    with pytest.raises(InputError, match=r"images.gpkg.*\['capture_id'\].*move its folder away"):
        catalog_images(result, tmp_path, CRS)


def _stac_items(catalog_dir: Path) -> dict[str, str]:
    """Item id -> collection id of every Item in the catalogue's STAC, read from disk."""
    stac = open_catalog(catalog_dir / "stac")
    return {item.id: item.collection_id for item in stac.get_items(recursive=True)}


def test_a_reflown_epoch_replaces_its_rows_and_stac_items(tmp_path: Path) -> None:
    frames, catalog_dir = tmp_path / "epoch1" / "frames", tmp_path / "catalog"
    frames.mkdir(parents=True)
    for index in range(3):
        _photo(frames, f"DJI_{index:04d}.JPG", 565100.0 + 40 * index, seed=index)
    first = catalog_images(ingest_folder(frames), catalog_dir, CRS, collection="epoch1")
    for old in frames.iterdir():  # `survey --force`: frames emptied, the mission flown again
        old.unlink()
    for index in range(2):
        _photo(frames, f"DJI_{index:04d}.JPG", 565100.0 + 40 * index, seed=10 + index)
    again = catalog_images(ingest_folder(frames), catalog_dir, CRS, collection="epoch1")

    assert len(again.added) == 2 and again.already_catalogued == ()
    assert set(again.replaced) == set(first.added)
    images = gpd.read_file(catalog_dir / CATALOG_GPKG, layer=IMAGES_LAYER)
    centres = gpd.read_file(catalog_dir / CATALOG_GPKG, layer=CENTRES_LAYER)
    assert list(images["sha256"]) == list(again.added) == list(centres["sha256"])
    assert _stac_items(catalog_dir) == dict.fromkeys(images["stac_item"], "epoch1")
    assert len(list((catalog_dir / "stac" / "epoch1").rglob("*.json"))) == 1 + 2
    assert not list(catalog_dir.rglob(".*.tmp*"))


def test_other_folders_and_collections_keep_their_rows(tmp_path: Path) -> None:
    battery1, battery2, catalog_dir = tmp_path / "b1", tmp_path / "b2", tmp_path / "catalog"
    for folder, seed in ((battery1, 1), (battery2, 2)):
        folder.mkdir()
        _photo(folder, "DJI_0000.JPG", 565100.0 + 40 * seed, seed)
    catalog_images(ingest_folder(battery1), catalog_dir, CRS, collection="epoch1")
    _photo(battery1, "DJI_0001.JPG", 565300.0, 3)  # copied in late, under its own collection
    catalog_images(ingest_folder(battery1), catalog_dir, CRS, collection="late")
    update = catalog_images(ingest_folder(battery2), catalog_dir, CRS, collection="epoch1")

    assert update.replaced == ()
    images = gpd.read_file(catalog_dir / CATALOG_GPKG, layer=IMAGES_LAYER)
    folders = [Path(path).parent.name for path in images["path"]]
    assert list(zip(folders, images["file"], images["collection"], strict=True)) == [
        ("b1", "DJI_0000.JPG", "epoch1"),
        ("b1", "DJI_0001.JPG", "late"),
        ("b2", "DJI_0000.JPG", "epoch1"),
    ]
    assert sorted(_stac_items(catalog_dir)) == sorted(images["stac_item"])


def test_a_rewritten_band_file_replaces_the_item_of_its_whole_capture(
    shared_data: Path, tmp_path: Path
) -> None:
    flight, catalog_dir, crs = tmp_path / "rededge", tmp_path / "catalog", "EPSG:32611"
    shutil.copytree(shared_data / "drone_photos" / "micasense_rededge", flight)
    catalog_images(ingest_folder(flight, ground_elevation_m=0.0), catalog_dir, crs)
    band = flight / "IMG_0001_3.tif"
    band.write_bytes(band.read_bytes()[:-2] + b"\x00\x01")  # its last pixel re-written
    now = ingest_folder(flight, ground_elevation_m=0.0)
    update = catalog_images(now, catalog_dir, crs)

    assert len(update.replaced) == 1 and len(update.added) == 5  # the capture's five files
    images = gpd.read_file(catalog_dir / CATALOG_GPKG, layer=IMAGES_LAYER)
    assert sorted(images["sha256"]) == sorted(record.sha256 for record in now.images)
    assert set(images["stac_item"]) == set(images_frame(now, crs)["stac_item"])
    items = list(open_catalog(catalog_dir / "stac").get_items(recursive=True))
    assert sorted(item.id for item in items) == sorted(set(images["stac_item"]))
    assert [len(item.assets) for item in items] == [5, 5]
