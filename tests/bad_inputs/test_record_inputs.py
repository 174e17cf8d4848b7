"""Bad permit and project sources: a broken source is an InputError naming it and what to
do; a bad record is reported with its source, line and field while the good ones are kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import box

from core.errors import InputError
from gis.records import RecordSource, load_permits, load_projects

GOOD = {
    "permit_id": "P0",
    "parcel_id": "BRK-0",
    "status": "approved",
    "issued": "2026-01-01",
    "expires": "2027-01-01",
    "permitted_footprint_m2": 120,
}
PROJECT = {
    "project_id": "PR-0",
    "name": "مشروع",
    "start": "2026-01-01",
    "planned_end": "2027-06-30",
}


def _json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def not_json(tmp: Path) -> tuple[RecordSource, str]:
    (tmp / "permits.json").write_text("numero;parcelle\nP1;BRK-1\n")
    return RecordSource(tmp / "permits.json"), r"permits\.json: not JSON \(line 1"


def object_without_records_key(tmp: Path) -> tuple[RecordSource, str]:
    path = _json(tmp / "permits.json", {"count": 1, "items": [GOOD]})
    return RecordSource(path), "keys count, items; set records_key"


def records_key_not_a_list(tmp: Path) -> tuple[RecordSource, str]:
    path = _json(tmp / "permits.json", {"items": {"P0": GOOD}})
    return RecordSource(path, records_key="items"), "'items' is not a list of records"


def misspelt_mapping(tmp: Path) -> tuple[RecordSource, str]:
    path = _json(tmp / "permits.json", [GOOD])
    return RecordSource(path, fields={"permit_id": "numro"}), r"no record has: numro \(our"


def unknown_kind(tmp: Path) -> tuple[RecordSource, str]:
    return RecordSource(_json(tmp / "p.json", [GOOD]), kind="xlsx"), "unknown records kind 'xlsx'"


def missing_json_file(tmp: Path) -> tuple[RecordSource, str]:
    return RecordSource(tmp / "absent.json"), r"absent\.json: file not found"


def wrong_layer(tmp: Path) -> tuple[RecordSource, str]:
    path = tmp / "urbanisme.gpkg"
    gpd.GeoDataFrame([GOOD], geometry=[box(0, 0, 1, 1)], crs="EPSG:32630").to_file(
        path, layer="permis"
    )
    return RecordSource(path, layer="permits"), "no layer or table 'permits'; it has permis"


BROKEN: dict[str, Callable[[Path], tuple[RecordSource, str]]] = {
    f.__name__: f
    for f in (
        not_json,
        object_without_records_key,
        records_key_not_a_list,
        misspelt_mapping,
        unknown_kind,
        missing_json_file,
        wrong_layer,
    )
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_permit_source_is_an_input_error_naming_it(tmp_path: Path, case: str) -> None:
    source, message = BROKEN[case](tmp_path)
    with pytest.raises(InputError, match=message) as error:
        load_permits(source)
    assert Path(error.value.source).name == Path(str(source.location)).name


PERMIT_RECORDS: dict[str, tuple[object, str]] = {
    "a number, not a record": (42, "row"),
    "a date in another format": ({**GOOD, "permit_id": "P1", "issued": "01/01/2026"}, "issued"),
    "an area that is a list": ({**GOOD, "permit_id": "P1", "permitted_footprint_m2": [1]},
                               "permitted_footprint_m2"),
    "a null id": ({**GOOD, "permit_id": None}, "permit_id"),
    "a duplicate id": ({**GOOD, "parcel_id": "BRK-1"}, "permit_id"),
    "an unknown parcel": ({**GOOD, "permit_id": "P1", "parcel_id": "BRK-9"}, "parcel_id"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(PERMIT_RECORDS))
def test_a_bad_json_permit_is_reported_and_the_good_one_kept(tmp_path: Path, case: str) -> None:
    record, field = PERMIT_RECORDS[case]
    path = _json(tmp_path / "permits.json", [GOOD, record])
    result = load_permits(RecordSource(path), parcel_ids=["BRK-0", "BRK-1"])
    assert result.valid["permit_id"].tolist() == ["P0"]
    assert [(p.source, p.line, p.field) for p in result.problems] == [(str(path), 2, field)]


PROJECT_FEATURES: dict[str, tuple[object, str]] = {
    "no geometry": (None, "geometry"),
    "a geometry that is not GeoJSON": ({"type": "Polygon", "coordinates": "x"}, "geometry"),
    "an empty polygon": ({"type": "Polygon", "coordinates": []}, "geometry"),
}


@pytest.mark.parametrize("case", sorted(PROJECT_FEATURES))
def test_a_project_feature_without_usable_geometry_is_reported(tmp_path: Path, case: str) -> None:
    geometry, field = PROJECT_FEATURES[case]
    square = {"type": "Polygon", "coordinates": [[[0, 0], [0.001, 0], [0.001, 0.001], [0, 0]]]}
    features = [
        {"type": "Feature", "properties": PROJECT, "geometry": square},
        {"type": "Feature", "properties": {**PROJECT, "project_id": "PR-1"}, "geometry": geometry},
    ]
    path = _json(tmp_path / "projects.geojson.json", {"type": "FeatureCollection",
                                                      "features": features})  # fmt: skip
    result = load_projects(RecordSource(path), crs="EPSG:32630")
    assert result.valid["project_id"].tolist() == ["PR-0"]
    assert [(p.line, p.field) for p in result.problems] == [(2, field)]
