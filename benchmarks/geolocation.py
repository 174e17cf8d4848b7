"""Geolocation accuracy of the frame mosaic on the simulator, before and after co-registration.

Generates a seeded world, flies the demo's survey over it on the MAVLink simulator (through
DroneKit, as ``raqib demo`` does) with a GNSS bias of ``--gnss-bias-m`` (plus the sim's
0.35 m per-photo noise, 1.5 deg gimbal-yaw noise and altitude bias), ingests the photos and
compares where our frame model puts check points (a 5 x 5 grid over each frame) with where
the TRUE poses the simulator recorded (``poses.csv``) put them. Three placements: GPS only
(EXIF/XMP), co-registered between neighbours, and co-registered and tied to a reference
orthophoto of another season (a georeferenced basemap standing in for ground control).
Prints a markdown table.

    .venv/bin/python benchmarks/geolocation.py [--seed 7 --width-m 300 --height-m 240]
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from shapely import contains_xy
from shapely.geometry import Polygon, box

import flows
from core.settings import load_settings
from core.types import Camera, ImageRecord, SurveySpec, Waypoint
from flights import vehicle as flight_link
from pipeline.coregister import coregister
from pipeline.footprint import frame_to_ground, ground_sampling_m
from pipeline.ingest import ingest_folder
from sim.camera import Pose
from sim.camera import frame_to_ground as true_frame_to_ground
from sim.vehicle import SimVehicle
from sim.world import World, generate

CHECK_GRID = 5
"""Check points per frame side (corners included)."""
SEAM_GRID_M = 5.0
"""Spacing of the ground points compared where two frames overlap."""
MIN_GROUND_SHARE = 0.5
"""Frames measured: at least this share of the (true) footprint sees the world's ground.
The survey's turns fly past the world's edge, where the simulator renders black: such
frames have nothing to match (over real ground they would)."""


@dataclass(frozen=True)
class Geolocation:
    """Errors (m) of a set of frame placements against the true ones.

    ``absolute``: check points against the truth. ``relative``: the same after removing the
    best 2-D similarity common to the whole block (the shift, rotation and scale that tie
    points alone cannot see). ``seam``: two overlapping frames' positions of the same ground
    point (doubled edges in the mosaic), no fit at all.
    """

    centre_rmse_m: float
    absolute_rmse_m: float
    relative_rmse_m: float
    seam_rmse_m: float
    common_shift_m: float
    common_rotation_deg: float
    common_scale_ppm: float


def geolocation(
    placed: Sequence[Affine], truth: Sequence[Affine], width_px: int, height_px: int
) -> Geolocation:
    """Errors of frame-to-ground affines ``placed`` against ``truth`` (same frame size)."""
    cols, rows = np.meshgrid(
        np.linspace(0, width_px, CHECK_GRID), np.linspace(0, height_px, CHECK_GRID)
    )
    pixels = np.column_stack((cols.ravel(), rows.ravel()))
    ours = np.vstack([_apply(t, pixels) for t in placed])
    true = np.vstack([_apply(t, pixels) for t in truth])
    centre = (width_px / 2, height_px / 2)
    centre_errors = [
        np.subtract(p @ centre, t @ centre) for p, t in zip(placed, truth, strict=True)
    ]
    fitted, shift, rotation_deg, scale = _similarity_fit(ours, true)
    return Geolocation(
        centre_rmse_m=_rmse(np.array(centre_errors)),
        absolute_rmse_m=_rmse(ours - true),
        relative_rmse_m=_rmse(fitted - true),
        seam_rmse_m=_rmse(_seam_offsets(placed, truth, width_px, height_px)),
        common_shift_m=float(np.hypot(*shift)),
        common_rotation_deg=rotation_deg,
        common_scale_ppm=(scale - 1.0) * 1e6,
    )


def _apply(transform: Affine, pixels: np.ndarray) -> np.ndarray:
    a, b, c, d, e, f = transform[:6]
    return np.column_stack(
        (a * pixels[:, 0] + b * pixels[:, 1] + c, d * pixels[:, 0] + e * pixels[:, 1] + f)
    )


def _rmse(offsets: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(np.square(offsets), axis=1)))) if len(offsets) else 0.0


def _similarity_fit(
    source: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """``source`` moved by the least-squares similarity onto ``target`` (Umeyama), and the
    similarity's shift (of the centroid), rotation (deg, counter-clockwise) and scale."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    s, t = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(t.T @ s)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign) / np.sum(s**2))
    fitted = scale * s @ rotation.T + target_mean
    rotation_deg = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return fitted, target_mean - source_mean, rotation_deg, scale


