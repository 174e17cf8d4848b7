"""Band alignment brings the lenses of a multispectral capture onto one pixel grid."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import InputError, ProcessingError
from core.types import Camera, Capture, ImageRecord
from pipeline.band_alignment import (
    align_capture,
    aligned_stack,
    gradient_magnitude,
    register,
)
from pipeline.ingest import ingest_folder

MICASENSE = "drone_photos/micasense_rededge"
SHAPE = (480, 640)
CAMERA = Camera("test", "Raqib", "test", 4.8, 3.6, SHAPE[1], SHAPE[0], 5.5)


def _texture(seed: int, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """Seeded ground-like texture: blurred noise at three scales, 0..1."""
    rng = np.random.default_rng(seed)
    layers = [cv2.GaussianBlur(rng.random(shape, np.float32), (0, 0), s) for s in (1.5, 4, 12)]
    image = sum(layer / layer.std() for layer in layers)
    return (image - image.min()) / (image.max() - image.min())


def _known_homography() -> np.ndarray:
    """Reference pixel -> band pixel: 0.7 deg rotation about the centre, 0.3 % scale, shift."""
    centre = np.array([[1, 0, SHAPE[1] / 2], [0, 1, SHAPE[0] / 2], [0, 0, 1]], np.float64)
    angle = math.radians(0.7)
    rotation = np.array(
        [[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]]
    )
    similarity = centre @ np.diag([1.003, 1.003, 1.0]) @ rotation @ np.linalg.inv(centre)
    return np.array([[1, 0, 9.4], [0, 1, -6.7], [0, 0, 1]]) @ similarity


def _two_bands(homography: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One ground seen by two lenses in two bands: the band is the reference moved by
    ``homography`` (reference pixel -> band pixel), contrast inverted, noisy. Both are cut
    from a larger scene, so neither has an empty border."""
    margin = 40
    scene = _texture(seed, (SHAPE[0] + 2 * margin, SHAPE[1] + 2 * margin))
    to_scene = np.array([[1, 0, margin], [0, 1, margin], [0, 0, 1]], np.float64)
    scene_homography = to_scene @ homography @ np.linalg.inv(to_scene)
    moved = cv2.warpPerspective(scene, scene_homography, scene.shape[::-1], flags=cv2.INTER_CUBIC)
    crop = np.s_[margin : margin + SHAPE[0], margin : margin + SHAPE[1]]
    noise = np.random.default_rng(seed + 1).normal(0.0, 0.01, SHAPE).astype(np.float32)
    return scene[crop], 0.8 - 0.5 * moved[crop] + noise


def _corner_error_px(found: np.ndarray, truth: np.ndarray) -> float:
    """Largest distance between where the two homographies send the inner corners."""
    height, width = SHAPE
    inner = np.array([[[64, 48], [width - 64, 48], [width - 64, height - 48], [64, height - 48]]])
    points = [cv2.perspectiveTransform(inner.astype(np.float64), h)[0] for h in (found, truth)]
    return float(np.hypot(*(points[0] - points[1]).T).max())


