"""`raqib survey` and `raqib process` take ``--cluster`` (overriding the ``dask_cluster``
setting, checked to answer before the flow starts) and ``--dsm`` (checked before the flow
starts; tests/bad_inputs/test_survey_dsm_inputs.py follows one into the survey flow)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import cli

COMMANDS = {
    "survey": ["survey", "--world", "world"],
    "process": [
        "process", "frames", "--parcels", "parcels.gpkg", "--permits", "permits.csv",
        "--date", "2026-01-15",
    ],
}  # fmt: skip


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_cluster_flag_overrides_the_setting_and_must_answer(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    configured = f"tcp://127.0.0.1:{_closed_port()}"
    flagged = f"tcp://127.0.0.1:{_closed_port()}"
    (tmp_path / "raqib.toml").write_text(f'dask_cluster = "{configured}"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAQIB_DASK_CLUSTER", raising=False)

    assert cli.main([*COMMANDS[command], "--cluster", flagged]) == 2
    err = capsys.readouterr().err
    assert f"no Dask scheduler answers at {flagged}" in err and configured not in err, err
    assert cli.main([*COMMANDS[command], "--cluster", "localhost:8786"]) == 2
    err = capsys.readouterr().err
    assert "'localhost:8786' is not a scheduler address (tcp://host:port)" in err, err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_dsm_flag_is_checked_before_the_flow_starts(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAQIB_DASK_CLUSTER", raising=False)
    for name in ("frames", "world"):
        (tmp_path / name).mkdir()
    for name in ("parcels.gpkg", "permits.csv"):
        (tmp_path / name).touch()
    dsm = tmp_path / "odm_dem" / "dsm.tif"

    assert cli.main([*COMMANDS[command], "--dsm", str(dsm)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {dsm}: cannot open raster") and err.count("\n") == 1, err
    assert not (tmp_path / "workspace").exists()
