"""The stage record: a stage reruns exactly when its inputs, parameters or outputs changed."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Point

from core.errors import InputError
from core.stages import (
    MISSING,
    STAGES_FILE,
    StageBook,
    code_version,
    content_sha256,
    fingerprint,
    remove_leftovers,
    source_version,
    stage_key,
)


def _frame(x: float = 1.0) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"parcel_id": ["a", "b"], "score": [0.5, 2.0], "day": [date(2026, 1, 15)] * 2},
        geometry=[Point(x, 2), Point(3, 4)],
        crs="EPSG:32630",
    )


class Counter:
    """A stage that writes one file and counts how often it really ran."""

    def __init__(self, out: Path) -> None:
        self.out, self.calls = out, 0

    def __call__(self) -> dict[str, int]:
        self.calls += 1
        self.out.write_text(f"run {self.calls}")
        return {"calls": self.calls}


def test_content_hashes_follow_bytes_not_times(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.JPG").write_bytes(b"one")
    (folder / ".a.x.tmp.JPG").write_bytes(b"half")  # a killed write: not part of the content
    before = content_sha256(folder)
    (folder / ".a.x.tmp.JPG").unlink()
    assert content_sha256(folder) == before
    (folder / "b.JPG").write_bytes(b"two")
    assert content_sha256(folder) != before
    assert content_sha256(tmp_path / "nothing") == MISSING


def test_fingerprints_see_every_cell_geometry_and_crs() -> None:
    base = fingerprint({"parcels": _frame(), "day": date(2026, 1, 15)})
    assert fingerprint({"day": date(2026, 1, 15), "parcels": _frame()}) == base
    assert fingerprint({"parcels": _frame(1.001), "day": date(2026, 1, 15)}) != base
    assert fingerprint({"parcels": _frame().to_crs(4326), "day": date(2026, 1, 15)}) != base
    changed = _frame()
    changed.loc[1, "score"] = 2.5
    assert fingerprint({"parcels": changed, "day": date(2026, 1, 15)}) != base
    assert fingerprint(pd.DataFrame({"a": [1, 2]})) != fingerprint(pd.DataFrame({"a": [1.0, 2.0]}))


def test_a_stage_is_skipped_until_an_input_parameter_or_output_changes(tmp_path: Path) -> None:
    source = tmp_path / "mosaic.tif"
    source.write_bytes(b"pixels")
    stage = Counter(tmp_path / "health.tif")
    said: list[str] = []

    def run(threshold: float) -> dict[str, int]:
        book = StageBook(tmp_path)  # a fresh process reading the record
        key = stage_key({"mosaic": source}, {"threshold": threshold})
        return book.run("health", key, stage, lambda _: [stage.out], said.append)

    assert run(0.5) == {"calls": 1}
    assert run(0.5) == {"calls": 1} and stage.calls == 1  # the recorded value, not a rerun
    assert said == ["stage health: running", "stage health: unchanged, skipped"]
    assert run(0.6) == {"calls": 2}  # a parameter changed
    source.write_bytes(b"other pixels")
    assert run(0.6) == {"calls": 3}  # an input's content changed
    stage.out.write_text("edited by hand")
    assert run(0.6) == {"calls": 4}  # an output no longer what the stage wrote
    stage.out.unlink()
    assert run(0.6) == {"calls": 5}  # an output gone
    assert run(0.6) == {"calls": 5}
    record = json.loads((tmp_path / STAGES_FILE).read_text())
    assert set(record["health"]["outputs"]) == {"stages/health.pickle", "health.tif"}


def test_force_reruns_and_a_lost_result_reruns(tmp_path: Path) -> None:
    stage = Counter(tmp_path / "out.txt")
    key = stage_key(parameters={"n": 1})
    StageBook(tmp_path).run("trees", key, stage)
    StageBook(tmp_path, force=True).run("trees", key, stage)
    assert stage.calls == 2
    StageBook(tmp_path).result_path("trees").write_bytes(b"not a pickle")
    StageBook(tmp_path).run("trees", key, stage)  # hash differs: rerun
    assert stage.calls == 3


def test_new_code_reruns_every_stage(tmp_path: Path) -> None:
    stage = Counter(tmp_path / "out.txt")
    key = stage_key(parameters={"n": 1})
    StageBook(tmp_path, code="release 1").run("trees", key, stage)
    StageBook(tmp_path, code="release 1").run("trees", key, stage)
    assert stage.calls == 1
    StageBook(tmp_path, code="release 2").run("trees", key, stage)
    assert stage.calls == 2


def test_the_code_version_changes_with_any_source_file(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "trees.py").write_text("THRESHOLD = 0.5\n")
    (tmp_path / "flows.py").write_text("")
    (tmp_path / "notes.txt").write_text("not code")
    first = source_version(tmp_path)
    (tmp_path / "notes.txt").write_text("still not code")
    assert source_version(tmp_path) == first
    (tmp_path / "models" / "trees.py").write_text("THRESHOLD = 0.6\n")
    assert source_version(tmp_path) != first
    assert (
        StageBook(tmp_path).code
        == code_version()
        == source_version(Path(__file__).resolve().parents[2])
    )


def test_a_spoilt_record_names_the_file(tmp_path: Path) -> None:
    (tmp_path / STAGES_FILE).write_text("{half")
    with pytest.raises(InputError, match=rf"{STAGES_FILE}: not a stage record .*--force"):
        StageBook(tmp_path)
    assert StageBook(tmp_path, force=True).is_current("plan", "k") is False


def test_leftovers_of_a_killed_write_are_removed(tmp_path: Path) -> None:
    (tmp_path / "evidence").mkdir()
    kept = [tmp_path / "raqib.gpkg", tmp_path / ".hidden_setting"]
    left = [tmp_path / ".raqib.k2j4.tmp.gpkg", tmp_path / "evidence" / ".p1.x.tmp.png"]
    for path in kept + left:
        path.write_text("x")
    assert sorted(remove_leftovers(tmp_path)) == sorted(left)
    assert all(path.exists() for path in kept) and not any(path.exists() for path in left)


def test_a_copied_folder_reruns_its_stages(tmp_path: Path) -> None:
    first, copy = tmp_path / "ws" / "epoch1", tmp_path / "copy" / "epoch1"
    key = stage_key(parameters={"n": 1})
    StageBook(first).run("ingest", key, lambda: str(first))
    shutil.copytree(first, copy)
    assert StageBook(copy).run("ingest", key, lambda: str(copy)) == str(copy)  # not the old path
    assert StageBook(first).is_current("ingest", key)
