"""Inspector work lists: ranked per commune, a formula-safe CSV, an offline escaped HTML page."""

from __future__ import annotations

import csv
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import geopandas as gpd
import numpy as np
import pyogrio
from PIL import Image
from shapely.geometry import box

from core.io import write_geopackage
from gis.feedback import read_feedback
from gis.worklists import (
    UNASSIGNED,
    WORK_LIST_LAYER,
    work_list,
    work_list_csv,
    write_work_lists,
)

CRS = "EPSG:32630"
DAY = date(2026, 7, 10)


def _parcels() -> gpd.GeoDataFrame:
    """Four 40 m lots in a row: two in Berkane, two in Saïdia (one named in Arabic)."""
    return gpd.GeoDataFrame(
        {"parcel_id": ["B-1", "B-2", "S-1", "S-2"],
         "commune": ["Berkane", "Berkane", "السعيدية", "السعيدية"]},
        geometry=[box(600000 + 50 * i, 3860000, 600040 + 50 * i, 3860040) for i in range(4)],
        crs=CRS,
    )  # fmt: skip


def _chip(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 16, 3), 128, np.uint8)).save(path)
    return str(path)


def _flags(evidence: Path, **columns: list) -> gpd.GeoDataFrame:
    """Flags on B-1, B-2, S-1 and one off cadastre next to S-2, with evidence chips."""
    parcels = _parcels().set_index("parcel_id")
    rows = {
        "parcel_id": ["B-1", "B-2", "S-1", None],
        "commune": ["Berkane", "Berkane", "السعيدية", ""],
        "reason": ["permit_expired", "no_permit", "over_footprint", "off_cadastre"],
        "severity": [0.5, 0.9, 0.4, 0.8],
        "explanation": ["Expired.", "No permit.", "Too big.", "Outside."],
        "permit_id": ["P-1", None, "P-3", None],
        "status": ["new", "confirmed", "new", "new"],
        "inspector_note": ["", "vu sur place", "", ""],
        "record_url": [f"https://rokhas.example/permits/P-{i}" for i in range(4)],
        "captured_on": [DAY] * 4,
    } | columns
    pairs = zip(rows["reason"], rows["parcel_id"], strict=True)
    rows["flag_id"] = [f"{DAY}:{reason}:{pid or ''}" for reason, pid in pairs]
    rows["evidence"] = [_chip(evidence / f"chip{i}.png") for i in range(4)]
    geometry = [parcels.geometry[p] if p else box(600160, 3860050, 600170, 3860060)
                for p in rows["parcel_id"]]  # fmt: skip
    return gpd.GeoDataFrame(rows, geometry=geometry, crs=CRS)


