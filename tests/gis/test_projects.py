"""Public-project tracking: progress per epoch, the history table, the photo archive and the
stalled alerts, on a seeded synthetic mosaic with hand-placed structures."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio import features as rio_features

from core.errors import InputError
from gis.evidence import read_png
from gis.projects import (
    FINISHED,
    HISTORY_COLUMNS,
    NOT_ASSESSED,
    NOT_STARTED,
    ON_TRACK,
    STALLED,
    add_epoch,
    archive_path,
    assess_projects,
    empty_history,
    project_progress,
    read_history,
    write_history,
)
from gis.records import read_projects

UTM = "EPSG:32630"
X0, Y0 = 600_000.0, 3_860_000.0
PIXEL_M = 1.0
SIDE_M = 60.0  # projects are 60 m squares: 3600 m²
EPOCHS = (date(2024, 1, 15), date(2024, 5, 15), date(2024, 9, 15))
URL = "https://projects.example/projects/{project_id}"


def _square(col: int, row: int) -> shapely.Polygon:
    """The project square in the ``col``, ``row`` cell of a 100 m layout."""
    left, top = X0 + 20 + 100 * col, Y0 - 20 - 100 * row
    return shapely.box(left, top - SIDE_M, left + SIDE_M, top)


def _projects(crs: str = UTM) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(
        {
            "project_id": ["P-GROW", "P-STALL", "P-LATE", "P-OFF"],
            "name": ["School", "Clinic", "Market", "Bridge"],
            "start": [date(2023, 10, 1), date(2023, 6, 1), date(2023, 1, 1), date(2023, 1, 1)],
            "planned_end": [
                date(2025, 6, 30),
                date(2025, 12, 31),
                date(2024, 12, 31),
                date(2025, 1, 1),
            ],
        },  # fmt: skip
        geometry=[_square(0, 0), _square(1, 0), _square(0, 1), _square(30, 30)],
        crs=UTM,
    )
    return frame.to_crs(crs)


# Built-up share of each project's square per epoch (target 0.5: progress is twice this).
BUILT = {"P-GROW": (0.10, 0.25, 0.40), "P-STALL": (0.20, 0.21, 0.21), "P-LATE": (0.02, 0.06, 0.10)}


def _structures(epoch: int) -> gpd.GeoDataFrame:
    """Rectangles 50 m wide covering the ``BUILT`` share of each project, plus a house off
    every project and a structure straddling P-GROW's edge by half."""
    projects = _projects().set_index("project_id")
    shapes = []
    for pid, shares in BUILT.items():
        left, bottom, _, top = projects.geometry[pid].bounds
        height_m = shares[epoch] * SIDE_M * SIDE_M / 50.0
        shapes.append(shapely.box(left + 5, top - 5 - height_m, left + 55, top - 5))
    shapes.append(shapely.box(X0 + 250, Y0 - 250, X0 + 260, Y0 - 240))
    return gpd.GeoDataFrame({"score": [0.9] * len(shapes)}, geometry=shapes, crs=UTM)


