"""Writes that cannot finish: a full disk and a killed writer. The error names the file and
says the disk is full; the previous output survives byte for byte.

A full disk is simulated without root in a child process: ``RLIMIT_FSIZE`` with SIGXFSZ
ignored makes every write past the limit fail with EFBIG, as ENOSPC would on a full disk
(the same code path was checked by hand on a 512 KiB tmpfs).
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

from corpus_photos import photo

import cli
from pipeline.catalog import CATALOG_GPKG, STAC_DIR, WORKSPACE_CATALOG

REPO = Path(__file__).resolve().parents[2]
LIMIT_BYTES = 64 * 1024
"""Largest file the child may write: a GeoPackage (>= 96 KiB) never fits."""


def _small_disk() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # ignored signals stay ignored over exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, resource.RLIM_INFINITY))


def _python_on_a_small_disk(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        preexec_fn=_small_disk,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


WRITERS = """
import json, sys
from pathlib import Path
import numpy as np, geopandas as gpd, rasterio
from shapely.geometry import box
from core.errors import DiskFullError
from core.io import atomic_path, write_geopackage

def raw_bytes(target):
    with atomic_path(target) as tmp:
        tmp.write_bytes(bytes(200_000))

def geopackage(target):
    frame = gpd.GeoDataFrame({"id": range(50)}, geometry=[box(i, 0, i + 1, 1) for i in range(50)],
                             crs="EPSG:32630")
    write_geopackage(target, {"parcels": frame})

def geotiff(target):
    pixels = np.random.default_rng(0).integers(0, 255, (3, 300, 300), dtype=np.uint8)
    with atomic_path(target) as tmp, rasterio.open(
        tmp, "w", driver="GTiff", width=300, height=300, count=3, dtype="uint8"
    ) as dst:
        dst.write(pixels)

def work_lists(target):
    from gis.worklists import work_list, write_work_lists
    flagged = gpd.GeoDataFrame(
        {"flag_id": [f"2026-07-10:no_permit:B-{i}" for i in range(300)], "commune": "Berkane",
         "reason": "no_permit", "severity": 0.5, "explanation": "x" * 300, "parcel_id": "B",
         "permit_id": None, "record_url": "", "captured_on": "2026-07-10"},
        geometry=[box(600000 + 50 * i, 3860000, 600040 + 50 * i, 3860040) for i in range(300)],
        crs="EPSG:32630")
    write_work_lists(work_list(flagged), None, target)

folder, messages = Path(sys.argv[1]), {}
writers = ((raw_bytes, "model.joblib"), (geopackage, "raqib.gpkg"), (geotiff, "mosaic.tif"),
           (work_lists, "work_lists"))
for write, name in writers:
    try:
        write(folder / name)
        messages[name] = "written"
    except DiskFullError as exc:
        messages[name] = str(exc)
print(json.dumps(messages))
"""


def test_a_full_disk_is_named_for_every_kind_of_writer_and_the_old_files_kept(
    tmp_path: Path,
) -> None:
    names = ("model.joblib", "raqib.gpkg", "mosaic.tif", "work_lists")
    for name in names[:-1]:
        (tmp_path / name).write_bytes(f"previous {name}".encode())
    (tmp_path / "work_lists").mkdir()
    (tmp_path / "work_lists" / "Berkane.csv").write_text("rank,flag_id\n1,earlier\n")
    before = _files(tmp_path)
    child = _python_on_a_small_disk(WRITERS, str(tmp_path))
    assert child.returncode == 0, child.stderr
    messages = json.loads(child.stdout)
    for name in names:
        assert messages[name].startswith(f"{tmp_path / name}: cannot write it, the disk is full")
    assert _files(tmp_path) == before, "old files intact, no temporary file left"


def test_ingest_on_a_full_disk_exits_2_naming_the_catalogue_and_keeps_it(
    tmp_path: Path, capsys
) -> None:
    photos, workspace = tmp_path / "photos", tmp_path / "ws"
    photos.mkdir()
    photo(photos / "DJI_0001.JPG", seed=1)
    assert cli.main(["ingest", str(photos), "--workspace", str(workspace)]) == 0
    capsys.readouterr()
    catalogue = workspace / WORKSPACE_CATALOG
    before = _files(catalogue)
    assert CATALOG_GPKG in before and any(name.startswith(STAC_DIR) for name in before)
    photo(photos / "DJI_0002.JPG", seed=2, lon=-2.2970)

    child = _python_on_a_small_disk(
        "import sys, cli; sys.exit(cli.main(sys.argv[1:]))",
        *("ingest", str(photos), "--workspace", str(workspace)),
    )

    assert child.returncode == 2, child.stdout + child.stderr
    errors = [line for line in child.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {catalogue / CATALOG_GPKG}: cannot write it, the disk is full (or the "
        "file-size limit is reached); the previous file, if any, is kept: free some space "
        "and rerun"
    ], child.stderr
    assert "Traceback" not in child.stderr
    assert _files(catalogue) == before, "the catalogue is as the first ingest left it"


KILLED_WRITER = """
import sys, time
from core.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with tmp.open("wb") as half:
        half.write(b"half of the new file")
        half.flush()
        print("writing", flush=True)
        time.sleep(60)
"""


def test_a_writer_killed_mid_write_leaves_the_previous_file_intact(tmp_path: Path) -> None:
    target = tmp_path / "raqib.gpkg"
    target.write_bytes(b"the published epoch")
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "writing\n"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        child.kill()
    assert target.read_bytes() == b"the published epoch"
    leftovers = [p for p in tmp_path.iterdir() if p != target]
    assert [p.name.startswith(".raqib.") for p in leftovers] == [True], "a hidden temp only"
    assert leftovers[0].read_bytes() == b"half of the new file"
