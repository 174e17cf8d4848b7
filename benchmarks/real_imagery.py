"""Geometric accuracy on the real sample imagery in ``../shared/data`` (see its SOURCES.md).

1. MicaSense RedEdge band alignment (``pipeline.band_alignment``) on the panel capture
   (IMG_0000) and the flight capture (IMG_0001): misalignment of each band to green before
   and after, measured tile by tile, and checked independently with SIFT tie points.
2. Placement of the two senseFly eBee frames (48 x 36 px) by our direct georeferencing
   (``pipeline.footprint.frame_to_ground``) against the WebODM orthophoto, and, since the
   orthophoto turns out to lie elsewhere, against each other.

Prints markdown tables.

    .venv/bin/python benchmarks/real_imagery.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import rasterio
from pyproj import Geod, Transformer
from shapely.geometry import box

from core.types import Camera, Capture, ImageRecord
from pipeline.band_alignment import align_capture, gradient_magnitude, read_image
from pipeline.exif import read_metadata
from pipeline.footprint import footprint, frame_to_ground
from pipeline.ingest import ingest_folder

HERE = Path(__file__).resolve()
DEFAULT_DATA = HERE.parents[2] / "shared" / "data"
MICASENSE = "drone_photos/micasense_rededge"
TINY_FRAMES = ("tiny_drone_image.jpg", "tiny_drone_image_2.jpg")
ORTHOPHOTO = "orthophotos/webodm_orthophoto.tif"
S110_SENSOR_MM = (7.44, 5.58)
"""Canon PowerShot S110 (1/1.7" sensor, 4000 x 3000 px). The fixtures were shrunk to 48 x 36 px
but kept the full frame's FocalPlaneXResolution, so ingest rightly refuses their intrinsics."""
FRAME_CRS = "EPSG:32617"
"""UTM zone of the eBee frames (81.7 W)."""
TINY_ECC_STARTS_AGL_M = tuple(range(80, 181, 10))
TINY_ECC_STARTS_YAW_DEG = (-4.0, 0.0, 4.0)
"""ECC on 48 x 36 px starts from the poses at these heights above ground and yaw offsets
(the height is unknown) and keeps the best correlation."""
NOMINAL_AGL_M = 120.0
"""An eBee's usual height above ground, for the poses' predicted shift (length only)."""
_GEOD = Geod(ellps="WGS84")


# --- 1. band alignment -------------------------------------------------------------------


@dataclass(frozen=True)
class SiftCheck:
    """Tie points between a band and the reference, as an independent check of a homography."""

    tie_points: int
    ours_median_px: float
    sift_median_px: float
    """The same points under SIFT's own RANSAC homography: the tie points' noise floor."""


def _stretched(pixels: np.ndarray) -> np.ndarray:
    low, high = np.percentile(pixels, (0.5, 99.5))
    return np.clip((pixels - low) / (high - low) * 255, 0, 255).astype(np.uint8)


def sift_check(reference: np.ndarray, image: np.ndarray, homography: np.ndarray) -> SiftCheck:
    """Median distance (px) between SIFT tie points in ``image`` and where ``homography``
    sends their reference twins; SIFT's own homography gives the floor."""
    sift = cv2.SIFT_create(8000)
    keys_ref, desc_ref = sift.detectAndCompute(_stretched(reference), None)
    keys_img, desc_img = sift.detectAndCompute(_stretched(image), None)
    pairs = cv2.BFMatcher().knnMatch(desc_ref, desc_img, k=2)
    good = [m for m, n in pairs if m.distance < 0.75 * n.distance]
    points_ref = np.float64([keys_ref[m.queryIdx].pt for m in good])
    points_img = np.float64([keys_img[m.trainIdx].pt for m in good])
    sift_homography, inliers = cv2.findHomography(points_ref, points_img, cv2.RANSAC, 1.5)
    keep = inliers.ravel().astype(bool)
    points_ref, points_img = points_ref[keep], points_img[keep]

    def median_px(h: np.ndarray) -> float:
        moved = cv2.perspectiveTransform(points_ref[None], h)[0]
        return float(np.median(np.hypot(*(moved - points_img).T)))

    return SiftCheck(int(keep.sum()), median_px(homography), median_px(sift_homography))


def band_alignment_rows(capture: Capture, label: str) -> list[str]:
    started = time.perf_counter()
    alignment = align_capture(capture)
    seconds = time.perf_counter() - started
    images = [read_image(record)[0] for record in capture.images]
    reference = images[capture.bands.index(alignment.reference_band)]
    rows = []
    for record, image, reg in zip(capture.images, images, alignment.registrations, strict=True):
        if record.bands == (alignment.reference_band,):
            continue
        check = sift_check(reference, image, reg.homography)
        dx, dy = reg.initial_shift_px
        rows.append(
            f"| {label} | {record.bands[0]} | ({dx:+.1f}, {dy:+.1f}) | {reg.before.median_px:.1f} "
            f"| {reg.after.median_px:.2f} | {reg.after.rms_px:.2f} | {reg.after.max_px:.2f} "
            f"| {reg.after.tiles} | {reg.correlation:.2f} | {check.tie_points} "
            f"| {check.ours_median_px:.2f} | {check.sift_median_px:.2f} | {seconds:.1f} |"
        )
    return rows


def band_alignment_table(data: Path) -> str:
    panel, flight = ingest_folder(data / MICASENSE, ground_elevation_m=0.0).captures
    header = (
        "| capture | band | phase corr. shift before (px) | tiles median before (px) "
        "| tiles median after (px) | tiles RMS after | tiles max after | tiles | ECC corr. "
        "| SIFT tie points | SIFT check: ours (px) | SIFT check: SIFT's own H (px) "
        "| capture time (s) |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    rows = band_alignment_rows(panel, "IMG_0000 panel (hand-held, close)")
    rows += band_alignment_rows(flight, "IMG_0001 flight (~73 m higher)")
    return "\n".join([header, *rows])


# --- 2. eBee frames ----------------------------------------------------------------------


def tiny_record(path: Path, altitude_m: float) -> ImageRecord:
    """The frame's pose from its own EXIF/XMP, with the S110's real sensor size."""
    meta = read_metadata(path)
    assert meta.lon_deg is not None and meta.lat_deg is not None
    assert meta.yaw_deg is not None and meta.focal_length_mm is not None
    camera = Camera(
        name="Canon PowerShot S110 (48 px preview)",
        make=meta.make,
        model=meta.model,
        sensor_width_mm=S110_SENSOR_MM[0],
        sensor_height_mm=S110_SENSOR_MM[1],
        image_width_px=meta.width_px,
        image_height_px=meta.height_px,
        focal_length_mm=meta.focal_length_mm,
    )
    return ImageRecord(
        path=path,
        sha256="",
        captured_at=datetime(2015, 7, 31, tzinfo=UTC),
        lon_deg=meta.lon_deg,
        lat_deg=meta.lat_deg,
        altitude_m=altitude_m,
        camera=camera,
        yaw_deg=meta.yaw_deg,
        width_px=meta.width_px,
        height_px=meta.height_px,
    )


def orthophoto_table(data: Path) -> str:
    """Where our georeferencing puts each frame, against where the orthophoto lies."""
    with rasterio.open(data / ORTHOPHOTO) as src:
        ortho_crs, ortho_bounds = src.crs.to_string(), src.bounds
    ortho_box = box(*ortho_bounds)
    to_lonlat = Transformer.from_crs(ortho_crs, "EPSG:4326", always_xy=True)
    ortho_lon, ortho_lat = to_lonlat.transform(*ortho_box.centroid.coords[0])
    rows = [f"| orthophoto ({ortho_crs}, 0.5 m) | {ortho_lat:.5f} N, {-ortho_lon:.5f} W | — | — |"]
    for name in TINY_FRAMES:
        meta = read_metadata(data / "drone_photos/webodm_tiny" / name)
        assert meta.lon_deg is not None and meta.lat_deg is not None and meta.gps_altitude_m
        shape = footprint(tiny_record(meta.path, NOMINAL_AGL_M), ortho_crs)  # any height: 0 m²
        _, _, distance_m = _GEOD.inv(meta.lon_deg, meta.lat_deg, ortho_lon, ortho_lat)
        rows.append(
            f"| {name} (GPS {meta.gps_altitude_m:.0f} m) | {meta.lat_deg:.5f} N, "
            f"{-meta.lon_deg:.5f} W | {distance_m / 1000:,.0f} km "
            f"| {shape.intersection(ortho_box).area:.0f} m² |"
        )
    header = (
        "| image | centre | distance to the orthophoto | footprint ∩ orthophoto |\n"
        "|---|---|---:|---:|"
    )
    return "\n".join([header, *rows])


def _gray(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY).astype(np.float32)


def _predicted(first: ImageRecord, second: ImageRecord) -> np.ndarray:
    """Frame 1 pixel -> frame 2 pixel, as our direct georeferencing places both."""
    motion = ~frame_to_ground(second, FRAME_CRS) * frame_to_ground(first, FRAME_CRS)
    return np.array([[motion.a, motion.b, motion.c], [motion.d, motion.e, motion.f]])


def _rotated(motion: np.ndarray, angle_deg: float, centre: np.ndarray) -> np.ndarray:
    turn = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle_deg, 1.0)
    return (np.vstack((turn, [0, 0, 1])) @ np.vstack((motion, [0, 0, 1])))[:2]


def _ecc_best(
    first: np.ndarray, second: np.ndarray, starts: list[np.ndarray], mask: np.ndarray | None
) -> tuple[float, np.ndarray]:
    """The ECC (rotation + shift) solution with the best correlation over ``starts``."""
    solutions = []
    for start in starts:
        try:
            solutions.append(
                cv2.findTransformECC(
                    first,
                    second,
                    start.astype(np.float32),
                    cv2.MOTION_EUCLIDEAN,
                    (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6),
                    mask,
                    1,
                )
            )
        except cv2.error:
            continue
    correlation, warp = max(solutions, key=lambda item: item[0])
    return float(correlation), warp.astype(np.float64)


def _high_pass(image: np.ndarray) -> np.ndarray:
    return image - cv2.GaussianBlur(image, (0, 0), 4.0)


def _without_bright_corner(image: np.ndarray) -> np.ndarray:
    mask = np.ones(image.shape, np.uint8)
    mask[24:, 32:] = 0  # frame 1's over-exposed lower-right corner (moves with the camera)
    return mask


def frame_pair_rows(data: Path) -> list[tuple[str, float, np.ndarray]]:
    """Frame 1 -> frame 2 motion: from the poses, then by ECC on five reasonable
    preparations of the 48 x 36 px frames (each from 33 starts around the poses)."""
    paths = [data / "drone_photos/webodm_tiny" / name for name in TINY_FRAMES]
    first, second = (_gray(path) for path in paths)
    centre = np.array([first.shape[1] / 2, first.shape[0] / 2])
    starts = [
        _rotated(_predicted(*(tiny_record(path, altitude_m) for path in paths)), yaw_deg, centre)
        for altitude_m in TINY_ECC_STARTS_AGL_M
        for yaw_deg in TINY_ECC_STARTS_YAW_DEG
    ]
    poses = _predicted(*(tiny_record(path, NOMINAL_AGL_M) for path in paths))
    preparations = {
        "ECC on intensity": (first, second, None),
        "ECC on intensity, bright corner masked": (first, second, _without_bright_corner(first)),
        "ECC on intensity, blurred σ = 1 px": (
            cv2.GaussianBlur(first, (0, 0), 1.0),
            cv2.GaussianBlur(second, (0, 0), 1.0),
            None,
        ),
        "ECC on high-pass (σ = 4 px)": (_high_pass(first), _high_pass(second), None),
        "ECC on gradient magnitude": (gradient_magnitude(first), gradient_magnitude(second), None),
    }
    rows = [(f"our poses (XMP yaw, GPS) at {NOMINAL_AGL_M:.0f} m AGL", math.nan, poses)]
    for label, (a, b, mask) in preparations.items():
        rows.append((label, *_ecc_best(a, b, starts, mask)))
    return rows


def frame_pair_table(data: Path) -> str:
    """What the images say about the two frames' relative pose against our georeferencing.

    The height above ground is unknown (no DEM, GPS altitude only) and scales the shift the
    poses predict; the rotation and the direction of the shift do not depend on it.
    """
    rows = frame_pair_rows(data)
    paths = [data / "drone_photos/webodm_tiny" / name for name in TINY_FRAMES]
    record = tiny_record(paths[0], NOMINAL_AGL_M)
    centre = np.array([record.width_px / 2, record.height_px / 2, 1.0])
    pose_shift = rows[0][2] @ centre - centre[:2]
    baseline_m = np.linalg.norm(pose_shift) * NOMINAL_AGL_M / record.camera.focal_length_px
    lines = [
        "| frame 1 → frame 2 | ECC corr. | rotation | shift of the centre (px) "
        "| AGL fitting its length | direction − poses |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, correlation, motion in rows:
        shift = motion @ centre - centre[:2]
        agl_m = baseline_m / np.linalg.norm(shift) * record.camera.focal_length_px
        turn_deg = math.degrees(
            math.atan2(shift[1], shift[0]) - math.atan2(pose_shift[1], pose_shift[0])
        )
        rotation_deg = math.degrees(math.atan2(motion[1, 0], motion[0, 0]))
        lines.append(
            f"| {label} | {correlation:.2f} | {rotation_deg:+.1f}° "
            f"| ({shift[0]:+.1f}, {shift[1]:+.1f}) | {agl_m:.0f} m | {turn_deg:+.0f}° |"
        )
    return "\n".join(lines).replace("| nan |", "| — |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared/data folder")
    args = parser.parse_args()
    print("### MicaSense RedEdge band alignment (reference: green)\n")
    print(band_alignment_table(args.data))
    print("\n### eBee frames placed by direct georeferencing vs the WebODM orthophoto\n")
    print(orthophoto_table(args.data))
    print("\n### The two eBee frames against each other\n")
    print(frame_pair_table(args.data))


if __name__ == "__main__":
    main()
