"""The flows' own bookkeeping: the epoch manifest and how flags are scored."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import box

import flows
from core.errors import InputError


def _epoch(workspace: Path, name: str, day: date) -> None:
    folder = workspace / name
    folder.mkdir(parents=True)
    (folder / "raqib.gpkg").write_bytes(b"")
    (folder / "mosaic.tif").write_bytes(b"")
    flows.record_epoch(workspace, name, day, folder / "raqib.gpkg", folder / "mosaic.tif")


def test_the_previous_epoch_is_the_latest_one_before(tmp_path: Path) -> None:
    _epoch(tmp_path, "winter", date(2026, 1, 15))
    _epoch(tmp_path, "spring", date(2026, 4, 1))
    _epoch(tmp_path, "summer", date(2026, 7, 10))
    assert flows.previous_epoch(tmp_path, "summer", date(2026, 7, 10))["captured_on"] == (
        "2026-04-01"
    )
    assert flows.previous_epoch(tmp_path, "winter", date(2026, 1, 15)) is None
    assert sorted(flows.read_manifest(tmp_path)) == ["spring", "summer", "winter"]


def test_a_manifest_pointing_at_deleted_outputs_says_so(tmp_path: Path) -> None:
    _epoch(tmp_path, "winter", date(2026, 1, 15))
    (tmp_path / "winter" / "mosaic.tif").unlink()
    with pytest.raises(InputError, match="epochs.json.*mosaic.tif.*no longer exists"):
        flows.previous_epoch(tmp_path, "summer", date(2026, 7, 10))


def test_flag_scores_count_every_flag_and_every_violation() -> None:
    truth = gpd.GeoDataFrame(
        {"parcel_id": ["A", "B", "C", "D"],
         "case": ["unpermitted", "expired_permit", "permitted", "existing"]},
        geometry=[box(i, 0, i + 1, 1) for i in range(4)], crs="EPSG:32630",
    )  # fmt: skip
    flagged = gpd.GeoDataFrame(
        {"parcel_id": ["A", "C", None], "reason": ["no_permit", "over_footprint", "off_cadastre"]},
        geometry=[box(0, 0, 1, 1)] * 3,
        crs="EPSG:32630",
    )
    scores = flows.flag_scores(flagged, truth)
    assert scores.precision == pytest.approx(1 / 3)
    assert scores.recall == pytest.approx(1 / 2)
    assert scores.support == 2
