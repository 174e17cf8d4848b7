"""Shared test fixtures: the public sample data beside the repository, a temporary workspace."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Prefect reads these at import time: offline, no telemetry, a throw-away home.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="raqib-prefect-")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: real drone photos, rasters and mission files (see its SOURCES.md)."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"public sample data not found at {SHARED_DATA}: CI must provide it")
        pytest.skip(f"public sample data not found at {SHARED_DATA}")
    return SHARED_DATA
