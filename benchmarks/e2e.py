"""End to end: plan → fly (simulator) → ingest → coregister → mosaic → analyses → publish on a
synthetic square world, with wall time, CPU time and peak RSS per stage (issue #9).

    .venv/bin/python benchmarks/e2e.py [--size-m 1000] [--gsd-cm 5] [--epochs 2]
        [--world-gsd-m 0.1] [--world DIR] [--workdir /tmp/raqib_e2e] [--keep]
        [--json out.json] [--trace rss.csv]

A survey as the ``survey`` flow runs it, in this process: each epoch is planned and flown
on the MAVLink simulator through DroneKit with the flow's own tasks (``plan_task``,
``fly_task``), then ``flows.process`` ingests, co-registers, mosaics, analyses and publishes
the photos on the world's grid. ``flows.survey`` itself flies one mission, which the safety
check refuses beyond one battery (1 km² at 5 cm needs about 106 min), so the world is cut into
the fewest west-to-east strips that each fit one battery, flown one after another, and their
photos gathered in one folder, as an operator copies several cards. The flight GSD is
``--gsd-cm`` (the benchmark sets ``flows.SURVEY_GSD_CM``; the demo flies 10 cm) and the mosaic
pixel the same (``mosaic_resolution_m``). World generation is the test bench, not Raqib: timed
apart.

Stages are consecutive slices of each epoch, so they add up to its wall time: plan (all
sorties) | fly (all sorties, simulated at ``--sim-speedup``) | ingest (+ the process flow's
start, reading parcels and records) | coregister (+ the building model) | mosaic | analyses
(health, vigour, trees, buildings, change, flags, evidence, projects) | publish (GeoPackage,
manifest, report, QGIS project, work lists, notifications). The cuts inside ``process`` are
Prefect's own task-run start and end times, read back from its API after the run.

Peak RSS is exact, not sampled: a thread reads Linux's resident high-water mark (``VmHWM``)
every ``SAMPLE_S`` and resets it (``/proc/self/clear_refs`` = 5), so each interval's peak is
known; a stage's peak is the largest over the intervals it overlaps (an interval spanning a
boundary counts for both sides). The simulator and DroneKit are threads of this process; the
only child is Prefect's temporary API server, whose current RSS is added at each sample.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

# Prefect reads these at import: offline, no telemetry, its state in a throw-away home.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="raqib-e2e-prefect-")
# registered before Prefect's own exit handlers, so it runs after its server has stopped
atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import rasterio  # noqa: E402
import shapely  # noqa: E402
from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterStartTime  # noqa: E402
from prefect.client.schemas.objects import TaskRun  # noqa: E402
from pyproj import Transformer  # noqa: E402
from rasterio.warp import transform_bounds  # noqa: E402
from shapely.geometry import Polygon, box  # noqa: E402

import flows  # noqa: E402
from core.errors import PlanError  # noqa: E402
from core.settings import Settings, load_settings  # noqa: E402
from core.types import Grid, SurveySpec, Waypoint  # noqa: E402
from flights.camera import get_camera  # noqa: E402
from sim.world import World, generate, load_world  # noqa: E402

SAMPLE_S = 0.2
API_PAGE = 200  # the most task runs Prefect's API returns at once
MIB = 1024 * 1024
STAGES = ("plan", "fly", "ingest", "coregister", "mosaic", "analyses", "publish")
MAX_SORTIES = 12
ANALYSIS_TASKS = (
    "building_model_task",
    "health_task",
    "vigour_task",
    "trees_task",
    "buildings_task",
    "change_task",
    "projects_task",
    "publish_task",
    "notify_task",
)


@dataclass(frozen=True)
class Interval:
    """One sampler interval: wall-clock end (s since the epoch), peak RSS in it, CPU so far."""

    end_s: float
    peak_rss_b: int
    cpu_s: float


class MemoryWatch:
    """Exact peak resident memory per interval of this process, on a background thread."""

    def __init__(self, period_s: float = SAMPLE_S, trace: Path | None = None) -> None:
        self.period_s = period_s
        self._trace = trace.open("w", encoding="utf-8") if trace else None
        self.intervals: list[Interval] = []
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2e-memory", daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._reset()
        self.start_s = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        if self._trace:
            self._trace.close()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()

    def _sample(self) -> None:
        children = self._process.children(recursive=True)
        peak = _high_water_mark_b() + sum(c.memory_info().rss for c in children)
        cpu = self._process.cpu_times()
        self._reset()
        self.intervals.append(Interval(time.time(), peak, cpu.user + cpu.system))
        if self._trace:  # a run stopped early still leaves its memory and CPU over time
            self._trace.write(
                f"{self.intervals[-1].end_s:.2f},{peak},{cpu.user + cpu.system:.2f}\n"
            )
            self._trace.flush()

    @staticmethod
    def _reset() -> None:
        Path("/proc/self/clear_refs").write_text("5")

    def peak_b(self, start_s: float, end_s: float) -> int:
        """Largest resident memory in any interval overlapping [start_s, end_s]."""
        begins = [self.start_s] + [i.end_s for i in self.intervals[:-1]]
        return max(
            (
                i.peak_rss_b
                for b, i in zip(begins, self.intervals, strict=True)
                if i.end_s >= start_s and b <= end_s
            ),
            default=0,
        )

    def cpu_s(self, start_s: float, end_s: float) -> float:
        """CPU seconds (user + system, all threads) between the samples nearest the bounds."""
        ends = np.array([i.end_s for i in self.intervals])
        cpus = np.array([i.cpu_s for i in self.intervals])
        return float(np.interp(end_s, ends, cpus) - np.interp(start_s, ends, cpus))


def _high_water_mark_b() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


@dataclass(frozen=True)
class Stage:
    epoch: str
    name: str
    wall_s: float
    cpu_s: float
    peak_rss_mib: float


@dataclass(frozen=True)
class EpochRun:
    epoch: str
    sorties: int
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    photos: int
    frame_px: tuple[int, int]
    frame_gsd_cm: float
    mosaic_px: tuple[int, int]
    mosaic_gsd_cm: float
    mosaic_mib: float
    buildings: int
    new_buildings: int
    flags: int
    tasks: dict[str, tuple[float, float]]
    """Task name: (wall s, peak RSS MiB) of its runs in the epoch."""


def task_runs_since(start: datetime) -> list[tuple[str, float, float]]:
    """(task name, start, end) in seconds since the epoch of the task runs since ``start``."""
    runs: list[TaskRun] = []
    with get_client(sync_client=True) as client:
        while page := client.read_task_runs(
            task_run_filter=TaskRunFilter(start_time=TaskRunFilterStartTime(after_=start)),
            limit=API_PAGE,
            offset=len(runs),
        ):
            runs.extend(page)
    return sorted(
        (run.name.rsplit("-", 1)[0], run.start_time.timestamp(), run.end_time.timestamp())
        for run in runs
        if run.start_time is not None and run.end_time is not None
    )


def process_stages(
    tasks: Sequence[tuple[str, float, float]], start_s: float, end_s: float
) -> dict[str, tuple[float, float]]:
    """The ``process`` flow run [start_s, end_s] cut into its stages at its tasks' ends."""

    def first(name: str) -> tuple[float, float]:
        found = [(s, e) for n, s, e in tasks if n == name]
        if not found:
            raise RuntimeError(f"no {name} run recorded between {start_s} and {end_s}")
        return min(found)

    cuts = [
        start_s,
        first("ingest_task")[1],
        first("coregister_task")[1],
        first("mosaic_task")[1],
        first("publish_task")[0],
        end_s,
    ]
    return {name: (a, b) for name, a, b in zip(STAGES[2:], cuts[:-1], cuts[1:], strict=True)}