def _seam_offsets(
    placed: Sequence[Affine], truth: Sequence[Affine], width_px: int, height_px: int
) -> np.ndarray:
    """Where frames i and j put the same true ground point, minus each other, over every
    overlapping pair, on a ``SEAM_GRID_M`` grid of their true overlap."""
    corners = [(0, 0), (width_px, 0), (width_px, height_px), (0, height_px)]
    shapes = [Polygon([t @ c for c in corners]) for t in truth]
    offsets = []
    for i in range(len(shapes)):
        for j in range(i + 1, len(shapes)):
            overlap = shapes[i].intersection(shapes[j])
            if overlap.area < SEAM_GRID_M**2:
                continue
            left, bottom, right, top = overlap.bounds
            xs, ys = np.meshgrid(
                np.arange(left, right, SEAM_GRID_M), np.arange(bottom, top, SEAM_GRID_M)
            )
            ground = np.column_stack((xs.ravel(), ys.ravel()))
            ground = ground[contains_xy(overlap, ground[:, 0], ground[:, 1])]
            if len(ground):
                in_i = _apply(placed[i] @ ~truth[i], ground)
                in_j = _apply(placed[j] @ ~truth[j], ground)
                offsets.append(in_i - in_j)
    return np.vstack(offsets) if offsets else np.empty((0, 2))


def seen_share(truth: Affine, width_px: int, height_px: int, bounds: tuple[float, ...]) -> float:
    """Share of a frame's true footprint inside ``bounds`` (the world's ortho)."""
    corners = [(0, 0), (width_px, 0), (width_px, height_px), (0, height_px)]
    shape = Polygon([truth @ c for c in corners])
    return shape.intersection(box(*bounds)).area / shape.area


