"""The ``raqib`` command line: a thin layer over the flows and the stage functions.

A :class:`core.errors.RaqibError` becomes one clear line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console

from core.errors import RaqibError
from core.types import IngestResult

if TYPE_CHECKING:
    from core.settings import Settings
    from models.label_training import TrainedModel
    from models.training import PixelModel

app = typer.Typer(
    help="Raqib: drone surveys, crop health and construction monitoring for Berkane province.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
world_app = typer.Typer(help="The embedded synthetic Berkane world.", no_args_is_help=True)
app.add_typer(world_app, name="world")
evaluate_app = typer.Typer(help="Measure the classifiers' accuracy.", no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")
feedback_app = typer.Typer(
    help="Inspectors' decisions on flags: check a feedback file, export flags to a spreadsheet.",
    no_args_is_help=True,
)
app.add_typer(feedback_app, name="feedback")
train_app = typer.Typer(help="Train the classifiers.", no_args_is_help=True)
app.add_typer(train_app, name="train")
detect_app = typer.Typer(
    help="Buildings and their changes on your own orthophotos (any CRS, 3-50 cm).",
    no_args_is_help=True,
)
app.add_typer(detect_app, name="detect")
schedule_app = typer.Typer(
    help="Scheduled commune surveys on a Prefect server (docs/operations.md).",
    no_args_is_help=True,
)
app.add_typer(schedule_app, name="schedule")

out = Console()

WorkspaceOption = Annotated[
    Path | None, typer.Option(help="Output folder (default: the `workspace` setting).")
]
DsmOption = Annotated[
    Path | None,
    typer.Option(
        help="The epoch's surface model GeoTIFF (metres, any CRS; ODM: odm_dem/dsm.tif): "
        "height is a building cue, and a rise since the last epoch a change."
    ),
]
ClusterOption = Annotated[
    str | None,
    typer.Option(
        help="dask.distributed scheduler (tcp://host:8786) to read photos and render mosaic "
        "tiles on (default: the `dask_cluster` setting)."
    ),
]


def _run_settings(workspace: Path | None, cluster: str | None) -> Settings:
    """The settings of a flow run: raqib.toml and RAQIB_* with the command's overrides; a
    Dask scheduler to use is checked to answer before the flow starts."""
    import flows
    from core.settings import load_settings

    overrides = {"workspace": workspace, "dask_cluster": cluster}
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    if settings.dask_cluster:
        flows.check_scheduler_reachable(settings.dask_cluster)
    return settings


@app.command()
def demo(
    workspace: Annotated[Path, typer.Option(help="Output folder.")] = Path("workspace/demo"),
    size: Annotated[str, typer.Option(help="World size: 'default' (500x400 m) or 'small'.")] = (
        "default"
    ),
    dsm: Annotated[
        bool,
        typer.Option(
            "--dsm/--no-dsm",
            help="Detect buildings with the simulator's surface model of each epoch (the "
            "stand-in for an ODM DSM) or from colour alone.",
        ),
    ] = True,
) -> None:
    """Generate the default world, fly and process two epochs, publish, print a summary."""
    import flows
    from core.settings import load_settings

    _quiet_user_errors()
    settings = load_settings(workspace=workspace)
    summary = flows.demo(settings, size=size, console=out, with_dsm=dsm)
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


@train_app.command("defaults")
def train_defaults(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Folder to write to (default: the package's models/default)."),
    ] = None,
    worlds: Annotated[
        Path | None,
        typer.Option(help="Folder for the training worlds (default: a temporary one)."),
    ] = None,
) -> None:
    """Rebuild the models Raqib ships from their recipe (simulator worlds 101-103, seeded:
    the same files' predictions every time); see docs/models.md."""
    import tempfile

    from flows import train_default_models
    from models.training import DEFAULT_MODELS_DIR

    target = out_dir or DEFAULT_MODELS_DIR
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="raqib-train-") as tmp:
        models = train_default_models(target, worlds or Path(tmp))
    out.print(f"models written: {models.health}, {models.buildings}")


BandsOption = Annotated[
    str | None,
    typer.Option(
        help="Which band is which, e.g. red=1,green=2,blue=3,nir=4 (default: the band "
        "descriptions, else the colour interpretation)."
    ),
]
IdColumnOption = Annotated[str, typer.Option(help="Column of --parcels with the parcel id.")]
TrainingImageOption = Annotated[
    Path, typer.Option(help="Orthophoto GeoTIFF (any CRS, 3-50 cm, RGB).")
]
LabelsLayerOption = Annotated[str | None, typer.Option(help="Layer of --labels to read.")]
CvBlockOption = Annotated[float, typer.Option(help="Side of the CV blocks, metres.")]
CvFoldsOption = Annotated[int, typer.Option(help="Cross-validation folds.")]
CvReportOption = Annotated[
    Path | None, typer.Option(help="Also write the cross-validation report (Markdown).")
]


@train_app.command("buildings")
def train_buildings_command(
    image: TrainingImageOption,
    labels: Annotated[
        Path, typer.Option(help="Building footprints (GPKG, GeoJSON...: e.g. an OSM extract).")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model file to write.")] = Path(
        "buildings.joblib"
    ),
    layer: LabelsLayerOption = None,
    bands: BandsOption = None,
    block_m: CvBlockOption = 50.0,
    folds: CvFoldsOption = 5,
    report: CvReportOption = None,
) -> None:
    """Train a building model on your orthophoto and footprints (offset and missing outlines
    tolerated), report its spatial cross-validation and save it for --model and the flows."""
    from models.label_training import train_buildings_on_labels
    from models.working_copy import parse_bands

    trained = train_buildings_on_labels(
        image, labels, layer=layer, bands=parse_bands(bands), block_m=block_m, n_folds=folds
    )
    _save_trained(trained, output, report)


