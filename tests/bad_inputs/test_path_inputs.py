"""Path traversal: names that come from users' files or options (epoch and collection names,
commune names, parcel and project ids) end up in output paths; nothing may be written outside
the workspace or the output folder, and nothing is dropped for a strange name."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from corpus_photos import photo
from shapely.geometry import box

import cli
import flows
from gis.projects import archive_path
from gis.worklists import work_list, write_work_lists

CRS = "EPSG:32630"
LEFT, TOP = 600_000.0, 3_860_100.0
ESCAPES = ("../../escape", "/tmp/escape", "..", "a/../../b", "..\\..\\escape")


def _all_files(root: Path) -> set[Path]:
    return {p.resolve() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "argv",
    [
        ["process", "{photos}", "--parcels", "{photos}", "--permits", "{photos}",
         "--date", "2026-07-10", "--epoch", "../../escape"],
        ["ingest", "{photos}", "--collection", "../../escape"],
        ["publish", "--epoch", "../../escape"],
        ["feedback", "export", "../../escape"],
    ],
    ids=["process --epoch", "ingest --collection", "publish --epoch", "feedback export"],
)  # fmt: skip
def test_a_name_that_climbs_out_of_the_workspace_is_refused(
    tmp_path: Path, capsys, argv: list[str]
) -> None:
    jail = tmp_path / "jail"
    photo(jail / "photos" / "DJI_0001.JPG")
    before = _all_files(tmp_path)
    args = [a.format(photos=jail / "photos") for a in argv]
    assert cli.main([*args, "--workspace", str(jail / "ws")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "../../escape" in err and err.count("\n") == 1, err
    assert _all_files(tmp_path) == before


def test_commune_names_cannot_lead_work_lists_out_of_their_folder(tmp_path: Path) -> None:
    flagged = gpd.GeoDataFrame(
        {
            "flag_id": [f"2026-07-10:no_permit:P-{i}" for i in range(len(ESCAPES))],
            "commune": list(ESCAPES),
            "reason": "no_permit",
            "severity": 0.5,
            "explanation": "No permit.",
            "parcel_id": [f"P-{i}" for i in range(len(ESCAPES))],
            "permit_id": None,
            "record_url": "",
            "captured_on": "2026-07-10",
        },
        geometry=[box(LEFT + 50 * i, TOP - 40, LEFT + 40 + 50 * i, TOP) for i in range(5)],
        crs=CRS,
    )
    folder = tmp_path / "out" / "work_lists"
    lists = write_work_lists(work_list(flagged), None, folder)
    assert set(lists) == set(ESCAPES), "every commune keeps its list"
    written = _all_files(tmp_path)
    assert len(written) == 3 * len(ESCAPES)
    assert all(path.parent == folder.resolve() for path in written), written


@pytest.mark.parametrize("project_id", ESCAPES)
def test_a_project_id_cannot_lead_its_archived_chip_out_of_the_archive(
    tmp_path: Path, project_id: str
) -> None:
    archive = tmp_path / "archive"
    chip = archive_path(archive, project_id, date(2026, 7, 10))
    assert chip.resolve().parent.parent == archive.resolve()


def _mosaic(path: Path, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 255, (3, 200, 200), np.uint8)
    profile = {"driver": "GTiff", "width": 200, "height": 200, "count": 3, "dtype": "uint8"}
    transform = Affine(0.5, 0, LEFT, 0, -0.5, TOP)
    with rasterio.open(path, "w", crs=CRS, transform=transform, **profile) as dst:
        dst.write(pixels)
    return path


def test_parcel_ids_cannot_lead_evidence_chips_out_of_the_evidence_folder(
    tmp_path: Path,
) -> None:
    parcels = [box(LEFT + 5 + 18 * i, TOP - 40, LEFT + 20 + 18 * i, TOP - 5) for i in range(5)]
    flagged = gpd.GeoDataFrame(
        {"parcel_id": list(ESCAPES), "reason": "no_permit", "building_ids": "0"},
        geometry=parcels,
        crs=CRS,
    )
    structures = gpd.GeoDataFrame({"building_id": ["0"]}, geometry=[parcels[0]], crs=CRS)
    folder = tmp_path / "ws" / "epoch2" / "evidence"
    before, after = _mosaic(tmp_path / "before.tif", 1), _mosaic(tmp_path / "after.tif", 2)
    chips = flows.with_evidence(
        flagged, structures, (before, "2026-01-10"), (after, date(2026, 7, 10)), folder
    )
    written = _all_files(tmp_path) - {before.resolve(), after.resolve()}
    assert len(set(chips["evidence"])) == len(ESCAPES) == len(written), "one chip per flag"
    assert {Path(p).resolve() for p in chips["evidence"]} == written
    assert all(path.parent == folder.resolve() for path in written), written
