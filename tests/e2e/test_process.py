"""The process flow on a folder of real JPEG frames with bad photos mixed in."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import geopandas as gpd
import piexif
import pytest

import flows

pytestmark = pytest.mark.slow


def _flight_with_bad_photos(frames: Path, folder: Path) -> dict[str, str]:
    """A copy of a flight plus three bad photos; returns bad file name → expected reason."""
    folder.mkdir()
    for frame in sorted(frames.glob("*.JPG")):
        shutil.copy(frame, folder / frame.name)
    sample = sorted(frames.glob("*.JPG"))[0].read_bytes()
    (folder / "ZZ_truncated.JPG").write_bytes(sample[: len(sample) // 2])
    (folder / "ZZ_not_a_photo.jpg").write_text("this is not a JPEG")
    no_gps = folder / "ZZ_no_gps.JPG"
    no_gps.write_bytes(sample)
    piexif.remove(str(no_gps))
    return {"ZZ_truncated.JPG": "", "ZZ_not_a_photo.jpg": "", "ZZ_no_gps.JPG": "GPS"}


def test_bad_photos_are_skipped_and_reported_the_rest_is_processed(
    surveyed, tmp_path: Path
) -> None:
    last = surveyed.epochs[-1]
    bad = _flight_with_bad_photos(last.out_dir / "frames", tmp_path / "flight")
    settings = surveyed.settings.model_copy(update={"workspace": tmp_path / "workspace"})
    result = flows.process(
        tmp_path / "flight",
        surveyed.world.paths.parcels,
        surveyed.world.paths.permits,
        "2026-07-10",
        date(2026, 7, 10),
        settings,
        models=flows.default_models(surveyed.settings),
    )
    skipped = dict(result.skipped)
    assert set(skipped) == set(bad)
    for name, word in bad.items():
        assert word in skipped[name]
    assert result.images == last.images
    reported = gpd.read_file(result.geopackage, layer="skipped_images")
    assert sorted(Path(p).name for p in reported["path"]) == sorted(bad)