@train_app.command("health")
def train_health_command(
    image: TrainingImageOption,
    labels: Annotated[Path, typer.Option(help="Labelled polygons (GPKG, GeoJSON...).")],
    class_column: Annotated[
        str, typer.Option(help="Column of --labels: healthy, stressed or bare.")
    ] = "health",
    output: Annotated[Path, typer.Option("-o", "--output", help="Model file to write.")] = Path(
        "crop_health.joblib"
    ),
    layer: LabelsLayerOption = None,
    bands: BandsOption = None,
    block_m: CvBlockOption = 50.0,
    folds: CvFoldsOption = 5,
    report: CvReportOption = None,
) -> None:
    """Train a crop health model on your orthophoto and labelled polygons, report its spatial
    cross-validation and save it for --model and the flows."""
    from models.label_training import train_health_on_labels
    from models.working_copy import parse_bands

    trained = train_health_on_labels(
        image,
        labels,
        class_column,
        layer=layer,
        bands=parse_bands(bands),
        block_m=block_m,
        n_folds=folds,
    )
    _save_trained(trained, output, report)


def _save_trained(trained: TrainedModel, output: Path, report: Path | None) -> None:
    """Save a :class:`models.label_training.TrainedModel`, print its line, write its report."""
    from core.io import atomic_path
    from models.training import save_model

    save_model(trained.model, output)
    if report is not None:
        with atomic_path(report) as tmp:
            tmp.write_text(trained.report.markdown(), encoding="utf-8")
    out.print(trained.summary(output), soft_wrap=True)


@app.command()
def health(
    image: Annotated[Path, typer.Argument(help="Orthophoto GeoTIFF (any CRS, 3-50 cm).")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="GeoPackage to write (COGs beside it).")
    ],
    parcels: Annotated[
        Path | None, typer.Option(help="Parcels to summarise (default: the whole image).")
    ] = None,
    id_column: IdColumnOption = "parcel_id",
    model: Annotated[
        Path | None, typer.Option(help="Crop health model (default: the one Raqib ships).")
    ] = None,
    bands: BandsOption = None,
    index: Annotated[
        str | None, typer.Option(help="Vegetation index (default: NDVI with NIR, else GLI).")
    ] = None,
    zones: Annotated[int, typer.Option(help="Management zones per parcel (3-5).")] = 3,
) -> None:
    """Crop health of an orthophoto: health classes (COG), per-parcel statistics and
    management zones, in the image's CRS."""
    from models.health_map import health_map
    from models.working_copy import parse_bands

    result = health_map(
        image,
        output,
        parcels_path=parcels,
        id_column=id_column,
        model_path=model,
        bands=parse_bands(bands),
        index=index,
        n_zones=zones,
    )
    out.print(result.summary(), soft_wrap=True)
    for note in result.notes:
        out.print(f"  note: {note}", soft_wrap=True, markup=False)