def strips(world: World, crs: str, count: int) -> list[Polygon]:
    """The world's extent cut into ``count`` west-to-east strips, in lon/lat."""
    left, bottom, right, top = transform_bounds(world.crs, crs, *world.bounds)
    step = (right - left) / count
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def lonlat(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1]))

    return [
        shapely.transform(box(left + k * step, bottom, left + (k + 1) * step, top), lonlat)
        for k in range(count)
    ]


def sortie_areas(world: World, settings: Settings, home: Waypoint) -> list[Polygon]:
    """The fewest equal strips of the world whose missions each fit one battery (as
    ``flows.checked_mission`` judges them: the survey flow refuses a longer one)."""
    spec = SurveySpec(camera=flows.SURVEY_CAMERA, gsd_cm=flows.SURVEY_GSD_CM)
    for count in range(1, MAX_SORTIES + 1):
        areas = strips(world, settings.crs, count)
        try:
            for area in areas:
                flows.checked_mission(area, spec, home, settings, name="probe", crs=settings.crs)
        except PlanError:
            continue
        return areas
    raise PlanError(f"the world does not fit {MAX_SORTIES} battery sorties")


def fly_sorties(
    world: World, epoch: str, settings: Settings, areas: Sequence[Polygon], frames_dir: Path
) -> tuple[float, float]:
    """Plan and fly each sortie with the survey flow's tasks, then gather every frame into
    ``frames_dir`` (``S<k>_IMG_nnnn.JPG``, as an operator copies several cards). Returns the
    wall-clock ends of planning and of flying."""
    out_dir = settings.workspace / epoch
    home = Waypoint(lat_deg=world.home_lonlat[1], lon_deg=world.home_lonlat[0], altitude_m=0.0)
    missions = [
        flows.plan_task(
            area,
            home,
            f"{world.root.name}-{epoch}-s{k}",
            out_dir / f"sortie{k}",
            world.ground_elevation_m,
            settings,
        )[0]
        for k, area in enumerate(areas, start=1)
    ]
    planned_s = time.time()
    frames_dir.mkdir(parents=True, exist_ok=True)
    for k, mission in enumerate(missions, start=1):
        sortie_frames = out_dir / f"sortie{k}" / "frames"
        flows.fly_task(world, epoch, mission, sortie_frames, settings)
        for frame in sortie_frames.glob("*.JPG"):
            frame.rename(frames_dir / f"S{k}_{frame.name}")
    return planned_s, time.time()


