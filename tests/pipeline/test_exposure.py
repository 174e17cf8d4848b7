"""Exposure balancing recovers the relative brightness of frames taken at different gains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from photo_factory import (
    CRS,
    ORTHO_LEFT_M,
    ORTHO_RES_M,
    ORTHO_TOP_M,
    Pose,
    make_ortho,
    render_frame,
    write_photo,
)

from core.types import Grid, ImageRecord
from pipeline.exposure import exposure_gains
from pipeline.ingest import ingest_folder
from pipeline.mosaic import mosaic_frames

POSES = tuple(
    Pose(ORTHO_LEFT_M + 50 + 30 * line, ORTHO_TOP_M - 50 - 20 * k, yaw_deg=180.0 * (line % 2))
    for line in range(3)
    for k in range(3)
)
CAMERA_GAINS = (1.0, 0.85, 1.1, 0.95, 1.15, 0.9, 1.05, 0.8, 1.0)


@pytest.fixture(scope="module")
def ortho() -> np.ndarray:
    return make_ortho(size_px=1400, seed=5)


@pytest.fixture(scope="module")
def records(ortho: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> list[ImageRecord]:
    folder = tmp_path_factory.mktemp("exposures")
    for index, (pose, gain) in enumerate(zip(POSES, CAMERA_GAINS, strict=True)):
        frame = np.clip(render_frame(ortho, pose) * gain, 0, 255).astype(np.uint8)
        write_photo(folder / f"IMG_{index:04d}.JPG", frame, pose)
    return list(ingest_folder(folder).images)


def test_gains_undo_the_camera_gains(records: list[ImageRecord]) -> None:
    gains = np.array(exposure_gains(records, CRS))
    restored = gains * np.array(CAMERA_GAINS)
    assert restored.std() / restored.mean() < 0.015
    assert abs(np.mean(gains) - 1.0) < 0.1


def test_balanced_mosaic_is_closer_to_the_ortho(
    records: list[ImageRecord], ortho: np.ndarray, tmp_path: Path
) -> None:
    grid = Grid.from_bounds(
        (ORTHO_LEFT_M + 40, ORTHO_TOP_M - 110, ORTHO_LEFT_M + 120, ORTHO_TOP_M - 40),
        ORTHO_RES_M,
        CRS,
    )
    truth = ortho[400:1100, 400:1200].transpose(2, 0, 1).astype(float)

    def error(balance: bool) -> float:
        out = mosaic_frames(records, grid, tmp_path / f"{balance}.tif", balance_exposure=balance)
        with rasterio.open(out.path) as src:
            pixels = src.read().astype(float)
        # Compare up to one global gain: balancing fixes frames relative to each other.
        scale = truth.mean() / pixels.mean()
        return float(np.abs(pixels * scale - truth).mean())

    assert error(True) < 0.7 * error(False)