class _Page(HTMLParser):
    """The links and image sources of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self.hrefs.append(values["href"] or "")
        if tag == "img":
            self.srcs.append(values["src"] or "")


def test_flags_are_ranked_by_severity_within_each_commune(tmp_path: Path) -> None:
    flagged = _flags(tmp_path / "evidence")
    flagged.loc[2, "status"] = "false_positive"  # closed: not on the list

    work = work_list(flagged, _parcels())

    parcel_ids = work["parcel_id"].fillna("")
    assert list(zip(work["commune"], work["rank"], parcel_ids, strict=True)) == [
        ("Berkane", 1, "B-2"),
        ("Berkane", 2, "B-1"),
        ("السعيدية", 1, ""),  # off cadastre, nearest parcel S-2 is in Saïdia
    ]


def test_a_flag_with_no_commune_and_no_parcels_is_unassigned(tmp_path: Path) -> None:
    work = work_list(_flags(tmp_path / "evidence"))
    assert work.loc[work["parcel_id"].isna(), "commune"].tolist() == [UNASSIGNED]


def test_the_work_list_layer_is_a_geopackage_layer(tmp_path: Path) -> None:
    work = work_list(_flags(tmp_path / "evidence"), _parcels())
    path = write_geopackage(tmp_path / "raqib.gpkg", {WORK_LIST_LAYER: work})
    back = pyogrio.read_dataframe(path, layer=WORK_LIST_LAYER)
    assert back[["commune", "rank", "flag_id"]].values.tolist() == (
        work[["commune", "rank", "flag_id"]].values.tolist()
    )


def test_the_csv_keeps_a_formula_as_text_and_reads_back_as_feedback(tmp_path: Path) -> None:
    formula = '=HYPERLINK("http://evil.example","click")'
    flagged = _flags(tmp_path / "evidence", permit_id=[formula, None, "@SUM(A1)", None])
    path = tmp_path / "list.csv"
    path.write_bytes(work_list_csv(work_list(flagged, _parcels())))

    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["parcel_id"]: r["permit_id"] for r in rows}["B-1"] == "'" + formula
    assert {r["parcel_id"]: r["permit_id"] for r in rows}["S-1"] == "'@SUM(A1)"
    assert {r["commune"] for r in rows} == {"Berkane", "السعيدية"}
    assert rows[0]["note"] == "vu sur place"
    decisions = read_feedback(path).decisions
    assert {d.flag_id: d.status for d in decisions} == dict(
        zip(flagged["flag_id"], flagged["status"], strict=True)
    )


def test_each_commune_gets_an_offline_escaped_page_with_its_map_and_chips(
    tmp_path: Path,
) -> None:
    explanation = '<script>alert("x")</script> & <b>"quoted"</b>'
    flagged = _flags(
        tmp_path / "epoch" / "evidence",
        explanation=[explanation, "No permit.", "Too big.", "Outside."],
        record_url=[
            "https://rokhas.example/permits/P-1?a=1&b=2",
            "https://cadastre.example/parcels/B-2",
            "javascript:alert(1)",
            "",
        ],
    )
    folder = tmp_path / "epoch" / "work_lists"

    lists = write_work_lists(work_list(flagged, _parcels()), _parcels(), folder)

    assert sorted(lists) == ["Berkane", "السعيدية"]
    berkane = lists["Berkane"]
    assert berkane.flags == 2
    text = berkane.html.read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text
    assert "&lt;b&gt;" in text
    page = _Page()
    page.feed(text)
    assert {h for h in page.hrefs if "://" in h} == {
        "https://rokhas.example/permits/P-1?a=1&b=2",
        "https://cadastre.example/parcels/B-2",
    }
    urls = set(re.findall(r"https?://[^\s\"'<>]+", text.replace("&amp;", "&")))
    assert urls == {h for h in page.hrefs if "://" in h}  # no CDN, no other URL
    assert len(page.srcs) == 3  # the map and two chips
    for src in page.srcs:
        assert "://" not in src and (folder / unquote(src)).is_file()
    with Image.open(berkane.map_png) as image:
        assert image.format == "PNG" and image.width >= 400

    saidia = lists["السعيدية"].html.read_text(encoding="utf-8")
    assert "javascript:" not in _hrefs(saidia)
    assert lists["السعيدية"].csv.name == "السعيدية.csv"


def _hrefs(text: str) -> str:
    page = _Page()
    page.feed(text)
    return " ".join(page.hrefs)


def test_a_rerun_replaces_the_lists_of_communes_no_longer_flagged(tmp_path: Path) -> None:
    flagged = _flags(tmp_path / "evidence")
    folder = tmp_path / "work_lists"
    write_work_lists(work_list(flagged, _parcels()), _parcels(), folder)
    assert (folder / "Berkane.html").exists()

    still = flagged[flagged["commune"] != "Berkane"]
    write_work_lists(work_list(still, _parcels()), _parcels(), folder)

    assert sorted(p.name for p in folder.iterdir()) == [
        "السعيدية.csv", "السعيدية.html", "السعيدية.png",
    ]  # fmt: skip
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".work_lists")]