def true_frame_models(poses_csv: Path, camera: Camera) -> dict[str, Affine]:
    """Frame-to-ground affine of each photo (file name) from the simulator's true poses."""
    models = {}
    with poses_csv.open(encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            pose = Pose(
                float(row["true_easting_m"]),
                float(row["true_northing_m"]),
                float(row["true_altitude_agl_m"]),
                float(row["true_yaw_deg"]),
            )
            models[row["file"]] = true_frame_to_ground(camera, pose)
    return models


def fly_survey(world: World, epoch: str, out_dir: Path, *, gnss_bias_m: float, seed: int) -> Path:
    """Fly the demo's survey of ``world`` at ``epoch`` on the simulator; the frames folder.

    The simulator's GNSS bias random-walks within 1-3 m; it starts here at ``gnss_bias_m``
    (1-3 m) in a seeded direction.
    """
    settings = load_settings(workspace=out_dir / "workspace", sim_speedup=40.0)
    home = Waypoint(lat_deg=world.home_lonlat[1], lon_deg=world.home_lonlat[0], altitude_m=0.0)
    spec = SurveySpec(camera=flows.SURVEY_CAMERA, gsd_cm=flows.SURVEY_GSD_CM)
    mission, _ = flows.checked_mission(
        world.aoi_lonlat, spec, home, settings, name="geolocation", crs=world.crs
    )
    frames_dir = out_dir / f"frames_{epoch}"
    angle = np.random.default_rng(seed).uniform(0, 2 * math.pi)
    with SimVehicle(
        home_lonlat=world.home_lonlat,
        ground_elevation_m=world.ground_elevation_m,
        ortho_path=world.paths.ortho(epoch),
        camera=flows.SURVEY_CAMERA,
        out_dir=frames_dir,
        captured_at=flows.capture_start(world, epoch),
        speedup=settings.sim_speedup,
        seed=seed,
        crs=world.crs,
        gnss_bias_m=(gnss_bias_m * math.sin(angle), gnss_bias_m * math.cos(angle)),
    ) as sim:
        link = flight_link.connect_vehicle(sim.address, timeout_s=settings.vehicle_timeout_s)
        try:
            flight_link.upload_mission(link, mission, timeout_s=settings.vehicle_timeout_s)
            flight_link.fly_mission(
                link, timeout_s=max(600.0, 3 * mission.estimated_time_s / settings.sim_speedup)
            )
        finally:
            link.close()
        sim.wait_for_frames()
    return frames_dir


def placements(records: Sequence[ImageRecord], crs: str) -> list[Affine]:
    return [frame_to_ground(record, crs) for record in records]


@dataclass(frozen=True)
class Flight:
    """A simulated flight: its ingested records, their true frame models, what is measured."""

    world: World
    epoch: str
    records: list[ImageRecord]
    truth: list[Affine]
    measured: list[int]
    """Indices of the frames that see the world (see :data:`MIN_GROUND_SHARE`)."""
    gsd_m: float
    setup_s: float

    def measure(self, placed: Sequence[ImageRecord]) -> Geolocation:
        models = placements(placed, self.world.crs)
        width_px, height_px = self.records[0].width_px, self.records[0].height_px
        return geolocation(
            [models[k] for k in self.measured],
            [self.truth[k] for k in self.measured],
            width_px,
            height_px,
        )


def simulated_flight(
    root: Path, *, seed: int, width_m: float, height_m: float, gnss_bias_m: float
) -> Flight:
    """Generate a world in ``root``, fly its first epoch, ingest the photos."""
    start = time.perf_counter()
    world = generate(root / "world", seed=seed, width_m=width_m, height_m=height_m)
    epoch = world.epochs[0][0]
    frames = fly_survey(world, epoch, root, gnss_bias_m=gnss_bias_m, seed=seed)
    records = list(ingest_folder(frames).images)
    truth_by_file = true_frame_models(frames / "poses.csv", flows.SURVEY_CAMERA)
    truth = [truth_by_file[record.path.name] for record in records]
    width_px, height_px = records[0].width_px, records[0].height_px
    measured = [
        k
        for k, t in enumerate(truth)
        if seen_share(t, width_px, height_px, world.bounds) >= MIN_GROUND_SHARE
    ]
    return Flight(
        world=world,
        epoch=epoch,
        records=records,
        truth=truth,
        measured=measured,
        gsd_m=float(np.median([ground_sampling_m(record) for record in records])),
        setup_s=time.perf_counter() - start,
    )


def _row(name: str, result: Geolocation, gsd_m: float, wall_s: float, cpu_s: float) -> str:
    """A table row; ``wall_s`` and ``cpu_s``: co-registration time per frame."""

    def both(value_m: float) -> str:
        return f"{value_m:.3f} ({value_m / gsd_m:.1f})"

    return (
        f"| {name} | {both(result.centre_rmse_m)} | {both(result.absolute_rmse_m)} | "
        f"{both(result.relative_rmse_m)} | {both(result.seam_rmse_m)} | "
        f"{result.common_shift_m:.2f} m / {result.common_rotation_deg:+.3f}° / "
        f"{result.common_scale_ppm:+.0f} ppm | {wall_s:.2f} / {cpu_s:.2f} |"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7, help="world and flight seed")
    parser.add_argument("--width-m", type=float, default=300.0)
    parser.add_argument("--height-m", type=float, default=240.0)
    parser.add_argument("--gnss-bias-m", type=float, default=3.0, help="1-3 m")
    parser.add_argument("--keep", type=Path, help="work here and keep the files")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="raqib-geoloc-") as scratch:
        flight = simulated_flight(
            args.keep or Path(scratch),
            seed=args.seed,
            width_m=args.width_m,
            height_m=args.height_m,
            gnss_bias_m=args.gnss_bias_m,
        )
        rows = [_row("GPS only (EXIF/XMP)", flight.measure(flight.records), flight.gsd_m, 0.0, 0.0)]
        other_epoch = flight.world.epochs[1][0]
        for name, reference in (
            ("co-registered (neighbours)", None),
            (
                f"co-registered + reference ortho ({other_epoch})",
                flight.world.paths.ortho(other_epoch),
            ),
        ):
            wall_s, cpu_s = time.perf_counter(), time.process_time()
            refined = coregister(flight.records, flight.world.crs, reference=reference)
            frames = len(flight.records)
            wall_s = (time.perf_counter() - wall_s) / frames
            cpu_s = (time.process_time() - cpu_s) / frames
            rows.append(_row(name, flight.measure(refined), flight.gsd_m, wall_s, cpu_s))
    record = flight.records[0]
    command = " ".join(["benchmarks/geolocation.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"`.venv/bin/python {command}`\n")
    print(
        f"World {args.width_m:g} x {args.height_m:g} m (seed {args.seed}), epoch {flight.epoch}; "
        f"{len(flight.records)} frames of {record.width_px} x {record.height_px} px, "
        f"{len(flight.measured)} measured (the others see less than "
        f"{MIN_GROUND_SHARE:.0%} of the world), GSD {flight.gsd_m * 100:.1f} cm; "
        f"GNSS bias {args.gnss_bias_m:g} m + 0.35 m noise per photo, gimbal yaw noise 1.5°, "
        "height bias (σ 0.5 m) + 0.1 m noise; "
        f"world, flight and ingest {flight.setup_s:.0f} s.\n"
    )
    print(
        "| placement | frame centres RMSE m (GSD) | check points absolute RMSE m (GSD) | "
        "relative RMSE m (GSD) | seams RMSE m (GSD) | common shift / rotation / scale | "
        "s per frame (wall / CPU) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
