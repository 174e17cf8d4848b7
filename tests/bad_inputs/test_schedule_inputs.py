"""Bad `raqib schedule` requests: one clear line, exit 2, checked before anything is
registered (no Prefect server is needed to refuse them)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import cli
from sim.world import World, generate


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return generate(tmp_path_factory.mktemp("schedule-inputs") / "world", width_m=200, height_m=160)


@pytest.fixture()
def closed_port_api() -> Iterator[str]:
    """A PREFECT_API_URL where nothing listens."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield url


CASES: dict[str, tuple[list[str], str]] = {
    "minute 61": (["--cron", "61 6 * * 1"], "--cron: '61 6 * * 1' is not a cron schedule"),
    "four cron fields": (["--cron", "0 6 * *"], "--cron: '0 6 * *' is not a cron schedule"),
    "hashed cron": (["--cron", "H 6 * * 1"], "--cron: 'H 6 * * 1'"),
    "unknown time zone": (["--timezone", "Africa/Berkane"], "unknown time zone 'Africa/Berkane'"),
    "UTC offset as a zone": (["--timezone", "+01:00"], "unknown time zone '+01:00'"),
    "unknown commune": (
        ["--commune", "Madagh", "--commune", "Oujda"],
        "parcels.gpkg: no parcel in commune 'Oujda'; communes: Berkane, Madagh, Sidi Slimane",
    ),
    "unknown epoch": (["--epoch", "spring"], "world.json: no epoch 'spring'; known: epoch1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_schedule_is_one_clear_line(
    world: World, tmp_path: Path, closed_port_api: str, capsys, case: str
) -> None:
    options, expected = CASES[case]
    argv = ["schedule", "serve", "--world", str(world.root), "--workspace", str(tmp_path / "ws")]
    assert cli.main([*argv, *options]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert expected in captured.err, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "ws").exists()


def test_a_missing_world_is_named(tmp_path: Path, capsys) -> None:
    assert cli.main(["schedule", "serve", "--world", str(tmp_path / "nowhere")]) == 2
    assert "nowhere/world.json: no world here" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["list"], ["serve"]])
def test_without_a_prefect_server_the_schedule_says_how_to_start_one(
    world: World, closed_port_api: str, capsys, command: list[str]
) -> None:
    extra = ["--world", str(world.root)] if command == ["serve"] else []
    assert cli.main(["schedule", *command, *extra]) == 2
    err = capsys.readouterr().err
    assert f"PREFECT_API_URL: no Prefect server answers at {closed_port_api}" in err, err
    assert "prefect server start --host 127.0.0.1" in err and err.count("\n") == 1