def run_epoch(
    world: World, epoch: str, settings: Settings, watch: MemoryWatch
) -> tuple[EpochRun, list[Stage]]:
    """Survey one epoch: plan and fly battery sorties, then ``flows.process`` the photos on
    the survey's grid; cut the run into stages."""
    home = Waypoint(lat_deg=world.home_lonlat[1], lon_deg=world.home_lonlat[0], altitude_m=0.0)
    areas = sortie_areas(world, settings, home)
    frames_dir = settings.workspace / epoch / "frames"
    started = datetime.now().astimezone()
    start_s = time.time()
    planned_s, flown_s = fly_sorties(world, epoch, settings, areas, frames_dir)
    bounds = transform_bounds(world.crs, settings.crs, *world.bounds)
    result = flows.process(
        frames_dir,
        world.paths.parcels,
        world.paths.permits,
        epoch,
        dict(world.epochs)[epoch],
        settings,
        projects_path=world.paths.projects,
        grid=Grid.from_bounds(bounds, settings.mosaic_resolution_m, settings.crs),
    )
    end_s = time.time()
    tasks = [t for t in task_runs_since(started) if t[2] <= end_s + 1.0]
    spans = {"plan": (start_s, planned_s), "fly": (planned_s, flown_s)}
    spans |= process_stages(tasks, flown_s, end_s)
    stages = [
        Stage(epoch, name, b - a, watch.cpu_s(a, b), watch.peak_b(a, b) / MIB)
        for name, (a, b) in spans.items()
    ]
    with rasterio.open(result.mosaic.path) as mosaic:
        mosaic_gsd_cm = abs(mosaic.res[0]) * 100
    per_task: dict[str, tuple[float, float]] = {}
    for name, a, b in tasks:
        wall_s, peak_mib = per_task.get(name, (0.0, 0.0))
        per_task[name] = (wall_s + b - a, max(peak_mib, watch.peak_b(a, b) / MIB))
    camera = flows.SURVEY_CAMERA
    run = EpochRun(
        epoch=epoch,
        sorties=len(areas),
        wall_s=end_s - start_s,
        cpu_s=watch.cpu_s(start_s, end_s),
        peak_rss_mib=watch.peak_b(start_s, end_s) / MIB,
        photos=result.images,
        frame_px=(camera.image_width_px, camera.image_height_px),
        frame_gsd_cm=frame_gsd_cm(settings.workspace / epoch, len(areas)),
        mosaic_px=(result.mosaic.width, result.mosaic.height),
        mosaic_gsd_cm=mosaic_gsd_cm,
        mosaic_mib=result.mosaic.path.stat().st_size / MIB,
        buildings=result.buildings,
        new_buildings=result.new_buildings,
        flags=result.flags,
        tasks=per_task,
    )
    return run, stages


