"""The ``raqib`` command line: a thin layer over the flows and the stage functions.

A :class:`core.errors.RaqibError` becomes one clear line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.errors import RaqibError

app = typer.Typer(
    help="Raqib: drone surveys, crop health and construction monitoring for Berkane province.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
world_app = typer.Typer(help="The embedded synthetic Berkane world.", no_args_is_help=True)
app.add_typer(world_app, name="world")

out = Console()

WorkspaceOption = Annotated[
    Path | None, typer.Option(help="Output folder (default: the `workspace` setting).")
]


@app.command()
def demo(
    workspace: Annotated[Path, typer.Option(help="Output folder.")] = Path("workspace/demo"),
    size: Annotated[str, typer.Option(help="World size: 'default' (500x400 m) or 'small'.")] = (
        "default"
    ),
) -> None:
    """Generate the default world, fly and process two epochs, publish, print a summary."""
    import flows
    from core.settings import load_settings

    _quiet_user_errors()
    settings = load_settings(workspace=workspace)
    summary = flows.demo(settings, size=size, console=out)
    flows.print_demo_summary(summary, out)


@world_app.command("generate")
def world_generate(
    out_dir: Path,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same world).")] = 7,
    width_m: Annotated[float, typer.Option(help="East-west extent in metres.")] = 500.0,
    height_m: Annotated[float, typer.Option(help="North-south extent in metres.")] = 400.0,
) -> None:
    """Write a synthetic Berkane world (orthophotos, parcels, permits, projects, truth)."""
    from sim.world import generate

    world = generate(out_dir, seed=seed, width_m=width_m, height_m=height_m)
    out.print(f"world written to {world.root} ({width_m:.0f} x {height_m:.0f} m, seed {seed})")


@app.command()
def plan(
    aoi: Annotated[Path, typer.Argument(help="AOI polygon: GeoJSON, GeoPackage or KML.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="QGroundControl .plan")],
    gsd_cm: Annotated[float, typer.Option(help="Ground sampling distance (cm/px).")] = 3.0,
    camera: Annotated[str, typer.Option(help="Camera key in flights/cameras.toml.")] = (
        "dji_mavic_3e"
    ),
    front_overlap: float = 0.75,
    side_overlap: float = 0.65,
    speed_m_s: float = 8.0,
) -> None:
    """Plan a lawnmower survey over an AOI and write it as a QGroundControl plan."""
    import flows

    mission = flows.plan_mission_file(
        aoi,
        output,
        gsd_cm=gsd_cm,
        camera_key=camera,
        front_overlap=front_overlap,
        side_overlap=side_overlap,
        speed_m_s=speed_m_s,
    )
    out.print(
        f"{output}: {len(mission.waypoints)} waypoints, {mission.photo_count} photos, "
        f"{mission.distance_m / 1000:.2f} km, ~{mission.estimated_time_s / 60:.1f} min "
        f"at {mission.altitude_m:.0f} m AGL"
    )


@app.command()
def survey(
    world: Annotated[Path, typer.Option(help="A world folder from `raqib world generate`.")],
    epoch: Annotated[str, typer.Option(help="Which epoch of the world to fly.")] = "epoch1",
    workspace: WorkspaceOption = None,
) -> None:
    """Plan, fly the simulated vehicle, ingest, mosaic, analyse and publish one epoch."""
    import flows
    from core.settings import load_settings

    _quiet_user_errors()
    settings = load_settings(**({"workspace": workspace} if workspace else {}))
    result = flows.survey(world_dir=world, epoch=epoch, settings=settings)
    flows.print_epoch_result(result, out)


@app.command()
def process(
    frames: Annotated[Path, typer.Argument(help="Folder of georeferenced drone photos.")],
    parcels: Annotated[Path, typer.Option(help="Cadastral parcels (GeoPackage).")],
    permits: Annotated[Path, typer.Option(help="Permit records (CSV).")],
    captured_on: Annotated[str, typer.Option("--date", help="Capture date, YYYY-MM-DD.")],
    projects: Annotated[
        Path | None, typer.Option(help="Public projects (GeoPackage): not flagged as unpermitted.")
    ] = None,
    epoch: Annotated[str, typer.Option(help="Epoch name (output folder).")] = "",
    workspace: WorkspaceOption = None,
) -> None:
    """Process an existing folder of photos: ingest, mosaic, analyse, publish."""
    import flows
    from core.errors import InputError
    from core.settings import load_settings

    _quiet_user_errors()
    try:
        day = date.fromisoformat(captured_on)
    except ValueError as exc:
        raise InputError("--date", f"{captured_on!r} is not a date (YYYY-MM-DD)") from exc
    settings = load_settings(**({"workspace": workspace} if workspace else {}))
    result = flows.process(
        frames_dir=frames,
        parcels_path=parcels,
        permits_path=permits,
        epoch=epoch or day.isoformat(),
        captured_on=day,
        settings=settings,
        projects_path=projects,
    )
    flows.print_epoch_result(result, out)


class _NoTracebackForUserErrors(logging.Filter):
    """Prefect logs a failed run's exception with its traceback; a user mistake needs none."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], RaqibError):
            record.exc_info = None
            record.exc_text = None
        return True


def _quiet_user_errors() -> None:
    """Strip tracebacks of Raqib errors from every handler Prefect (or anyone) installed."""
    loggers = [logging.getLogger(), *map(logging.getLogger, logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if not any(isinstance(f, _NoTracebackForUserErrors) for f in handler.filters):
                handler.addFilter(_NoTracebackForUserErrors())


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: user mistakes become one line and a non-zero exit.

    Typer handles usage errors and ``--help`` itself (and exits); a RaqibError raised by a
    command comes out here.
    """
    try:
        app(args=argv)
    except RaqibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