@app.command()
def trees(
    image: Annotated[Path, typer.Argument(help="Orthophoto GeoTIFF (any CRS, 3-50 cm).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="GeoPackage to write.")],
    parcels: Annotated[
        Path | None,
        typer.Option(help="Parcels to count trees and find row gaps in (default: count all)."),
    ] = None,
    id_column: IdColumnOption = "parcel_id",
    bands: BandsOption = None,
) -> None:
    """Tree crowns of an orthophoto as polygons and points; with --parcels, the trees missing
    from their rows and counts per parcel."""
    from models.tree_map import tree_map
    from models.working_copy import parse_bands

    result = tree_map(
        image, output, parcels_path=parcels, id_column=id_column, bands=parse_bands(bands)
    )
    out.print(result.summary(), soft_wrap=True)


@evaluate_app.command("crop-health")
def evaluate_crop_health(
    world_seed: Annotated[
        int | None,
        typer.Option(help="Score on a simulator world of this seed (truth known; default 7)."),
    ] = None,
    image: Annotated[
        Path | None, typer.Option(help="An orthomosaic (RGB GeoTIFF) instead of the simulator.")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="Labelled polygons (GPKG) over --image; without: unsupervised."),
    ] = None,
    class_column: Annotated[str, typer.Option(help="Column of --labels with the class.")] = (
        "health"
    ),
    layer: LabelsLayerOption = None,
    block_m: Annotated[
        float, typer.Option(help="Side of the cross-validation blocks, metres.")
    ] = 50.0,
    folds: CvFoldsOption = 5,
    write: Annotated[Path, typer.Option(help="Markdown report to write.")] = Path(
        "docs/crop_health_accuracy.md"
    ),
    save: Annotated[
        Path | None, typer.Option("--save-model", help="Also fit on all labels and save the model.")
    ] = None,
) -> None:
    """Cross-validate the crop-health classifier by spatial blocks (healthy / stressed / bare),
    print the per-class report and write it; without labels, fit the unsupervised fallback."""
    import tempfile

    from core.errors import InputError
    from models.unsupervised import train_health_unsupervised, unsupervised_report
    from models.validation import KAPPA_TARGET
    from sim.world import generate

    if image is not None and world_seed is not None:
        raise InputError("--world-seed", "give either --world-seed or --image, not both")
    if labels is not None and image is None:
        raise InputError("--labels", "labels need the --image they were drawn on")
    cv_options = f"--block-m {block_m:g} --folds {folds}"
    if image is not None and labels is None:
        model = train_health_unsupervised(image)
        body = unsupervised_report(model, image).markdown()
        _publish_health_report(f"--image {image}", body, write, model, save)
    elif image is not None and labels is not None:
        options = f"--image {image} --labels {labels} --class-column {class_column}"
        options += f" --layer {layer}" if layer else ""
        body, model = _cross_validated_health(
            [(image, labels)], class_column, layer, block_m, folds, None, fit=save is not None
        )
        _publish_health_report(f"{options} {cv_options}", body, write, model, save)
    else:
        seed = 7 if world_seed is None else world_seed
        with tempfile.TemporaryDirectory(prefix="raqib-evaluate-") as tmp:
            world = generate(Path(tmp), seed=seed)
            examples = [(world.paths.ortho(name), world.paths.truth) for name, _ in world.epochs]
            body, model = _cross_validated_health(
                examples, "health", "health", block_m, folds, KAPPA_TARGET, fit=save is not None
            )
        intro = f"Simulator world seed {seed} (500 x 400 m, both epochs; truth known).\n\n"
        _publish_health_report(
            f"--world-seed {seed} {cv_options}", intro + body, write, model, save
        )


@evaluate_app.command("construction")
def evaluate_construction(
    world_seed: Annotated[
        list[int] | None,
        typer.Option(help="Held-out simulator world seed; repeat for several (default 7)."),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="Building model to score (default: the one Raqib ships)."),
    ] = None,
    size: Annotated[
        str, typer.Option(help="Held-out world size: 'default' (500x400 m) or 'small'.")
    ] = "default",
    write: Annotated[Path, typer.Option(help="Markdown report to write.")] = Path(
        "docs/construction_accuracy.md"
    ),
    dsm: Annotated[
        bool, typer.Option("--dsm", help="Detect with each epoch's surface model (height).")
    ] = False,
) -> None:
    """Score the building model as the flows use it on held-out simulator worlds: buildings
    per epoch, new buildings between the epochs, and the flag reasons raised on each planted
    case with the world's parcels, permits and projects; print and write the report."""
    import tempfile

    import geopandas as gpd
    from rich.markdown import Markdown

    from core.errors import InputError
    from core.io import atomic_path
    from core.settings import Settings
    from flows import TRAINING_SEEDS
    from gis.flags import flag_new_buildings
    from gis.records import load_permits, load_projects
    from models.evaluation import EpochTruth, construction_markdown, flag_reason_checks
    from models.evaluation import evaluate_construction as score_construction
    from models.training import DEFAULT_BUILDINGS_MODEL, load_model
    from sim.world import generate

    sizes_m = {"default": (500.0, 400.0), "small": (200.0, 160.0)}
    if size not in sizes_m:
        raise InputError("--size", f"unknown size {size!r}; use one of {', '.join(sizes_m)}")
    seeds = world_seed or [7]
    if model is None and set(seeds) & set(TRAINING_SEEDS):
        raise InputError("--world-seed", f"seeds {TRAINING_SEEDS} trained the model: pick others")
    buildings_model = load_model(model or DEFAULT_BUILDINGS_MODEL)
    width_m, height_m = sizes_m[size]
    results, reasons = {}, {}
    with tempfile.TemporaryDirectory(prefix="raqib-evaluate-") as tmp:
        for seed in seeds:
            world = generate(Path(tmp) / str(seed), seed=seed, width_m=width_m, height_m=height_m)
            truth = {
                name: gpd.read_file(world.paths.truth, layer=f"buildings_{name}")
                for name, _ in world.epochs
            }
            parcels = gpd.read_file(world.paths.parcels)
            scene = f"world {seed}"
            results[scene] = score_construction(
                buildings_model,
                [
                    EpochTruth(
                        name,
                        world.paths.ortho(name),
                        truth[name],
                        world.paths.dsm(name) if dsm else None,
                    )
                    for name in truth
                ],
                parcels=parcels,
            )
            (last, captured_on) = world.epochs[-1]
            flags = flag_new_buildings(
                results[scene].changes,
                parcels,
                load_permits(world.paths.permits, parcel_ids=parcels["parcel_id"]).valid,
                captured_on=captured_on,
                settings=Settings(),
                projects=load_projects(world.paths.projects, crs=str(parcels.crs)).valid,
            )
            reasons[scene] = flag_reason_checks(flags, truth[last])
    options = " ".join(f"--world-seed {seed}" for seed in seeds)
    options += (f" --model {model}" if model else "") + (
        "" if size == "default" else f" --size {size}"
    )
    options += " --dsm" if dsm else ""
    which = (
        f"the model {model}"
        if model
        else f"the building model Raqib ships (trained on simulator worlds "
        f"{', '.join(map(str, TRAINING_SEEDS))}; docs/models.md)"
    )
    text = (
        f"# Construction accuracy\n\nGenerated by `raqib evaluate construction {options}` on "
        f"{date.today()}; rerun the command rather than editing this file.\n\n"
        f"Scored: {which}, used as the flows use it (blobs cut along the parcels, changes "
        f"confirmed on the earlier image), on the truth orthophotos of held-out worlds "
        f"({width_m:.0f} x {height_m:.0f} m, winter and summer epochs)"
        + (", with each epoch's surface model (height above ground)" if dsm else "")
        + ".\n\n"
        + construction_markdown(results, reasons=reasons)
    )
    write.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(write) as tmp_path:
        tmp_path.write_text(text, encoding="utf-8")
    out.print(Markdown(text))
    out.print(f"report written to {write}")


def _cross_validated_health(
    examples: list[tuple[Path, Path]],
    class_column: str,
    layer: str | None,
    block_m: float,
    folds: int,
    target_kappa: float | None,
    *,
    fit: bool,
) -> tuple[str, PixelModel | None]:
    """The spatial cross-validation report of crop health on ``examples`` (Markdown), and the
    model fitted on all of them when ``fit``."""
    from models.crop_health import train_health_on, validate_health

    report = validate_health(examples, class_column, block_m=block_m, n_folds=folds, layer=layer)
    model = train_health_on(examples, class_column, layer=layer) if fit else None
    return report.markdown(target_kappa=target_kappa), model