def frame_gsd_cm(out_dir: Path, sorties: int) -> float:
    """Median true GSD of the rendered frames: the simulator's true height above ground over
    the focal length in (preview) pixels, as ``sim.camera.frame_to_ground`` renders them."""
    heights = [
        np.genfromtxt(out_dir / f"sortie{k}" / "frames" / "poses.csv", delimiter=",", names=True)[
            "true_altitude_agl_m"
        ]
        for k in range(1, sorties + 1)
    ]
    return float(np.median(np.concatenate(heights)) / flows.SURVEY_CAMERA.focal_length_px * 100)


def markdown(
    args: argparse.Namespace,
    world_s: float,
    world_rss_mib: float,
    runs: Sequence[EpochRun],
    stages: Sequence[Stage],
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> str:
    """The results as the markdown RESULTS.md keeps."""
    epochs = [r.epoch for r in runs]
    full = get_camera("dji_mavic_3e")
    lines = [
        f"World {args.size_m:g} x {args.size_m:g} m, orthophoto at {args.world_gsd_m * 100:g} cm "
        f"(seed {args.seed}): generated in {world_s:.0f} s, peak RSS {world_rss_mib:.0f} MiB "
        "(test bench, not in the totals).",
        f"Load average (1/5/15 min) at start {'/'.join(f'{x:.2f}' for x in load[0])}, "
        f"at end {'/'.join(f'{x:.2f}' for x in load[1])}; {os.cpu_count()} cores.",
        "",
        "| stage | "
        + " | ".join(f"{e} wall s | {e} CPU s | {e} peak RSS MiB" for e in epochs)
        + " |",
        "|---|" + "---:|" * (3 * len(epochs)),
    ]
    for name in STAGES:
        cells = []
        for epoch in epochs:
            s = next(x for x in stages if x.epoch == epoch and x.name == name)
            cells.append(f"{s.wall_s:.1f} | {s.cpu_s:.1f} | {s.peak_rss_mib:.0f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(
        "| **total** | "
        + " | ".join(
            f"**{r.wall_s:.1f}** | **{r.cpu_s:.1f}** | **{r.peak_rss_mib:.0f}**" for r in runs
        )
        + " |"
    )
    lines.append("")
    for r in runs:
        altitude_m = r.frame_gsd_cm / 100 * flows.SURVEY_CAMERA.focal_length_px
        lines.append(
            f"- {r.epoch}: {r.sorties} sorties, {r.photos} photos of "
            f"{r.frame_px[0]} x {r.frame_px[1]} px at "
            f"{r.frame_gsd_cm:.2f} cm (true height {altitude_m:.1f} m; the full "
            f"{full.image_width_px} x {full.image_height_px} px camera there: "
            f"{full.gsd_cm(altitude_m):.2f} cm); mosaic {r.mosaic_px[0]} x {r.mosaic_px[1]} px "
            f"at {r.mosaic_gsd_cm:g} cm ({r.mosaic_mib:.0f} MiB COG); {r.buildings} buildings, "
            f"{r.new_buildings} new, {r.flags} flags."
        )
        detail = ", ".join(
            f"{n.removesuffix('_task')} {r.tasks[n][0]:.1f} s / {r.tasks[n][1]:.0f} MiB"
            for n in ANALYSIS_TASKS
            if n in r.tasks
        )
        lines.append(f"  Tasks (wall, peak RSS): {detail}.")
    total_s = sum(r.wall_s for r in runs)
    peak = max(r.peak_rss_mib for r in runs)
    lines.append(
        f"- All epochs: {total_s:.0f} s ({total_s / 60:.1f} min), peak RSS {peak:.0f} MiB "
        f"({peak / 1024:.2f} GiB); goal < 15 min and < 4 GiB."
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-m", type=float, default=1000.0, help="World side (m).")
    parser.add_argument("--gsd-cm", type=float, default=5.0, help="Flight GSD and mosaic pixel.")
    parser.add_argument("--world-gsd-m", type=float, default=0.1, help="World orthophoto pixel.")
    parser.add_argument("--epochs", type=int, choices=(1, 2), default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--sim-speedup",
        type=float,
        default=10.0,
        help="Simulated flight speed-up (the simulator must render every frame in time).",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/raqib_e2e"))
    parser.add_argument("--world", type=Path, help="Reuse a generated world (not timed).")
    parser.add_argument("--keep", action="store_true", help="Keep the workdir afterwards.")
    parser.add_argument("--json", type=Path, help="Also write the numbers as JSON here.")
    parser.add_argument(
        "--trace", type=Path, help="Write time, peak RSS (B), CPU s per interval to this CSV."
    )
    args = parser.parse_args(argv)

    flows.SURVEY_GSD_CM = args.gsd_cm  # the flight's GSD; the survey reads it at run time
    args.workdir.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    try:
        with MemoryWatch(trace=args.trace) as watch:
            start_s = time.time()
            if args.world:
                world = load_world(args.world)
            else:
                world = generate(
                    args.workdir / "world",
                    seed=args.seed,
                    width_m=args.size_m,
                    height_m=args.size_m,
                    gsd_m=args.world_gsd_m,
                )
            world_end_s = time.time()
            settings = load_settings(
                workspace=args.workdir / "workspace",
                mosaic_resolution_m=args.gsd_cm / 100.0,
                sim_speedup=args.sim_speedup,
            )
            flows.default_models(settings)
            with get_client(sync_client=True) as client:  # start Prefect's server untimed
                client.hello()
            runs, stages = [], []
            for epoch, _ in world.epochs[: args.epochs]:
                run, epoch_stages = run_epoch(world, epoch, settings, watch)
                runs.append(run)
                stages.extend(epoch_stages)
                print(
                    f"{epoch}: {run.wall_s:.0f} s, peak {run.peak_rss_mib:.0f} MiB", file=sys.stderr
                )
        world_s = world_end_s - start_s
        world_rss_mib = watch.peak_b(start_s, world_end_s) / MIB
        report = markdown(args, world_s, world_rss_mib, runs, stages, (load_start, os.getloadavg()))
        print(report)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "args": {k: str(v) for k, v in vars(args).items()},
                        "world_s": world_s,
                        "world_peak_rss_mib": world_rss_mib,
                        "epochs": [asdict(r) for r in runs],
                        "stages": [asdict(s) for s in stages],
                    },
                    indent=1,
                )
            )
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
