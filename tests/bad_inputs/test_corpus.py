"""The bad-input corpus: every case names the file (and field) and loses nothing else.

Each case builds its bad file in a temporary folder (seeded, nothing committed), then checks
the error or the skip reason. Photos go through ingest beside good photos, which must survive.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import piexif
import pytest
import rasterio
from corpus_photos import photo
from rasterio.errors import NotGeoreferencedWarning
from shapely.geometry import Polygon, box

import cli
from core.errors import InputError
from core.settings import load_settings
from flights.aoi import load_aoi
from gis.parcels import read_parcels
from gis.records import read_permits
from models.training import load_model
from pipeline.ingest import ingest_folder
from sim.world import load_world


def truncated(folder: Path) -> Path:
    data = photo(folder / "src.tmp").read_bytes()
    (folder / "src.tmp").unlink()
    (folder / "truncated.JPG").write_bytes(data[: len(data) // 3])
    return folder / "truncated.JPG"


def not_an_image(folder: Path) -> Path:
    (folder / "notes.jpg").write_text("flight notes, not a photo")
    return folder / "notes.jpg"


def empty_file(folder: Path) -> Path:
    (folder / "empty.jpg").write_bytes(b"")
    return folder / "empty.jpg"


def no_gps(folder: Path) -> Path:
    path = photo(folder / "nogps.JPG", seed=3)
    exif = piexif.load(str(path))
    exif["GPS"] = {}
    piexif.insert(piexif.dump(exif), str(path))
    return path


def gps_zero(folder: Path) -> Path:
    return photo(folder / "null_island.JPG", lon=0.0, lat=0.0, seed=4)


def truncated_tiff(folder: Path) -> Path:
    """A tiled, compressed 3-band TIFF (as band files and ODM tiles are) cut in half."""
    pixels = np.random.default_rng(6).integers(0, 255, (3, 256, 256), np.uint8)
    profile = {"driver": "GTiff", "width": 256, "height": 256, "count": 3, "dtype": "uint8",
               "tiled": True, "compress": "deflate"}  # fmt: skip
    with warnings.catch_warnings():  # band files carry no georeferencing: the point
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(folder / "whole.tmp", "w", **profile) as dst:
            dst.write(pixels)
    data = (folder / "whole.tmp").read_bytes()
    (folder / "whole.tmp").unlink()
    (folder / "IMG_0001_1.tif").write_bytes(data[: len(data) // 2])
    return folder / "IMG_0001_1.tif"


def duplicate(folder: Path) -> Path:
    original = photo(folder / "a_original.JPG", seed=5)
    copy = folder / "b_copy.JPG"
    copy.write_bytes(original.read_bytes())
    return copy


PHOTO_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "truncated JPEG": (truncated, "truncated"),
    "truncated TIFF": (truncated_tiff, "truncated"),
    "text file named .jpg": (not_an_image, "image"),
    "empty file": (empty_file, "image"),
    "EXIF without GPS": (no_gps, "GPS"),
    "GPS at 0,0": (gps_zero, "0"),
    "duplicate photo": (duplicate, "duplicate"),
}


@pytest.mark.parametrize("case", sorted(PHOTO_CASES))
def test_a_bad_photo_is_skipped_with_its_reason_and_the_rest_ingested(
    tmp_path: Path, case: str
) -> None:
    make, word = PHOTO_CASES[case]
    good = [photo(tmp_path / f"good_{i}.JPG", seed=10 + i) for i in range(2)]
    bad = make(tmp_path)
    result = ingest_folder(tmp_path)
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert list(reasons) == [bad.name], reasons
    assert word.lower() in reasons[bad.name].lower()
    assert {p.name for p in good} <= {r.path.name for r in result.images}


def test_a_photo_given_where_the_flight_folder_is_expected_is_named_a_file(
    tmp_path: Path, capsys
) -> None:
    one = photo(tmp_path / "DJI_0001.JPG")
    assert cli.main(["ingest", str(one), "--workspace", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {one}: is a file: give the folder that holds the flight's photos\n"
    assert not (tmp_path / "ws").exists()


AOI_CASES: dict[str, tuple[str, str]] = {
    "point": ('{"type": "Point", "coordinates": [-2.3, 34.93]}', "not a polygon"),
    "self-intersecting bow tie": (
        '{"type": "Polygon", "coordinates": [[[-2.30, 34.92], [-2.29, 34.93], '
        "[-2.29, 34.92], [-2.30, 34.93], [-2.30, 34.92]]]}",
        "self-intersection",
    ),
    "empty collection": ('{"type": "FeatureCollection", "features": []}', "aoi"),
    "empty polygon": (
        '{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": []}}',
        "no geometry",
    ),
    "not JSON": ("<kml>oops", "cannot read aoi"),
}


@pytest.mark.parametrize("case", sorted(AOI_CASES))
def test_a_bad_aoi_is_refused_clearly(tmp_path: Path, case: str) -> None:
    content, word = AOI_CASES[case]
    path = tmp_path / "aoi.geojson"
    path.write_text(content)
    with pytest.raises(InputError) as caught:
        load_aoi(path)
    assert caught.value.source == str(path)
    assert word in caught.value.problem.lower()


PERMIT_HEADER = "permit_id,parcel_id,status,issued,expires,permitted_footprint_m2\n"
PERMIT_CASES: dict[str, tuple[str, str]] = {
    "date not ISO": ("P1,BRK-1,active,10/07/2026,2027-01-01,100\n", "issued"),
    "expires before issued": ("P1,BRK-1,active,2026-01-01,2025-01-01,100\n", "expires"),
    "footprint not a number": (
        "P1,BRK-1,active,2026-01-01,2027-01-01,cent\n",
        "permitted_footprint_m2",
    ),
    "negative footprint": ("P1,BRK-1,active,2026-01-01,2027-01-01,-5\n", "permitted_footprint_m2"),
    "missing parcel": ("P1,,active,2026-01-01,2027-01-01,100\n", "parcel_id"),
    "duplicate permit id": (
        "P1,BRK-1,active,2026-01-01,2027-01-01,100\nP1,BRK-2,active,2026-01-01,2027-01-01,90\n",
        "permit_id",
    ),
    "formula in a field": ("=HYPERLINK(1),BRK-1,active,2026-01-01,2027-01-01,100\n", ""),
}


@pytest.mark.parametrize("case", sorted(PERMIT_CASES))
def test_a_bad_permit_row_is_reported_with_line_and_field(tmp_path: Path, case: str) -> None:
    rows, field = PERMIT_CASES[case]
    path = tmp_path / "permits.csv"
    path.write_text(PERMIT_HEADER + "P0,BRK-0,active,2026-01-01,2027-01-01,120\n" + rows)
    result = read_permits(path)
    assert "P0" in set(result.valid["permit_id"]), "the good row is kept"
    if field:
        assert any(p.field == field and p.line >= 3 for p in result.problems)
        assert all(str(path) in str(p) for p in result.problems)
    else:  # a formula is kept as text: publishing must neutralise it, not drop the record
        assert len(result.valid) == 2


def test_permits_that_are_not_utf8_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "permits.csv"
    path.write_bytes((PERMIT_HEADER + "P1,BRK-1,نشط,2026-01-01,2027-01-01,100\n").encode("cp1256"))
    with pytest.raises(InputError, match=r"permits\.csv.*line 2"):
        read_permits(path)


def test_permits_without_a_column_name_it(tmp_path: Path) -> None:
    path = tmp_path / "permits.csv"
    path.write_text("permit_id,parcel_id,status,issued,expires\nP1,BRK-1,active,2026-01-01,x\n")
    with pytest.raises(InputError, match="permitted_footprint_m2"):
        read_permits(path)


def _parcels(path: Path, ids: list[str], *, crs: str | None = "EPSG:32630", **columns) -> Path:
    frame = gpd.GeoDataFrame(
        {"parcel_id": ids, **columns},
        geometry=[box(i * 10, 0, i * 10 + 9, 9) for i in range(len(ids))],
        crs=crs,
    )
    frame.to_file(path, layer="parcels")
    return path


@pytest.mark.parametrize(
    ("case", "kwargs", "word"),
    [
        ("duplicate ids", {"ids": ["A", "A"], "commune": ["x", "x"]}, "duplicate parcel_id: A"),
        ("no CRS", {"ids": ["A"], "commune": ["x"], "crs": None}, "CRS"),
        ("no commune column", {"ids": ["A"]}, "commune"),
    ],
)
def test_bad_parcels_are_refused_naming_the_file(
    tmp_path: Path, case: str, kwargs: dict, word: str
) -> None:
    path = _parcels(tmp_path / "parcels.gpkg", **kwargs)
    with pytest.raises(InputError, match=word) as caught:
        read_parcels(path, "EPSG:32630")
    assert str(path) in str(caught.value)


def test_an_invalid_parcel_is_repaired_and_kept(tmp_path: Path) -> None:
    path = _parcels(tmp_path / "parcels.gpkg", ["A", "B"], commune=["x", "x"])
    frame = gpd.read_file(path)
    frame.loc[1, "geometry"] = Polygon([(10, 0), (19, 9), (19, 0), (10, 9)])  # a bow tie
    frame.to_file(path, layer="parcels")
    parcels = read_parcels(path, "EPSG:32630")
    assert parcels["parcel_id"].tolist() == ["A", "B"] and parcels.geometry.is_valid.all()
    assert parcels.geometry.area.round(1).tolist() == [81.0, 40.5]


def test_a_parcel_without_a_polygon_is_named(tmp_path: Path) -> None:
    path = _parcels(tmp_path / "parcels.gpkg", ["A", "B"], commune=["x", "x"])
    frame = gpd.read_file(path)
    frame.loc[1, "geometry"] = Polygon()
    frame.to_file(path, layer="parcels")
    with pytest.raises(InputError, match="parcels without a usable polygon: B$") as caught:
        read_parcels(path, "EPSG:32630")
    assert caught.value.source == str(path)


@pytest.mark.parametrize(
    ("toml", "word"),
    [
        ('crs = "EPSG:4326"\n', "projected"),
        ("min_building_area = 5\n", "min_building_area"),
        ("sim_speedup = 'fast'\n", "RAQIB_SIM_SPEEDUP"),
        ('timezone = "Morocco/Berkane"\n', "RAQIB_TIMEZONE.*unknown time zone"),
    ],
)
def test_bad_settings_name_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, word: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raqib.toml").write_text(toml)
    with pytest.raises(InputError, match=word):
        load_settings()


@pytest.mark.parametrize("content", [b"", b"not a pickle", json.dumps({"a": 1}).encode()])
def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        load_model(path)
    assert str(path) in str(caught.value)


def test_a_folder_that_is_not_a_world_says_so(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="world.json"):
        load_world(tmp_path)