def _mosaic(path: Path, *, size_px: int = 300, covered: shapely.Polygon | None = None) -> Path:
    """A seeded textured RGB GeoTIFF of 300 x 300 m with overviews; pixels outside
    ``covered`` (default: all) are masked as no data."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(60, 200, size=(3, size_px, size_px), dtype=np.uint8)
    transform = Affine(PIXEL_M, 0, X0, 0, -PIXEL_M, Y0)
    mask = np.full((size_px, size_px), 255, dtype=np.uint8)
    if covered is not None:
        inside = rio_features.geometry_mask(
            [covered], out_shape=mask.shape, transform=transform, invert=True
        )
        mask[~inside] = 0
    profile = dict(
        driver="GTiff", width=size_px, height=size_px, count=3, dtype="uint8", crs=UTM,
        transform=transform, tiled=True, blockxsize=128, blockysize=128, photometric="RGB",
    )  # fmt: skip
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(rgb)
            dst.write_mask(mask)
            dst.build_overviews([2, 4], rasterio.enums.Resampling.average)
    return path


def _measure(
    tmp_path: Path,
    epoch: int,
    *,
    projects: gpd.GeoDataFrame | None = None,
    mosaic: Path | None = None,
    structures: gpd.GeoDataFrame | None = None,
    **kwargs,
) -> pd.DataFrame:
    """The progress rows (indexed by project id) of ``epoch``, archived under ``tmp_path``."""
    return project_progress(
        _projects() if projects is None else projects,
        EPOCHS[epoch],
        mosaic=_mosaic(tmp_path / f"mosaic{epoch}.tif") if mosaic is None else mosaic,
        structures=_structures(epoch) if structures is None else structures,
        archive=tmp_path / "archive",
        **kwargs,
    ).set_index("project_id")


def _three_epochs(tmp_path: Path) -> pd.DataFrame:
    """The history after three surveys, written to and read back from the workspace."""
    gpkg = tmp_path / "workspace" / "projects.gpkg"
    for epoch in range(3):
        history = add_epoch(read_history(gpkg), _measure(tmp_path, epoch).reset_index())
        write_history(history, gpkg)
    return read_history(gpkg)


def test_progress_is_the_built_share_over_the_target(tmp_path: Path) -> None:
    rows = _measure(tmp_path, 1)
    assert rows.loc["P-GROW", "built_fraction"] == pytest.approx(0.25)
    assert rows.loc["P-GROW", "built_m2"] == pytest.approx(900.0)
    assert rows.loc["P-GROW", "progress"] == pytest.approx(0.5)
    assert rows.loc["P-LATE", "progress"] == pytest.approx(0.12)
    assert rows.loc["P-GROW", "covered_share"] == pytest.approx(1.0)
    assert np.isnan(rows.loc["P-GROW", "earthwork_fraction"])  # none given


def test_overlapping_and_straddling_structures_count_once_and_only_inside(
    tmp_path: Path,
) -> None:
    square = _projects().geometry[0]
    left, bottom, right, top = square.bounds
    structures = gpd.GeoDataFrame(
        geometry=[
            shapely.box(left + 10, top - 30, left + 40, top - 10),  # 600 m²
            shapely.box(left + 20, top - 30, left + 40, top - 10),  # inside the first
            shapely.box(right - 10, top - 30, right + 10, top - 10),  # half inside: 200 m²
        ],
        crs=UTM,
    )
    rows = _measure(tmp_path, 0, structures=structures)
    assert rows.loc["P-GROW", "built_m2"] == pytest.approx(800.0)


def test_earthworks_count_where_nothing_is_built(tmp_path: Path) -> None:
    square = _projects().geometry[0]
    left, bottom, _, top = square.bounds
    # Bare earth over the top half of the square: 1800 m², of which 360 m² under the
    # epoch-0 structure (50 m x 7.2 m, 5 m from the top).
    bare = shapely.box(left, top - 30, left + SIDE_M, top)
    polygons = gpd.GeoDataFrame(geometry=[bare], crs=UTM).to_crs("EPSG:4326")
    mask_path = tmp_path / "bare.tif"
    with rasterio.open(
        mask_path, "w", driver="GTiff", width=300, height=300, count=1, dtype="uint8",
        crs=UTM, transform=Affine(PIXEL_M, 0, X0, 0, -PIXEL_M, Y0),
    ) as dst:  # fmt: skip
        dst.write(rio_features.rasterize([bare], out_shape=(300, 300), transform=dst.transform), 1)

    by_polygons = _measure(tmp_path, 0, earthworks=polygons)
    by_mask = _measure(tmp_path, 0, earthworks=mask_path)

    expected = (1800 - 360) / 3600
    assert by_polygons.loc["P-GROW", "earthwork_fraction"] == pytest.approx(expected, abs=1e-6)
    assert by_mask.loc["P-GROW", "earthwork_fraction"] == pytest.approx(expected, abs=0.01)
    # progress = (built 0.10 + 0.25 x earthworks 0.40) / 0.5
    assert by_polygons.loc["P-GROW", "progress"] == pytest.approx((0.10 + 0.25 * expected) / 0.5)
    assert by_polygons.loc["P-STALL", "earthwork_fraction"] == 0.0


def test_each_measurement_is_archived_as_a_dated_chip(tmp_path: Path) -> None:
    rows = _measure(tmp_path, 2)
    chip = Path(rows.loc["P-GROW", "chip"])
    assert chip == archive_path(tmp_path / "archive", "P-GROW", EPOCHS[2])
    assert chip.parent.name == "P-GROW" and chip.name == "2024-09-15.png"
    image = read_png(chip)
    assert image.shape[0] > SIDE_M and image.shape[1] > SIDE_M
    assert rows.loc["P-OFF", "chip"] == ""
    assert archive_path(tmp_path, "R/12 est", EPOCHS[0]).parent.name == "R_12_est"


def test_history_across_three_epochs_flags_the_stalled_and_the_late(tmp_path: Path) -> None:
    history = _three_epochs(tmp_path)
    status = assess_projects(history, _projects(), url_template=URL).set_index("project_id")

    assert status.loc["P-GROW", "status"] == ON_TRACK
    assert status.loc["P-STALL", "status"] == STALLED
    assert status.loc["P-STALL", "reasons"] == "no_progress"
    assert status.loc["P-STALL", "explanation"] == (
        "Project P-STALL (Clinic) is stalled: no measurable progress for 244 days: 40% on "
        "2024-01-15, 42% on 2024-09-15 (+2 points; at least 5 points expected within 90 days)"
    )
    assert status.loc["P-STALL", "stalled_since"] == EPOCHS[0]
    assert status.loc["P-LATE", "status"] == STALLED
    assert status.loc["P-LATE", "reasons"] == "behind_schedule"
    assert (
        "85% of the time from 2023-01-01 to the planned end 2024-12-31"
        in (status.loc["P-LATE", "explanation"])
    )
    assert "progress is 20% (65 points behind; tolerance 25)" in status.loc["P-LATE", "explanation"]
    assert status.loc["P-OFF", "status"] == NOT_ASSESSED
    assert "does not cover the project" in status.loc["P-OFF", "explanation"]
    assert status.loc["P-STALL", "record_url"] == "https://projects.example/projects/P-STALL"
    assert status.crs == UTM and status.geometry.notna().all()


def test_a_stalled_project_carries_before_after_chips(tmp_path: Path) -> None:
    status = assess_projects(_three_epochs(tmp_path), _projects()).set_index("project_id")
    stalled = status.loc["P-STALL"]
    assert Path(stalled["chip_before"]).name == "2024-01-15.png"
    assert Path(stalled["chip_after"]).name == "2024-09-15.png"
    pair = read_png(stalled["chip_pair"])
    before, after = read_png(stalled["chip_before"]), read_png(stalled["chip_after"])
    assert pair.shape[1] > before.shape[1] + after.shape[1]
    assert Path(status.loc["P-LATE", "chip_before"]).name == "2024-01-15.png"  # first epoch
    assert pd.isna(status.loc["P-GROW", "chip_pair"])


def test_history_changes_are_since_the_previous_epoch(tmp_path: Path) -> None:
    history = _three_epochs(tmp_path)
    grow = history[history["project_id"] == "P-GROW"]
    assert list(grow["date"]) == list(EPOCHS)
    assert np.allclose(grow["progress"], [0.2, 0.5, 0.8])
    assert np.isnan(grow["change"].iloc[0])
    assert np.allclose(grow["change"].iloc[1:], [0.3, 0.3])


def test_rerunning_an_epoch_replaces_its_rows(tmp_path: Path) -> None:
    history = _three_epochs(tmp_path)
    again = add_epoch(history, _measure(tmp_path, 1).reset_index())
    assert len(again) == len(history) == 4 * 3
    assert not again.duplicated(["project_id", "date"]).any()
    fewer = _structures(1).iloc[1:]  # P-GROW's structure gone on a rerun
    redone = add_epoch(history, _measure(tmp_path, 1, structures=fewer).reset_index())
    grow = redone[redone["project_id"] == "P-GROW"].set_index("date")
    assert len(redone) == 12 and grow.loc[EPOCHS[1], "progress"] == 0.0
    assert grow.loc[EPOCHS[2], "change"] == pytest.approx(0.8)


def test_write_history_keeps_the_other_layers(tmp_path: Path) -> None:
    gpkg = tmp_path / "raqib.gpkg"
    pyogrio.write_dataframe(_projects(), gpkg, layer="projects", driver="GPKG")
    write_history(add_epoch(None, _measure(tmp_path, 0).reset_index()), gpkg)
    layers = set(pyogrio.list_layers(gpkg)[:, 0])
    assert {"projects", "project_history"} <= layers
    assert len(read_history(gpkg)) == 4
    assert read_history(tmp_path / "none.gpkg").empty


def test_projects_in_another_crs_give_the_same_progress(tmp_path: Path) -> None:
    in_utm = _measure(tmp_path, 1)
    in_lonlat = _measure(tmp_path, 1, projects=_projects("EPSG:4326"))
    assert np.allclose(in_lonlat["progress"].dropna(), in_utm["progress"].dropna(), atol=1e-4)


def test_unmeasurable_projects_get_a_note_not_a_number(tmp_path: Path) -> None:
    projects = _projects()
    projects.loc[1, "geometry"] = shapely.Polygon()
    covered = shapely.box(X0, Y0 - 300, X0 + 300, Y0 - 65)  # cuts P-GROW at 25 % of its area
    mosaic = _mosaic(tmp_path / "partial.tif", covered=covered)
    rows = _measure(tmp_path, 0, projects=projects, mosaic=mosaic)

    assert rows.loc["P-STALL", "note"] == "the project has no polygon (empty or missing geometry)"
    assert np.isnan(rows.loc["P-GROW", "progress"])
    assert rows.loc["P-GROW", "covered_share"] == pytest.approx(0.25, abs=0.02)
    assert "only 25% of the project is on the mosaic of 2024-01-15" in rows.loc["P-GROW", "note"]
    assert Path(rows.loc["P-GROW", "chip"]).exists()  # still archived as evidence
    assert rows.loc["P-OFF", "note"] == "the mosaic of 2024-01-15 does not cover the project"
    assert rows.loc["P-LATE", "progress"] == pytest.approx(0.04)


def _history(pid: str, points: list[tuple[date, float]]) -> pd.DataFrame:
    rows = [
        {"project_id": pid, "date": day, "progress": p, "covered_share": 1.0, "chip": ""}
        for day, p in points
    ]
    return add_epoch(None, pd.DataFrame(rows).reindex(columns=list(HISTORY_COLUMNS)))


def _one_project(start: date, planned_end: date) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"project_id": ["P"], "name": ["Road"], "start": [start], "planned_end": [planned_end]},
        geometry=[_square(0, 0)],
        crs=UTM,
    )


def test_an_unfinished_project_past_its_end_is_overdue() -> None:
    history = _history("P", [(date(2024, 1, 1), 0.5), (date(2024, 3, 1), 0.7)])
    status = assess_projects(history, _one_project(date(2023, 1, 1), date(2024, 2, 1))).iloc[0]
    assert status["status"] == STALLED and status["reasons"] == "overdue"
    assert status["explanation"].endswith(
        "overdue: planned to end on 2024-02-01; on 2024-03-01, 29 days later, progress is 70%"
    )


def test_not_yet_started_and_finished_projects_are_not_stalled() -> None:
    early = _history("P", [(date(2024, 1, 1), 0.0), (date(2024, 6, 1), 0.0)])
    status = assess_projects(early, _one_project(date(2024, 9, 1), date(2025, 9, 1))).iloc[0]
    assert status["status"] == NOT_STARTED and status["explanation"] == "starts on 2024-09-01"
    done = _history("P", [(date(2024, 1, 1), 1.0), (date(2025, 6, 1), 1.0)])
    status = assess_projects(done, _one_project(date(2023, 1, 1), date(2024, 2, 1))).iloc[0]
    assert status["status"] == FINISHED


def test_no_work_since_the_start_counts_from_the_start() -> None:
    history = _history("P", [(date(2024, 1, 1), 0.0), (date(2024, 9, 1), 0.02)])
    status = assess_projects(history, _one_project(date(2024, 3, 1), date(2026, 3, 1))).iloc[0]
    assert status["reasons"] == "no_progress"
    assert (
        "for 184 days: 0% at the start on 2024-03-01, 2% on 2024-09-01" in (status["explanation"])
    )


def test_the_stall_thresholds_are_parameters() -> None:
    history = _history("P", [(date(2024, 1, 1), 0.30), (date(2024, 3, 1), 0.32)])
    project = _one_project(date(2023, 6, 1), date(2025, 6, 1))
    assert assess_projects(history, project).iloc[0]["status"] == ON_TRACK  # 60 days < 90
    strict = assess_projects(history, project, stall_days=30).iloc[0]
    assert strict["status"] == STALLED and "for 60 days" in strict["explanation"]
    lenient = assess_projects(history, project, stall_days=30, min_change=0.01).iloc[0]
    assert lenient["status"] == ON_TRACK
    with pytest.raises(InputError, match="stall_days >= 1"):
        assess_projects(history, project, stall_days=0)


def test_progress_after_a_stall_restarts_the_clock() -> None:
    points = [(date(2024, 1, 1), 0.1), (date(2024, 6, 1), 0.3), (date(2024, 12, 1), 0.31)]
    status = assess_projects(
        _history("P", points), _one_project(date(2023, 6, 1), date(2026, 6, 1))
    ).iloc[0]
    assert status["stalled_since"] == date(2024, 6, 1)
    assert "no measurable progress for 183 days: 30% on 2024-06-01" in status["explanation"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s.set_crs(None, allow_override=True), "no CRS"),
        (lambda s: s.to_crs("EPSG:4326"), "projected CRS"),
    ],
)
def test_structures_need_a_projected_crs(tmp_path: Path, change, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        _measure(tmp_path, 0, structures=change(_structures(0)))


def test_bad_projects_and_histories_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing column"):
        _measure(tmp_path, 0, projects=_projects().drop(columns="planned_end"))
    twice = pd.concat([_projects(), _projects().iloc[:1]], ignore_index=True)
    with pytest.raises(InputError, match="P-GROW"):
        _measure(tmp_path, 0, projects=twice)
    with pytest.raises(InputError, match="not a project history"):
        add_epoch(pd.DataFrame({"project_id": ["P"]}), empty_history())
    with pytest.raises(InputError, match="is empty"):
        assess_projects(empty_history(), _projects())


def test_projects_read_by_the_records_adapter_are_measured(tmp_path: Path) -> None:
    path = tmp_path / "projects.gpkg"
    pyogrio.write_dataframe(_projects("EPSG:4326").rename_geometry("geom"), path, layer="projects")
    records = read_projects(path)
    assert records.problems == ()
    rows = _measure(tmp_path, 1, projects=records.valid)
    assert rows.loc["P-GROW", "progress"] == pytest.approx(0.5, abs=1e-4)
