"""The notebooks run top to bottom in a fresh kernel of the project's venv (nbclient): the
operator's on an empty workspace (it generates the small world, flies and processes both
epochs through the real Prefect flow), then the agronomist's on what it published."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = "raqib-venv"
CELL_TIMEOUT_S = 600


@dataclass(frozen=True)
class Run:
    """An executed notebook and what its cells printed or displayed as text."""

    notebook: nbformat.NotebookNode
    text: str


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A kernelspec running this interpreter (the venv's), found first on JUPYTER_PATH, and
    the kernel's environment: an empty workspace, a throw-away Prefect home, no telemetry."""
    root = tmp_path_factory.mktemp("notebooks")
    jupyter = root / "jupyter"
    write_kernel_spec(jupyter / "kernels" / KERNEL, overrides={"display_name": "Raqib (.venv)"})
    env = {
        **os.environ,
        "RAQIB_WORKSPACE": str(root / "workspace"),
        "RAQIB_WORLD_SIZE": "small",
        "RAQIB_SIM_SPEEDUP": "40",
        "PREFECT_HOME": str(root / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(jupyter))
        yield env


def execute(name: str, env: dict[str, str]) -> Run:
    """Run ``notebooks/<name>`` from its own folder, plus one last cell naming the kernel's
    interpreter, and collect every text output."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; print('kernel:', sys.executable)"))
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute(env=env)
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return Run(notebook, "\n".join(texts))


def images(run: Run) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in run.notebook.cells
        for output in cell.get("outputs", [])
    )


@pytest.fixture(scope="module")
def operator_run(kernel_env: dict[str, str]) -> Run:
    return execute("from_aoi_to_flagged_parcels.ipynb", kernel_env)


def test_operator_notebook_flies_both_epochs_and_reads_the_flags_back(
    operator_run: Run, kernel_env: dict[str, str]
) -> None:
    workspace = Path(kernel_env["RAQIB_WORKSPACE"])
    assert f"kernel: {sys.executable}" in operator_run.text
    assert (workspace / "epoch1" / "raqib.gpkg").is_file()
    found = re.search(r"(\d+) flagged parcels read back from (\S+)", operator_run.text)
    assert found, operator_run.text
    count, geopackage = int(found[1]), Path(found[2])
    assert geopackage == workspace / "epoch2" / "raqib.gpkg"
    assert count > 0
    assert count == len(gpd.read_file(geopackage, layer="flagged_parcels"))
    planned = re.search(
        r"flown: (\d+) photos planned by the flow, (\d+) in our plan", operator_run.text
    )
    assert planned and planned[1] == planned[2], operator_run.text
    work = gpd.read_file(geopackage, layer="work_list")
    for commune, rows in work.groupby("commune"):
        assert f"{commune}: {len(rows)} open flags" in operator_run.text
    assert images(operator_run) >= 3  # the plan, the flags map, the evidence chips


def test_agronomist_notebook_reads_the_same_workspace(
    operator_run: Run, kernel_env: dict[str, str]
) -> None:
    run = execute("crop_health_of_a_commune.ipynb", kernel_env)
    workspace = Path(kernel_env["RAQIB_WORKSPACE"])
    assert f"kernel: {sys.executable}" in run.text
    found = re.search(r"commune (.+): (\d+) crop parcels in (\S+)", run.text)
    assert found, run.text
    commune, count, geopackage = found[1], int(found[2]), Path(found[3])
    assert geopackage == workspace / "epoch2" / "raqib.gpkg"
    health = gpd.read_file(geopackage, layer="crop_health_parcels")
    assert count == (health["commune"] == commune).sum() > 0
    assert "trend between 2026-01-15 and 2026-07-10" in run.text
    assert images(run) >= 2  # the health map, the trend chart
