"""A multispectral epoch joins the workspace's epochs index, gets its QGIS project and report,
and is republished by `raqib publish --epoch` like any other; it is never the earlier epoch a
colour one is compared with."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import geopandas as gpd
import pyproj
import pytest
from shapely.geometry import box
from test_cli import run_cli

import flows
from core.settings import load_settings
from gis.report import REPORT
from pipeline.ingest import ingest_with_settings

MICASENSE = "drone_photos/micasense_rededge"
MAY = date(2026, 5, 1)


def _parcels_around(frames: Path, settings, path: Path) -> Path:
    first = ingest_with_settings(frames, settings).images[0]
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", settings.crs, always_xy=True)
    east, north = to_utm.transform(first.lon_deg, first.lat_deg)
    parcels = gpd.GeoDataFrame(
        {"parcel_id": ["A", "B"], "commune": "x", "land_use": ["orchard", "cereal"]},
        geometry=[box(east - 20, north - 15, east, north + 15),
                  box(east, north - 15, east + 20, north + 15)],
        crs=settings.crs,
    )  # fmt: skip
    parcels.to_file(path, layer="parcels")
    return path


@pytest.mark.slow
def test_a_multispectral_epoch_is_indexed_reported_and_republished(
    prefect_server: None, shared_data: Path, tmp_path: Path
) -> None:
    frames = tmp_path / "rededge"
    frames.mkdir()
    for path in sorted((shared_data / MICASENSE).glob("IMG_0001_*.tif")):
        (frames / path.name).symlink_to(path)
    workspace = tmp_path / "workspace"
    settings = load_settings(workspace=workspace, crs="EPSG:32611", ground_elevation_m=101.9)
    (tmp_path / "permits.csv").write_text(
        "permit_id,parcel_id,status,issued,expires,permitted_footprint_m2\n"
    )
    parcels = _parcels_around(frames, settings, tmp_path / "parcels.gpkg")

    result = flows.process(frames, parcels, tmp_path / "permits.csv", "rededge", MAY, settings)

    manifest = json.loads((workspace / flows.EPOCHS_MANIFEST).read_text())
    assert manifest["rededge"]["kind"] == flows.MULTISPECTRAL
    report = (result.out_dir / REPORT).read_text(encoding="utf-8")
    assert "captured on <b>2026-05-01</b>" in report and "vegetation index statistics" in report
    mosaic_written = result.mosaic.path.stat().st_mtime_ns
    for derived in (result.out_dir / REPORT, result.out_dir / "raqib.qgz"):
        derived.unlink()

    done = run_cli("publish", "--epoch", "rededge", "--workspace", str(workspace), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert (result.out_dir / REPORT).is_file() and (result.out_dir / "raqib.qgz").is_file()
    assert result.mosaic.path.stat().st_mtime_ns == mosaic_written
    assert flows.previous_epoch(workspace, "july", date(2026, 7, 1)) is None


def test_a_colour_epoch_is_compared_with_the_latest_earlier_colour_epoch(tmp_path: Path) -> None:
    for name, day, kind in (("jan", date(2026, 1, 5), "rgb"), ("may", MAY, flows.MULTISPECTRAL)):
        folder = tmp_path / name
        folder.mkdir()
        for file in (flows.GEOPACKAGE, "mosaic.tif"):
            (folder / file).write_bytes(b"")
        flows.record_epoch(
            tmp_path, name, day, folder / flows.GEOPACKAGE, folder / "mosaic.tif", kind=kind
        )

    previous = flows.previous_epoch(tmp_path, "july", date(2026, 7, 1))

    assert previous is not None and previous["captured_on"] == "2026-01-05"
    assert "kind" not in json.loads((tmp_path / flows.EPOCHS_MANIFEST).read_text())["jan"]
