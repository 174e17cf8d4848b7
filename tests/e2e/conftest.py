"""End-to-end fixtures: one Prefect test server for the session, one small two-epoch survey."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@dataclass(frozen=True)
class SurveyRun:
    world: object
    settings: object
    epochs: tuple  # tuple[flows.EpochResult, ...]


@pytest.fixture(scope="session")
def surveyed(prefect_server: None, tmp_path_factory: pytest.TempPathFactory) -> SurveyRun:
    """The small default world flown and processed for both epochs, as `raqib demo` does."""
    import flows
    from core.settings import load_settings
    from sim.world import generate

    root = tmp_path_factory.mktemp("survey")
    settings = load_settings(workspace=root / "workspace", sim_speedup=40.0)
    world = generate(root / "world", width_m=200, height_m=160)
    flows.default_models(settings)
    results = tuple(flows.survey(world.root, epoch, settings) for epoch, _ in world.epochs)
    return SurveyRun(world=world, settings=settings, epochs=results)