def _write_band(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit single-band TIFF, like a MicaSense band file (without its metadata)."""
    cv2.imwrite(str(path), np.clip(pixels * 40000 + 2000, 0, 65535).astype(np.uint16))
    return path


def _capture(paths: list[Path], bands: list[str]) -> Capture:
    records = tuple(
        ImageRecord(
            path=path,
            sha256=path.name,
            captured_at=datetime(2026, 3, 1, 10, tzinfo=UTC),
            lon_deg=-2.32,
            lat_deg=34.92,
            altitude_m=60.0,
            camera=CAMERA,
            bands=(band,),
            capture_id="synthetic",
        )
        for path, band in zip(paths, bands, strict=True)
    )
    return Capture("synthetic", records)


def _real_captures(shared_data: Path) -> tuple[Capture, Capture]:
    panel, flight = ingest_folder(shared_data / MICASENSE, ground_elevation_m=0.0).captures
    return panel, flight


def test_known_shift_and_rotation_recovered_to_a_fifth_of_a_pixel() -> None:
    truth = _known_homography()
    reference, band = _two_bands(truth, seed=5)
    registration = register(gradient_magnitude(reference), gradient_magnitude(band))
    assert _corner_error_px(registration.homography, truth) < 0.2
    assert registration.before.median_px > 8.0
    assert registration.after.median_px < 0.2


def test_affine_motion_recovers_the_same_transform() -> None:
    truth = _known_homography()
    reference, band = _two_bands(truth, seed=8)
    registration = register(
        gradient_magnitude(reference), gradient_magnitude(band), motion="affine"
    )
    assert _corner_error_px(registration.homography, truth) < 0.2
    assert np.allclose(registration.homography[2], [0.0, 0.0, 1.0])


def test_synthetic_capture_stacks_onto_the_reference_grid(tmp_path: Path) -> None:
    reference, band = _two_bands(_known_homography(), seed=11)
    paths = [_write_band(tmp_path / "b1.tif", reference), _write_band(tmp_path / "b2.tif", band)]
    alignment = align_capture(_capture(paths, ["green", "nir"]))
    assert alignment.reference_band == "green"
    stack = aligned_stack(alignment)
    assert stack.bands == ("green", "nir")
    assert stack.pixels.shape == (2, *SHAPE)
    # The shift of (9.4, -6.7) px leaves strips along two borders that NIR does not cover.
    assert 0.93 < stack.valid.mean() < 0.98
    assert not stack.valid[:, -6:].any() and not stack.valid[:2].any()
    assert stack.valid[20:-20, 20:-20].all()
    green, nir = (layer[stack.valid] for layer in stack.pixels)
    assert np.corrcoef(green, nir)[0, 1] < -0.98  # aligned pixel to pixel (contrast inverted)
    assert (stack.pixels[:, ~stack.valid] == 0).all()


def test_real_flight_capture_misaligned_by_pixels_aligns_below_a_pixel(shared_data: Path) -> None:
    _, flight = _real_captures(shared_data)
    alignment = align_capture(flight)
    assert alignment.reference_band == "green"
    for record, registration in zip(flight.images, alignment.registrations, strict=True):
        if record.bands == ("green",):
            assert np.array_equal(registration.homography, np.eye(3))
            continue
        assert registration.before.median_px > 2.0, record.path.name
        assert registration.after.median_px < 0.3, record.path.name
        assert registration.after.rms_px < 0.5, record.path.name
        assert registration.after.tiles >= 40, record.path.name
    nir = alignment.registrations[flight.bands.index("nir")]
    assert nir.initial_shift_px == pytest.approx((12.8, 1.1), abs=0.3)


@pytest.mark.slow
def test_real_panel_capture_aligns_despite_close_range_parallax(shared_data: Path) -> None:
    panel, _ = _real_captures(shared_data)  # held close over the panel: lenses tens of px apart
    alignment = align_capture(panel)
    bands = zip(alignment.registrations, panel.bands, strict=True)
    others = [registration for registration, band in bands if band != "green"]
    assert min(r.before.median_px for r in others) > 20.0
    assert max(r.after.median_px for r in others) < 0.5


def test_bands_of_different_sizes_are_refused_naming_the_file(tmp_path: Path) -> None:
    paths = [
        _write_band(tmp_path / "green.tif", _texture(seed=1)),
        _write_band(tmp_path / "nir.tif", _texture(seed=2, shape=(240, 320))),
    ]
    with pytest.raises(InputError, match="320x240 px but the reference band image green.tif"):
        align_capture(_capture(paths, ["green", "nir"]))


def test_a_single_band_capture_is_refused(tmp_path: Path) -> None:
    capture = _capture([_write_band(tmp_path / "only.tif", _texture(seed=3))], ["green"])
    with pytest.raises(InputError, match="has a single band image") as error:
        align_capture(capture)
    assert error.value.source == str(tmp_path / "only.tif")


def test_a_missing_reference_band_is_refused(tmp_path: Path) -> None:
    paths = [_write_band(tmp_path / f"{i}.tif", _texture(seed=i)) for i in (1, 2)]
    with pytest.raises(InputError, match="no band 'red_edge'"):
        align_capture(_capture(paths, ["green", "nir"]), reference_band="red_edge")


def test_bands_without_common_texture_are_refused_naming_the_file(tmp_path: Path) -> None:
    paths = [_write_band(tmp_path / f"{i}.tif", _texture(seed=i)) for i in (1, 2)]
    with pytest.raises(ProcessingError, match=r"2\.tif: band \('nir',\) not aligned"):
        align_capture(_capture(paths, ["green", "nir"]))
