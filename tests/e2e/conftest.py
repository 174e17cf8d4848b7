"""End-to-end fixtures: one small two-epoch survey (on the session's Prefect test server)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class SurveyRun:
    world: object
    settings: object
    epochs: tuple  # tuple[flows.EpochResult, ...]


@pytest.fixture(scope="session")
def surveyed(
    prefect_server: None, tmp_path_factory: pytest.TempPathFactory, world_copy: Callable
) -> SurveyRun:
    """The small default world flown and processed for both epochs, as `raqib demo` does
    (each with the world's surface model of the epoch)."""
    import flows
    from core.settings import load_settings

    root = tmp_path_factory.mktemp("survey")
    settings = load_settings(workspace=root / "workspace", sim_speedup=40.0)
    world = world_copy(root / "world", width_m=200, height_m=160)
    flows.default_models(settings)
    results = tuple(
        flows.survey(world.root, epoch, settings, dsm=world.paths.dsm(epoch))
        for epoch, _ in world.epochs
    )
    return SurveyRun(world=world, settings=settings, epochs=results)