def _publish_health_report(
    options: str, body: str, path: Path, model: PixelModel | None, save: Path | None
) -> None:
    """Write the report under a header naming the command and the date, print it, save the
    model if asked."""
    from rich.markdown import Markdown

    from core.io import atomic_path
    from models.training import save_model

    text = (
        f"# Crop health accuracy\n\nGenerated by `raqib evaluate crop-health {options}` on "
        f"{date.today()}; rerun the command rather than editing this file.\n\n{body}"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp_path:
        tmp_path.write_text(text, encoding="utf-8")
    if save is not None and model is not None:
        save_model(model, save)
    out.print(Markdown(text))
    out.print(f"report written to {path}" + (f"; model saved to {save}" if save else ""))


ModelOption = Annotated[
    Path | None,
    typer.Option("--model", help="Building model file (default: the one Raqib ships)."),
]
BandsOption = Annotated[
    str | None,
    typer.Option(help="Band numbers, e.g. red=3,green=2,blue=1 (default: from the file)."),
]


@detect_app.command("buildings")
def detect_buildings(
    orthophoto: Annotated[Path, typer.Argument(help="Orthophoto GeoTIFF, any CRS, 3-50 cm.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="GeoPackage to write.")],
    model: ModelOption = None,
    parcels: Annotated[
        Path | None, typer.Option(help="Parcel polygons: buildings are cut along them.")
    ] = None,
    id_column: Annotated[str, typer.Option(help="Parcel id column of --parcels.")] = "parcel_id",
    bands: BandsOption = None,
    dsm: Annotated[
        Path | None,
        typer.Option(help="Surface model GeoTIFF (metres, any CRS): height is a building cue."),
    ] = None,
    captured_at: Annotated[
        str | None,
        typer.Option(
            help="Capture time, ISO 8601 (e.g. 2026-01-15T11:00+01:00; no offset: Morocco's), "
            "for the sun's shadows; default: the file's TIFF DATETIME tag."
        ),
    ] = None,
) -> None:
    """Building footprints (score, area_m2) in the orthophoto's CRS: layer `buildings`."""
    from core.capture_time import parse_captured_at
    from core.settings import load_settings
    from gis.publish import publish_geopackage
    from models.orthophoto_buildings import find_buildings
    from models.working_copy import parse_bands

    output.parent.mkdir(parents=True, exist_ok=True)
    found = find_buildings(
        orthophoto,
        model_path=model,
        parcels_path=parcels,
        id_column=id_column,
        bands=parse_bands(bands),
        settings=load_settings(),
        work_dir=output.resolve().parent,
        dsm_path=dsm,
        captured_at=parse_captured_at(captured_at) if captured_at else None,
    )
    publish_geopackage(output, {"buildings": found.buildings})
    out.print(found.summary(output), soft_wrap=True, markup=False)


@detect_app.command("change")
def detect_change(
    before: Annotated[Path, typer.Argument(help="The earlier orthophoto (its CRS is kept).")],
    after: Annotated[Path, typer.Argument(help="The later orthophoto, any CRS and grid.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="GeoPackage to write.")],
    model: ModelOption = None,
    parcels: Annotated[
        Path | None, typer.Option(help="Parcel polygons: structures are cut along them.")
    ] = None,
    id_column: Annotated[str, typer.Option(help="Parcel id column of --parcels.")] = "parcel_id",
    bands: BandsOption = None,
) -> None:
    """New, grown and demolished structures from BEFORE to AFTER: layer `structure_changes`.

    AFTER (any CRS and grid) is co-registered onto BEFORE first; output in BEFORE's CRS."""
    from core.settings import load_settings
    from gis.publish import publish_geopackage
    from models.orthophoto_buildings import find_changes
    from models.working_copy import parse_bands
    from pipeline.raster_alignment import aligned_onto

    output.parent.mkdir(parents=True, exist_ok=True)
    found = find_changes(
        before,
        after,
        align=aligned_onto,
        model_path=model,
        parcels_path=parcels,
        id_column=id_column,
        bands=parse_bands(bands),
        settings=load_settings(),
        work_dir=output.resolve().parent,
    )
    publish_geopackage(output, {"structure_changes": found.changes})
    out.print(found.summary(output), soft_wrap=True, markup=False)


@evaluate_app.command("buildings")
def evaluate_buildings(
    predicted: Annotated[Path, typer.Argument(help="Predicted footprints: vector file or mask.")],
    truth: Annotated[Path, typer.Argument(help="True footprints: vector file or mask.")],
    min_iou: Annotated[float, typer.Option(help="IoU for a match.")] = 0.5,
) -> None:
    """Object-level precision / recall / F1 at IoU >= --min-iou, and pixel IoU."""
    from models.footprint_scores import score_footprints

    out.print(score_footprints(predicted, truth, min_iou=min_iou).summary(), soft_wrap=True)


@evaluate_app.command("change")
def evaluate_change(
    predicted: Annotated[Path, typer.Argument(help="Predicted changes: vector file or mask.")],
    truth: Annotated[Path, typer.Argument(help="True changes: vector file or mask.")],
    min_iou: Annotated[float, typer.Option(help="IoU for a match.")] = 0.5,
) -> None:
    """Changed structures scored like buildings, and per `change` class (new, grown,
    demolished) when both files have that column."""
    from models.footprint_scores import score_footprints

    scores = score_footprints(predicted, truth, name="changes", min_iou=min_iou, by_change=True)
    out.print(scores.summary(), soft_wrap=True)


@feedback_app.command("check")
def feedback_check(
    file: Annotated[
        Path, typer.Argument(help="An epoch's published .gpkg (edited in QGIS) or a .csv.")
    ],
    workspace: WorkspaceOption = None,
) -> None:
    """Check inspectors' decisions (statuses, flag ids against the flags published in the
    workspace, duplicates): print the decisions per status and every problem with its line
    and field; exit 1 when there is a problem."""
    from collections import Counter

    import flows
    from core.settings import load_settings
    from gis.feedback import STATUSES, read_feedback

    settings = load_settings(**({"workspace": workspace} if workspace else {}))
    known = flows.published_flag_ids(settings.workspace)
    logging.getLogger("gis.feedback").setLevel(logging.ERROR)  # its problems are printed here
    result = read_feedback(file, flag_ids=known)
    counts = Counter(decision.status for decision in result.decisions)
    out.print(
        f"{file}: {len(result.decisions)} decisions ("
        + ", ".join(f"{counts[status]} {status}" for status in STATUSES)
        + f"), {len(result.problems)} problems"
    )
    if known is None:
        out.print(f"  no epoch published in {settings.workspace}: flag ids checked for form only")
    where = "feature" if file.suffix.lower() == ".gpkg" else "line"
    for problem in result.problems:
        out.print(f"  {where} {problem.line}, {problem.field}: {problem.problem}", markup=False)
    if result.problems:
        raise typer.Exit(1)


@feedback_app.command("export")
def feedback_export(
    epoch: Annotated[str, typer.Argument(help="Epoch name (its folder in the workspace).")],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="CSV to write (default: <workspace>/<epoch>/flags_feedback.csv)."
        ),
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Write an epoch's flags as a CSV for inspectors who work in a spreadsheet (UTF-8 with
    BOM, formula-safe); they fill in status and note, and the `feedback` setting brings it back."""
    import flows
    from core.settings import load_settings
    from gis.feedback import STATUSES, write_feedback_csv

    settings = load_settings(**({"workspace": workspace} if workspace else {}))
    flags = flows.epoch_flags(settings.workspace, epoch)
    path = write_feedback_csv(flags, output or settings.workspace / epoch / "flags_feedback.csv")
    out.print(
        f"{len(flags)} flags of {epoch} written to {path}; status: {', '.join(STATUSES)}. "
        f"Check it with `raqib feedback check {path}`, then set `feedback` in raqib.toml.",
        markup=False,
    )


def _overlaps(text: str) -> tuple[float, float]:
    """``"80/70"`` (percent, front/side) as shares; the planner validates the range."""
    from core.errors import InputError

    try:
        front, side = (float(part) / 100.0 for part in text.split("/"))
    except ValueError as exc:
        raise InputError("--overlap", f"{text!r} is not FRONT/SIDE in percent, e.g. 80/70") from exc
    return front, side


def _latlon(text: str, option: str) -> tuple[float, float]:
    from core.errors import InputError

    try:
        lat, lon = (float(part) for part in text.split(","))
    except ValueError as exc:
        raise InputError(option, f"{text!r} is not LAT,LON in degrees, e.g. 34.93,-2.30") from exc
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InputError(option, f"{text!r} is outside lat -90..90, lon -180..180")
    return lat, lon


def _spec(
    camera: str,
    camera_file: Path | None,
    gsd_cm: float | None,
    altitude_m: float | None,
    overlap: str,
    speed_m_s: float,
    **fields: object,
):
    """The survey spec the options describe; ``--altitude`` sets the GSD it gives."""
    from core.types import SurveySpec
    from flights.camera import get_camera

    found = get_camera(camera, camera_file)
    if altitude_m is not None:
        gsd_cm = found.gsd_cm(altitude_m)
    front, side = _overlaps(overlap)
    return SurveySpec(
        camera=found,
        gsd_cm=3.0 if gsd_cm is None else gsd_cm,
        front_overlap=front,
        side_overlap=side,
        speed_m_s=speed_m_s,
        **fields,
    )


CameraOption = Annotated[
    str, typer.Option(help="Camera key or alias (flights/cameras.toml, or --camera-file).")
]
CameraFileOption = Annotated[
    Path | None, typer.Option(help="TOML of extra cameras (default: the camera_file setting).")
]
GsdOption = Annotated[float | None, typer.Option("--gsd", help="Ground sampling distance, cm/px.")]
AltitudeOption = Annotated[
    float | None, typer.Option("--altitude", help="Height above ground (m), instead of --gsd.")
]
OverlapOption = Annotated[str, typer.Option(help="Front/side overlap in percent.")]
SpeedOption = Annotated[float, typer.Option("--speed", help="Survey speed, m/s.")]


@app.command()
def plan(
    aoi: Annotated[Path, typer.Argument(help="AOI polygon: GeoJSON, GeoPackage or KML.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
    camera: CameraOption = "mavic3e",
    camera_file: CameraFileOption = None,
    gsd_cm: GsdOption = None,
    altitude_m: AltitudeOption = None,
    overlap: OverlapOption = "75/65",
    speed_m_s: SpeedOption = 8.0,
    angle: Annotated[
        str, typer.Option(help="Grid angle (deg clockwise from north), or 'auto': fastest.")
    ] = "auto",
    crosshatch: Annotated[bool, typer.Option(help="Fly a second grid at +90°.")] = False,
    entry: Annotated[str, typer.Option(help="Entry corner: nearest, sw, se, nw, ne.")] = (
        "nearest"
    ),
    turnaround_m: Annotated[
        float, typer.Option("--turnaround", help="Run-in/out beyond the AOI, m.")
    ] = 10.0,
    home: Annotated[
        str | None, typer.Option(help="Take-off LAT,LON (default: the AOI's first vertex).")
    ] = None,
    dem: Annotated[
        Path | None, typer.Option(help="DEM GeoTIFF for terrain following (else flat).")
    ] = None,
    wind_m_s: Annotated[
        float | None, typer.Option("--wind", help="Forecast wind (m/s), checked.")
    ] = None,
) -> None:
    """Plan a survey over an AOI: .plan, .waypoints, .kml, DJI .kmz and a GPKG preview."""
    import flows
    from core.errors import InputError
    from core.settings import load_settings
    from flights.aoi import check_not_swapped, check_one_battery, load_aoi

    settings = load_settings()
    auto = angle.strip().lower() == "auto"
    try:
        angle_deg = 0.0 if auto else float(angle)
    except ValueError as exc:
        raise InputError("--angle", f"{angle!r} is neither 'auto' nor degrees") from exc
    spec = _spec(
        camera,
        camera_file or settings.camera_file,
        gsd_cm,
        altitude_m,
        overlap,
        speed_m_s,
        grid_angle_deg=angle_deg,
        crosshatch=crosshatch,
        entry_corner=entry,
        turnaround_m=turnaround_m,
    )
    area = load_aoi(aoi)  # refused early: swapped lon/lat, far beyond one battery
    check_not_swapped(aoi, area.bounds, settings.crs)
    check_one_battery(aoi, area, spec, settings.battery_reserve)
    planned = flows.plan_mission_files(
        aoi,
        output,
        spec,
        settings,
        auto_angle=auto,
        home_latlon=_latlon(home, "--home") if home else None,
        dem_path=dem,
        wind_m_s=wind_m_s,
    )
    flows.print_planned_mission(planned, out)


@app.command()
def fly(
    plan_file: Annotated[
        Path, typer.Argument(metavar="PLAN", help=".plan, .waypoints, .kml or DJI .kmz")
    ],
    connect: Annotated[
        str, typer.Option(help="MAVLink address; udp:HOST:PORT listens there.")
    ] = "udp:127.0.0.1:14550",
    log: Annotated[
        Path | None, typer.Option(help="Flight log GeoPackage (default: PLAN.flight.gpkg).")
    ] = None,
    min_battery_pct: Annotated[
        float, typer.Option("--min-battery", help="Refuse to take off below this charge, %.")
    ] = 90.0,
    rtl_battery_pct: Annotated[
        float, typer.Option("--rtl-battery", help="Return to launch below this charge, %.")
    ] = 25.0,
) -> None:
    """Upload a mission file to a vehicle, check it, fly it, log the flight (Ctrl-C: RTL)."""
    import signal
    import threading

    from core.settings import load_settings
    from flights.export import read_flyable_mission
    from flights.vehicle import PreflightLimits, fly_plan

    settings = load_settings()
    document = read_flyable_mission(plan_file)
    logging.getLogger("dronekit").setLevel(logging.ERROR)  # our own link checks report
    abort = threading.Event()
    log_path = log or plan_file.with_suffix(".flight.gpkg")
    previous = signal.signal(signal.SIGINT, lambda *_: abort.set())
    try:
        flight = fly_plan(
            connect,
            document.items,
            log_path=log_path,
            timeout_s=settings.vehicle_timeout_s,
            retries=settings.vehicle_retries,
            backoff_s=settings.vehicle_backoff_s,
            limits=PreflightLimits(min_battery_pct=min_battery_pct),
            rtl_battery_pct=rtl_battery_pct,
            abort_event=abort,
            crs=settings.crs,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    out.print(
        f"{plan_file}: {flight.outcome} in {flight.duration_s / 60:.1f} min, "
        f"{len(flight.samples)} telemetry samples; log {log_path}"
    )


@app.command()
def campaign(
    aois: Annotated[Path, typer.Argument(help="AOI layer (GeoPackage/GeoJSON) of a commune.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
    start: Annotated[str, typer.Option(help="First flying day, YYYY-MM-DD.")],
    camera: CameraOption = "mavic3e",
    camera_file: CameraFileOption = None,
    gsd_cm: GsdOption = None,
    altitude_m: AltitudeOption = None,
    overlap: OverlapOption = "75/65",
    speed_m_s: SpeedOption = 8.0,
    id_column: Annotated[str, typer.Option(help="Column with the AOI id.")] = "id",
    category_column: Annotated[
        str | None, typer.Option(help="Column to filter on, e.g. landuse.")
    ] = None,
    categories: Annotated[
        str | None, typer.Option(help="Comma-separated values of it to keep.")
    ] = None,
    sites: Annotated[Path | None, typer.Option(help="Launch-site points layer.")] = None,
    max_area_ha: Annotated[
        float | None, typer.Option(help="Split AOIs larger than this into several missions.")
    ] = None,
    window: Annotated[
        str | None, typer.Option(help="Daily flying window HH:MM-HH:MM inside daylight.")
    ] = None,
    auto_angle: Annotated[
        bool, typer.Option("--auto-angle", help="Fly each AOI at its fastest grid angle.")
    ] = False,
    dem: Annotated[
        Path | None, typer.Option(help="DEM GeoTIFF for terrain following (else flat).")
    ] = None,
) -> None:
    """Plan a campaign: every AOI of a layer as battery sorties packed into flying days;
    AOIs whose sorties would be unsafe (no-fly zones) are left out and listed."""
    from datetime import time

    from core.errors import InputError
    from core.settings import load_settings
    from flights.aoi_layer import load_aois, load_launch_sites
    from flights.campaign import CampaignOptions, plan_campaign
    from flights.campaign_files import write_campaign
    from flights.safety import load_no_fly_zones
    from flights.terrain import Dem

    settings = load_settings()
    try:
        first_day = date.fromisoformat(start)
        earliest, latest = (
            (time.fromisoformat(t) for t in window.split("-")) if window else (None, None)
        )
    except ValueError as exc:
        raise InputError("--start/--window", f"not a date / HH:MM-HH:MM: {exc}") from exc
    camera_db = camera_file or settings.camera_file
    spec = _spec(camera, camera_db, gsd_cm, altitude_m, overlap, speed_m_s)
    areas = load_aois(
        aois,
        id_column=id_column,
        category_column=category_column,
        categories=categories.split(",") if categories else None,
        crs=settings.crs,
    )
    options = CampaignOptions(
        reserve=settings.battery_reserve,
        max_mission_area_ha=max_area_ha,
        earliest=earliest,
        latest=latest,
        auto_angle=auto_angle,
        geofence_margin_m=settings.geofence_margin_m,
    )
    planned = plan_campaign(
        areas,
        spec,
        first_day,
        name=aois.stem,
        launch_sites=load_launch_sites(sites, crs=settings.crs) if sites else None,
        options=options,
        no_fly=load_no_fly_zones(settings.no_fly_zones),
        dem=Dem(dem) if dem else None,
        crs=settings.crs,
    )
    gpkg, csv = output / f"{aois.stem}_campaign.gpkg", output / f"{aois.stem}_campaign.csv"
    write_campaign(planned, gpkg, csv)
    out.print(
        f"{len(areas)} AOIs -> {len(planned.sorties)} missions over {len(planned.days)} days "
        f"from {first_day}: {planned.flight_time_s / 3600:.1f} h flying, "
        f"{planned.photo_count} photos, {planned.data_mb / 1000:.1f} GB, "
        f"{planned.road_m / 1000:.1f} km by road"
    )
    for note in planned.warnings:
        out.print(f"warning: {note}")
    out.print(f"missions: {gpkg}\nsummary:  {csv}")


@app.command()
def survey(
    world: Annotated[Path, typer.Option(help="A world folder from `raqib world generate`.")],
    epoch: Annotated[str, typer.Option(help="Which epoch of the world to fly.")] = "epoch1",
    workspace: WorkspaceOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rerun every stage, even unchanged ones (fly too).")
    ] = False,
    dsm: DsmOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Plan, fly the simulated vehicle, ingest, mosaic, analyse and publish one epoch;
    a rerun skips the stages whose inputs did not change (docs/operations.md, "Resume")."""
    import flows

    _quiet_user_errors()
    settings = _run_settings(workspace, cluster)
    if dsm is not None:
        flows.check_surface_model(dsm)  # before the flow starts its Prefect server
    result = flows.survey(world_dir=world, epoch=epoch, settings=settings, force=force, dsm=dsm)
    flows.print_epoch_result(result, out)


@schedule_app.command("serve")
def schedule_serve(
    world: Annotated[Path, typer.Option(help="A world folder from `raqib world generate`.")],
    commune: Annotated[
        list[str] | None,
        typer.Option(help="Commune to survey (as in the parcels); repeat; default: all."),
    ] = None,
    cron: Annotated[str, typer.Option(help="When to survey, a cron line.")] = "0 6 * * 1",
    timezone: Annotated[
        str, typer.Option(help="IANA time zone the cron line is read in.")
    ] = "Africa/Casablanca",
    epoch: Annotated[
        str | None, typer.Option(help="Epoch of the world to fly (default: its latest).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Surveys running at the same time.")] = 1,
    workspace: WorkspaceOption = None,
) -> None:
    """Register one survey deployment per commune on the Prefect server of PREFECT_API_URL
    and run them when due, until Ctrl-C (or SIGTERM); outputs go to <workspace>/<commune>."""
    import flows
    from core.settings import load_settings

    _quiet_user_errors()
    settings = load_settings(**({"workspace": workspace} if workspace else {}))
    schedule = flows.SurveySchedule(
        world=world,
        workspace=settings.workspace,
        communes=tuple(commune or ()),
        cron=cron,
        timezone=timezone,
        epoch=epoch,
    )
    flows.serve_schedules(schedule, limit=limit)


@schedule_app.command("list")
def schedule_list() -> None:
    """The commune surveys registered on the Prefect server, their cron, state and next runs."""
    import flows

    flows.print_schedules(flows.registered_schedules(), out)


@app.command()
def process(
    frames: Annotated[Path, typer.Argument(help="Folder of georeferenced drone photos.")],
    parcels: Annotated[Path, typer.Option(help="Cadastral parcels (GeoPackage).")],
    captured_on: Annotated[str, typer.Option("--date", help="Capture date, YYYY-MM-DD.")],
    permits: Annotated[
        Path | None,
        typer.Option(
            help="Permit records (CSV, GeoPackage, .json); default: the [permits] table of "
            "raqib.toml (a file or a JSON API, with its field mapping)."
        ),
    ] = None,
    projects: Annotated[
        Path | None,
        typer.Option(
            help="Public projects (GeoPackage...): tracked, and not flagged as unpermitted; "
            "default: the [projects] table of raqib.toml."
        ),
    ] = None,
    epoch: Annotated[str, typer.Option(help="Epoch name (output folder).")] = "",
    workspace: WorkspaceOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rerun every stage, even unchanged ones.")
    ] = False,
    dsm: DsmOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Process an existing folder of photos: ingest, mosaic, analyse, publish; a rerun
    skips the stages whose inputs did not change (docs/operations.md, "Resume")."""
    import flows
    from core.errors import InputError
    from pipeline.stac import check_collection_id

    _quiet_user_errors()
    try:
        day = date.fromisoformat(captured_on)
    except ValueError as exc:
        raise InputError("--date", f"{captured_on!r} is not a date (YYYY-MM-DD)") from exc
    settings = _run_settings(workspace, cluster)
    if permits is None and settings.permits is None:
        raise InputError("--permits", "give a permits file or a [permits] table in raqib.toml")
    inputs = {frames: "photo folder", parcels: "parcels file", permits: "permits file"}
    for path, what in (inputs | {projects: "projects file"}).items():
        if path is not None and not path.exists():  # before the flow starts its Prefect server
            raise InputError(path, f"{what} not found")
    if dsm is not None:
        flows.check_surface_model(dsm)
    check_collection_id(epoch or day.isoformat())  # it names the catalogue's collection
    result = flows.process(
        frames_dir=frames,
        parcels_path=parcels,
        permits_path=permits,
        epoch=epoch or day.isoformat(),
        captured_on=day,
        settings=settings,
        projects_path=projects,
        force=force,
        dsm=dsm,
    )
    flows.print_epoch_result(result, out)


@app.command()
def publish(
    epoch: Annotated[str, typer.Option(help="Epoch to republish (a name in epochs.json).")],
    workspace: WorkspaceOption = None,
) -> None:
    """Republish an epoch from its stored results, without re-running any model: the
    GeoPackage's styles and work list, the QGIS project, the inspectors' work lists, the
    report and, when `publish.postgis_url` is set, its PostGIS schema. Nothing is re-sent;
    the other epochs are left as they are."""
    import flows
    from core.settings import load_settings

    settings = load_settings(**({"workspace": workspace} if workspace else {}))
    published = flows.republish(settings, epoch)
    geopackage = flows.epoch_outputs(settings.workspace, epoch).geopackage
    for path in [geopackage, *published.paths]:
        out.print(f"{epoch}: {path}", soft_wrap=True)
    if published.postgis_schema:
        out.print(f"{epoch}: PostGIS schema {published.postgis_schema}", soft_wrap=True)


@app.command()
def ingest(
    frames: Annotated[Path, typer.Argument(help="Folder of drone photos (JPEG, TIFF bands).")],
    collection: Annotated[
        str | None, typer.Option(help="STAC collection (default: flight-<date>).")
    ] = None,
    ground_elevation_m: Annotated[
        float | None,
        typer.Option(
            "--ground-elevation",
            help="Ground height above sea level (m), for cameras that record only GPS altitude "
            "(default: the `ground_elevation_m` setting).",
        ),
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Read every photo's position and pose, skip bad ones with a reason, and add the rest
    to the workspace catalogue (images.gpkg + STAC); photos already there are not added again."""
    from rich.progress import Progress

    from core.settings import load_settings
    from pipeline.catalog import WORKSPACE_CATALOG, catalog_images
    from pipeline.ingest import ingest_with_settings, summary_line

    given = {"workspace": workspace, "ground_elevation_m": ground_elevation_m}
    settings = load_settings(**{name: value for name, value in given.items() if value is not None})
    with Progress(console=out, transient=True) as progress:
        bar = progress.add_task("reading photos", total=None)
        ingested = ingest_with_settings(frames, settings)
        progress.update(bar, description="cataloguing")
        update = catalog_images(
            ingested, settings.workspace / WORKSPACE_CATALOG, settings.crs, collection=collection
        )
    out.print(summary_line(ingested))
    _print_skipped(ingested)
    out.print(
        f"catalogue: {len(update.added)} added, {len(update.already_catalogued)} already there "
        f"({update.geopackage}, {update.stac_catalog}, collection {update.collection})"
    )


@app.command()
def mosaic(
    frames: Annotated[
        Path,
        typer.Argument(help="Folder of nadir photos, or of multispectral band files."),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Mosaic COG to write.")],
    refine: Annotated[
        bool, typer.Option(help="Co-register neighbouring frames before blending.")
    ] = True,
    cluster: Annotated[
        str | None,
        typer.Option(help="dask.distributed scheduler (tcp://host:8786) to render tiles on."),
    ] = None,
    dem: Annotated[
        Path | None,
        typer.Option(help="DEM GeoTIFF (any CRS) to orthorectify on (else flat ground)."),
    ] = None,
    dem_heights: Annotated[
        Literal["absolute", "nadir"],
        typer.Option(
            help="Camera height over the DEM: the photos' absolute altitude (same vertical "
            "datum as the DEM), or their altitude above the DEM under the camera (datum-free)."
        ),
    ] = "absolute",
    panel: Annotated[
        list[str] | None,
        typer.Option(
            help="Multispectral: calibration panel reading BAND=RAW_VALUE:REFLECTANCE, once "
            "per band (e.g. --panel nir=21500:0.49); else the sun sensor's irradiance if the "
            "photos have it, else raw values."
        ),
    ] = None,
) -> None:
    """Ingest a flight's photos and mosaic them into a Cloud-Optimised GeoTIFF.

    RGB photos give 3 uint8 bands; multispectral band files (MicaSense, Sequoia, DJI M3M),
    recognised from their metadata, give one float32 band per camera band, aligned per
    capture, named (blue, green, red, nir, rededge) and in reflectance when calibrated.
    """
    from rich.progress import Progress

    import flows
    from core.settings import load_settings
    from pipeline.radiometry import parse_panel

    settings = load_settings(**({"dask_cluster": cluster} if cluster else {}))
    panels = dict(parse_panel(reading) for reading in panel or ())
    with Progress(console=out, transient=True) as progress:
        bar = progress.add_task("mosaic tiles", total=None)

        def on_tile(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        raster, ingested = flows.mosaic_folder(
            frames,
            output,
            settings,
            refine=refine,
            on_tile=on_tile,
            dem=dem,
            dem_heights=dem_heights,
            panels=panels,
        )
    source = (
        f"{len(ingested.captures)} captures of {raster.count} bands"
        if flows.is_multispectral(ingested)
        else f"{len(ingested.images)} photos"
    )
    out.print(
        f"{output}: {raster.width} x {raster.height} px at {raster.transform.a:.3f} m "
        f"({raster.crs}) from {source}, {len(ingested.skipped)} skipped"
    )
    _print_skipped(ingested)


@app.command()
def merge(
    orthophotos: Annotated[
        list[Path], typer.Argument(help="Orthophoto GeoTIFFs (ODM, Pix4D, DJI Terra), any CRS.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Merged COG to write.")],
    crs: Annotated[
        str | None, typer.Option(help="Output CRS (default: the `crs` setting).")
    ] = None,
    resolution: Annotated[
        float | None, typer.Option(help="Output pixel size in CRS units (default: finest source).")
    ] = None,
    feather: Annotated[
        bool, typer.Option(help="Blend overlaps by distance to each source's edge.")
    ] = False,
) -> None:
    """Merge orthophoto tiles into one Cloud-Optimised GeoTIFF on a snapped grid."""
    from core.settings import load_settings
    from pipeline.orthophotos import grid_of_orthophotos, merge_orthophotos

    settings = load_settings(**({"crs": crs} if crs else {}))
    grid = grid_of_orthophotos(orthophotos, settings.crs, resolution)
    merged = merge_orthophotos(orthophotos, grid, output, method="feather" if feather else "first")
    raster = merged.raster
    used = len(orthophotos) - len(merged.skipped)
    out.print(
        f"{output}: {raster.width} x {raster.height} px at {raster.transform.a:.3f} "
        f"({raster.crs}) from {used} orthophotos, {len(merged.skipped)} skipped"
    )
    for skipped in merged.skipped:
        out.print(f"  skipped {skipped.path.name}: {skipped.reason}")


def _print_skipped(result: IngestResult) -> None:
    """One line per photo ingest left out, with its reason."""
    for skipped in result.skipped:
        out.print(f"  skipped {skipped.path.name}: {skipped.reason}")


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


def _unreadable_file(exc: OSError) -> str | None:
    """One line for a file the command could not read through: a raster GDAL fails to
    decode mid-way (truncated, corrupt) or a file without permission; None for any other
    OSError (a bug keeps its traceback). GDAL chains its messages from the generic
    ("Read failed") to the one naming the file and the precise one: those two are kept."""
    if isinstance(exc, PermissionError):
        return str(exc)
    if not type(exc).__module__.startswith("rasterio"):
        return None
    messages: list[str] = []
    cause: BaseException | None = exc.__cause__ or exc
    while cause is not None:
        text = str(cause).strip()
        if text and not any(text in earlier for earlier in messages):
            messages.append(text)
        cause = cause.__cause__
    midway = str(exc).startswith("Read failed")  # opened, then a block would not decode
    return "; ".join(messages) + (" (the raster is truncated or corrupt)" if midway else "")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: user mistakes become one line and a non-zero exit.

    Typer handles usage errors and ``--help`` itself (and exits); a RaqibError raised by a
    command comes out here, and so does a raster that cannot be read through.
    """
    try:
        app(args=argv)
    except RaqibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        line = _unreadable_file(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # typer's way of finishing, also on success
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
