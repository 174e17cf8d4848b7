"""Prefect flows: ``survey`` (plan → fly → process one epoch) and ``process`` (photos → publish).

Every stage is a plain function of ``flights``, ``pipeline``, ``models`` or ``gis``; this
module only strings them together as tasks, with retries where a failure is transient.
It is the one place (with ``cli.py``) that knows every stage, and the only one importing
Prefect.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, available_timezones

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Prefect gives its temporary server 20 s to start: too little on a busy machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

import geopandas as gpd
import pandas as pd
import pyogrio
from prefect import flow, serve, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import MissingContextError
from prefect.futures import PrefectFuture
from prefect.logging import get_run_logger
from prefect.schedules import Cron
from prefect.tasks import exponential_backoff
from prefect.types.entrypoint import EntrypointType
from rasterio.shutil import copy as copy_raster
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from shapely.geometry import LineString, Polygon, box

from core.errors import InputError
from core.io import atomic_path, rewrite_as_cog
from core.settings import Settings, load_settings
from core.stages import StageBook, remove_leftovers, stage_key
from core.types import (
    Accuracy,
    Grid,
    ImageRecord,
    IngestResult,
    Mission,
    Raster,
    SurveySpec,
    Waypoint,
)
from flights import vehicle as flight_link
from flights.aoi import load_aoi, reproject
from flights.camera import get_camera, preview
from flights.export import write_mission_files
from flights.grid_angle import AngleChoice, best_grid_angle
from flights.plan import plan_survey
from flights.preview import write_preview
from flights.safety import check_mission, load_no_fly_zones, with_geofence
from flights.terrain import Dem, flat_terrain, follow_terrain
from gis.communes import commune_area, commune_names, commune_parcels
from gis.evidence import evidence_file_name, write_before_after
from gis.feedback import (
    FEEDBACK_LAYER,
    SAMPLE_LABELS,
    Decision,
    carry_feedback,
    collect_feedback,
    feedback_samples,
    parse_flag_id,
)
from gis.flags import flag_new_buildings
from gis.notify import Delivery, send_notifications
from gis.parcels import read_parcels
from gis.postgis import epoch_schema, publish_postgis
from gis.projects import HISTORY_TABLE as PROJECT_HISTORY_TABLE
from gis.projects import add_epoch, assess_projects, project_progress
from gis.projects import read_history as read_project_history
from gis.projects import write_history as write_project_history
from gis.publish import list_layers, publish_geopackage
from gis.qgis_project import write_qgis_project
from gis.record_api import HttpOptions
from gis.records import RecordSource, RecordsResult, load_permits, load_projects, record_source
from gis.report import (
    ACCURACY_FILE,
    EpochOutputs,
    MeasuredAccuracy,
    read_accuracy,
    write_accuracy,
    write_report,
)
from gis.republish import republish_geopackage
from gis.worklists import WORK_LIST_LAYER, CommuneWorkList, work_list, write_work_lists
from gis.zoning import Zoning, read_zoning
from models.change import confirm_changes, new_buildings
from models.construction import detect_buildings, train_buildings_on
from models.crop_health import (
    HEALTH_CLASSES,
    classify_health,
    parcel_health,
    train_health,
    train_health_on,
)
from models.evaluation import class_scores, flag_scores, object_scores
from models.health_trend import HISTORY_TABLE as PARCEL_HISTORY_TABLE
from models.health_trend import declining_parcels, parcel_history, read_history, write_history
from models.height import check_dsm
from models.indices import index_raster
from models.training import (
    DEFAULT_BUILDINGS_MODEL,
    DEFAULT_HEALTH_MODEL,
    PixelModel,
    load_model,
    save_model,
    softened_copy,
)
from models.trees import detect_trees, missing_trees, trees_per_parcel
from models.unsupervised import train_health_unsupervised
from models.windows import open_georaster
from models.zonal import parcel_statistics
from models.zones import write_prescription, zones_of_parcels
from pipeline.catalog import WORKSPACE_CATALOG, catalog_images, images_frame, skipped_frame
from pipeline.coregister import coregister
from pipeline.footprint import footprint, ground_sampling_m
from pipeline.ingest import PhotoRead, ingest_with_settings
from pipeline.mosaic import (
    TILE_RETRIES,
    Frame,
    Tile,
    TileFailure,
    TileJob,
    failed_tiles,
    failed_tiles_frame,
    failure_text,
    mosaic_frames,
    render_threaded,
    submitted_in_order,
)
from pipeline.multispectral_mosaic import (
    coregister_captures,
    mosaic_captures,
    multispectral_captures,
)
from pipeline.radiometry import PanelReading
from pipeline.terrain_dem import (
    HeightRule,
    camera_elevation_m,
    check_dem,
    footprint_on_dem,
    open_dem,
)
from sim.vehicle import SimVehicle
from sim.world import World, generate, load_world

LOG = logging.getLogger("raqib.flows")
GEOPACKAGE = "raqib.gpkg"
EPOCHS_MANIFEST = "epochs.json"
MULTISPECTRAL = "multispectral"
"""Manifest ``kind`` of an epoch flown with a multispectral camera (vigour layers only)."""
SURVEY_CAMERA = preview(get_camera("dji_mavic_3e"), 4)
SURVEY_GSD_CM = 10.0
TRAINING_SEEDS = (101, 102, 103)
"""Simulator worlds the shipped models are trained on (never used to score them)."""
TRAINING_SIZES_M = ((300.0, 240.0), (500.0, 400.0), (500.0, 400.0))
BUILDING_SAMPLES = 60000
"""Pixels per class the shipped building model is fitted on."""
SOFTENED_SIGMA_PX = 0.8
"""Blur of the softened copies the building model also trains on: the simulator's crisp
render gives bare soil a 0.5 m texture of 11 grey levels, a survey mosaic of the same ground
6 (resampled photos); trained on crisp images only, the model took smooth soil for roofs."""
AGRICULTURAL_USES = ("orchard", "vineyard", "cereal", "vegetables", "bare")
DEMO_SIZES_M = {"default": (500.0, 400.0), "small": (200.0, 160.0)}
DEMO_DSM = (
    "the simulator's DSM of each epoch (blurred edges, correlated noise) stands in for the "
    "odm_dem/dsm.tif an OpenDroneMap run of the photos would give"
)
HISTORY_GEOPACKAGE = "crop_health_history.gpkg"
"""Workspace file holding every epoch's per-parcel index statistics (table parcel_history)."""
INDEX_RASTER = "vegetation_index.tif"
PROJECT_HISTORY_GEOPACKAGE = "project_history.gpkg"
"""Workspace file holding every epoch's progress of the public projects (table project_history)."""
PROJECT_ARCHIVE = "project_archive"
"""Workspace folder of the projects' dated photos: ``<project_id>/<YYYY-MM-DD>.png``."""
TRAINING_WORLDS = "training_worlds"
"""Folder beside a workspace's models: the synthetic worlds a building model is refitted on."""
EVIDENCE = "evidence"
"""Epoch folder of the flags' before / after chips: ``<parcel_id>_<reason>.png``."""
WORK_LISTS = "work_lists"
"""Epoch folder of the inspectors' work lists: ``<commune>.html`` / ``.csv`` / ``.png``."""
NOTIFICATIONS_LEDGER = "notifications.sqlite"
"""Workspace file recording which flag was sent on which channel (each is sent once)."""
EPOCH_DSM = "dsm.tif"
"""The epoch folder's copy of the surface model its run was given (a GeoTIFF): the next
epoch's change stage compares its heights with this one's."""
TILES_IN_FLIGHT_PER_THREAD = 2
"""Mosaic tiles submitted ahead of the writer per worker thread: keeps every worker busy
while bounding the finished tiles held in memory (about 4 MB per 1024 px tile)."""


@dataclass(frozen=True)
class Models:
    """Paths of the trained classifiers a flow uses."""

    health: Path
    buildings: Path


@dataclass(frozen=True)
class EpochResult:
    """What one epoch's processing produced."""

    epoch: str
    captured_on: date
    out_dir: Path
    geopackage: Path
    mosaic: Raster
    images: int
    skipped: tuple[tuple[str, str], ...]
    buildings: int
    new_buildings: int
    flags: int
    mission_plan: Path | None = None
    zones: int = 0
    declining: tuple[str, ...] = ()
    """Parcels whose vegetation index dropped since the previous epoch beyond their peers'."""
    undelivered: tuple[str, ...] = ()
    """Notifications that failed (retried on the next run), in words."""
    dsm: Path | None = None
    """The epoch's copy of the surface model buildings were detected with (:data:`EPOCH_DSM`)."""


# -- tasks -------------------------------------------------------------------------------


@task(cache_policy=NO_CACHE)
def plan_task(
    aoi_lonlat: Polygon,
    home: Waypoint,
    name: str,
    out_dir: Path,
    home_alt_amsl_m: float,
    settings: Settings,
) -> tuple[Mission, Path]:
    """Plan the survey (grid at 0°, as the simulator renders it), check it is safe, and
    write it as .plan, .waypoints, .kml and .kmz plus a GPKG preview."""
    spec = SurveySpec(camera=SURVEY_CAMERA, gsd_cm=SURVEY_GSD_CM)
    mission, _ = checked_mission(aoi_lonlat, spec, home, settings, name=name, crs=settings.crs)
    files = write_mission_files(mission, out_dir, "mission", home_alt_amsl_m=home_alt_amsl_m)
    write_preview(mission, out_dir / "mission_preview.gpkg", settings.crs)
    return mission, files.paths["plan"]


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=exponential_backoff(10))
def fly_task(
    world: World, epoch: str, mission: Mission, frames_dir: Path, settings: Settings
) -> int:
    """Fly the mission on the MAVLink simulator through DroneKit; frames land in frames_dir."""
    start = capture_start(world, epoch)
    shutil.rmtree(frames_dir, ignore_errors=True)
    with SimVehicle(
        home_lonlat=world.home_lonlat,
        ground_elevation_m=world.ground_elevation_m,
        ortho_path=world.paths.ortho(epoch),
        camera=SURVEY_CAMERA,
        out_dir=frames_dir,
        captured_at=start,
        speedup=settings.sim_speedup,
        seed=zlib.crc32(epoch.encode()),  # a stable GNSS error per epoch
        crs=world.crs,
    ) as sim:
        retries, backoff_s = settings.vehicle_retries, settings.vehicle_backoff_s
        link = flight_link.connect_vehicle(
            sim.address, settings.vehicle_timeout_s, retries=retries, backoff_s=backoff_s
        )
        try:
            flight_link.upload_mission(
                link,
                mission,
                timeout_s=settings.vehicle_timeout_s,
                retries=retries,
                backoff_s=backoff_s,
            )
            log = flight_link.fly_mission(
                link, timeout_s=max(600.0, 3 * mission.estimated_time_s / settings.sim_speedup)
            )
            log.write_csv(frames_dir.parent / "flight_log.csv")
        finally:
            link.close()
        sim.wait_for_frames()
    return len(list(frames_dir.glob("*.JPG")))


@task(cache_policy=NO_CACHE)
def ingest_task(frames_dir: Path, epoch: str, settings: Settings) -> IngestResult:
    """Ingest the photos and add them to the workspace catalogue (STAC collection ``epoch``);
    photos catalogued before, by a rerun or ``raqib ingest``, are not added again."""
    ingested = ingest_photos(frames_dir, settings)
    if ingested.images:
        update = catalog_images(
            ingested, settings.workspace / WORKSPACE_CATALOG, settings.crs, collection=epoch
        )
        LOG.info("catalogue %s: %d photos added", update.geopackage, len(update.added))
    return ingested


@task(cache_policy=NO_CACHE)
def coregister_task(
    result: IngestResult, crs: str, reference: Path | None
) -> tuple[ImageRecord, ...]:
    """Refine frame poses by matching neighbours (and the previous epoch's mosaic)."""
    return coregister(result.images, crs, reference=reference)


@task(name="ingest_photo", cache_policy=NO_CACHE)
def ingest_photo_task(read: Callable[[Path], PhotoRead], path: Path) -> PhotoRead:
    """One photo's hash and metadata (``pipeline.ingest.read_photo``), wherever it runs."""
    return read(path)


def submit_photos(read: Callable[[Path], PhotoRead], paths: Sequence[Path]) -> list[PhotoRead]:
    """A :data:`pipeline.ingest.PhotoMapper` over Prefect tasks on the flow's task runner."""
    futures = [ingest_photo_task.submit(read, path) for path in paths]
    return [future.result() for future in futures]


@flow(name="ingest", validate_parameters=False)
def ingest_flow(frames_dir: Path, settings: Settings) -> IngestResult:
    """The photos of ``frames_dir``, each read by an ``ingest_photo`` task of this flow."""
    return ingest_with_settings(frames_dir, settings, map_photos=submit_photos)


def ingest_photos(frames_dir: Path, settings: Settings) -> IngestResult:
    """Ingest ``frames_dir`` here, or photo by photo on the ``dask_cluster`` when it is set."""
    if not settings.dask_cluster:
        return ingest_with_settings(frames_dir, settings)
    from prefect_dask import DaskTaskRunner  # imports dask.distributed: only when asked

    runner = DaskTaskRunner(address=settings.dask_cluster)
    return ingest_flow.with_options(task_runner=runner)(frames_dir, settings)


@task(name="render_tile", cache_policy=NO_CACHE, retries=TILE_RETRIES, retry_delay_seconds=1)
def render_tile_task(
    render: Callable[..., Tile], frames: tuple[Frame, ...], grid: Grid, window: Window
) -> Tile:
    """One mosaic tile (``pipeline.mosaic.render_tile``), on whichever worker runs it."""
    return render(frames, grid, window)


def submit_tiles_in_order(
    render: Callable[..., Tile], jobs: Iterable[TileJob], *, in_flight: int
) -> Iterator[Tile]:
    """A :data:`pipeline.mosaic.TileMapper` over Prefect tasks: keeps ``in_flight`` tiles
    submitted to the flow's task runner and yields them in order
    (:func:`pipeline.mosaic.submitted_in_order`); a tile whose task failed (after its
    retries) as a :class:`pipeline.mosaic.TileFailure`."""
    submit = partial(render_tile_task.submit, render)
    for future in submitted_in_order(lambda job: submit(*job), jobs, in_flight=in_flight):
        yield tile_or_failure(future)


def tile_or_failure(future: PrefectFuture[Tile]) -> Tile | TileFailure:
    """The tile of a finished ``render_tile`` task, or its error."""
    try:
        return future.result()
    except Exception as exc:  # the task's own error: the writer leaves the tile as no-data
        return TileFailure(failure_text(exc))


@flow(name="mosaic", validate_parameters=False)
def mosaic_flow(
    records: tuple[ImageRecord, ...],
    grid: Grid,
    out_path: Path,
    on_tile: Callable[[int, int], None] | None = None,
    dem: Path | None = None,
    dem_heights: HeightRule = "absolute",
) -> Raster:
    """The mosaic with each output tile a ``render_tile`` task on this flow's task runner."""
    in_flight = TILES_IN_FLIGHT_PER_THREAD * task_runner_threads()
    return mosaic_frames(
        records,
        grid,
        out_path,
        on_tile=on_tile,
        map_tiles=partial(submit_tiles_in_order, in_flight=in_flight),
        dem=dem,
        dem_heights=dem_heights,
    )


@task(cache_policy=NO_CACHE)
def multispectral_mosaic_task(
    ingested: IngestResult, grid: Grid, out_path: Path, crs: str
) -> Raster:
    """A multispectral flight's captures, co-registered, as one band per camera band
    (``pipeline.multispectral_mosaic``; reflectance from the sun sensor when there is one)."""
    return mosaic_captures(
        coregister_captures(multispectral_captures(ingested), crs), grid, out_path
    )


def is_multispectral(ingested: IngestResult) -> bool:
    """Whether the flight is of band files (one band per file) rather than colour photos."""
    return any(len(image.bands) == 1 for image in ingested.images)


@task(cache_policy=NO_CACHE)
def mosaic_task(records: tuple[ImageRecord, ...], grid: Grid, out_path: Path) -> Raster:
    """The mosaic on this machine, its tiles rendered on one thread per core."""
    return mosaic_frames(
        records, grid, out_path, map_tiles=partial(render_threaded, threads=os.cpu_count() or 1)
    )


def mosaic_on_cluster(
    records: tuple[ImageRecord, ...],
    grid: Grid,
    out_path: Path,
    address: str,
    on_tile: Callable[[int, int], None] | None = None,
    dem: Path | None = None,
    dem_heights: HeightRule = "absolute",
) -> Raster:
    """:func:`mosaic_flow` with its tiles on the dask.distributed scheduler at ``address``."""
    from prefect_dask import DaskTaskRunner  # imports dask.distributed: only when asked

    return mosaic_flow.with_options(task_runner=DaskTaskRunner(address=address))(
        records, grid, out_path, on_tile, dem, dem_heights
    )


def check_scheduler_reachable(address: str, timeout_s: float = 5.0) -> None:
    """InputError naming the ``dask_cluster`` setting unless a TCP connection to the
    scheduler at ``address`` (tcp://host:port) opens within ``timeout_s``."""
    parsed = urlsplit(address)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme != "tcp" or not parsed.hostname or port is None:
        raise InputError(
            "dask_cluster", f"{address!r} is not a scheduler address (tcp://host:port)"
        )
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
    except OSError as exc:
        raise InputError("dask_cluster", f"no Dask scheduler answers at {address} ({exc})") from exc


def task_runner_threads() -> int:
    """How many tasks the current flow's runner runs at once (threads of all Dask workers)."""
    context = FlowRunContext.get()
    client = getattr(context.task_runner, "client", None) if context else None
    if client is not None:  # a DaskTaskRunner's
        return max(1, sum(client.nthreads().values()))
    return os.cpu_count() or 1


@task(cache_policy=NO_CACHE)
def health_task(
    models: Models, mosaic: Raster, parcels: gpd.GeoDataFrame, out_dir: Path, settings: Settings
) -> gpd.GeoDataFrame:
    """Classify crop health inside the agricultural parcels (a COG) and summarise per parcel;
    ``health_model`` says which classifier did it (see :func:`health_model`)."""
    farms = agricultural(parcels)
    model, source = health_model(models, mosaic, farms, settings)
    classes = classify_health(model, mosaic.path, out_dir / "crop_health.tif", mask_polygons=farms)
    rewrite_as_cog(classes.path)
    return parcel_health(classes, mosaic.path, farms).assign(
        commune=farms["commune"].to_numpy(), health_model=source
    )


def health_model(
    models: Models, mosaic: Raster, farms: gpd.GeoDataFrame, settings: Settings
) -> tuple[PixelModel, str]:
    """The epoch's health classifier and what it was trained on: the agronomist's
    ``health_labels`` over this mosaic, else (``health_without_labels``) the synthetic world's
    model or k-means clusters of the mosaic's index, marked unsupervised."""
    if settings.health_labels is not None:
        model = train_health(mosaic.path, settings.health_labels, settings.health_class_column)
        return model, f"trained on {settings.health_labels.name}"
    if settings.health_without_labels == "unsupervised":
        model = train_health_unsupervised(mosaic.path, mask_polygons=farms)
        return model, "unsupervised: index clusters, accuracy unknown"
    return load_model(models.health), "trained on a synthetic world"


@dataclass(frozen=True)
class VigourLayers:
    """Per-parcel index statistics, management zones and the trend since the last epoch."""

    statistics: pd.DataFrame
    zones: gpd.GeoDataFrame
    trend: gpd.GeoDataFrame


@task(cache_policy=NO_CACHE)
def vigour_task(
    mosaic: Raster,
    parcels: gpd.GeoDataFrame,
    out_dir: Path,
    captured_on: date,
    settings: Settings,
    index_name: str | None = None,
) -> VigourLayers:
    """The vegetation index raster (COG; ``index_name``, default the ``health_index``), its
    exact per-parcel statistics, management zones (with a prescription GPKG + shapefile) and
    the workspace's per-parcel history, updated with this epoch and compared with the one
    before (declining parcels)."""
    farms = agricultural(parcels)
    index_name = index_name or settings.health_index
    index = index_raster(mosaic.path, index_name, out_dir / INDEX_RASTER)
    rewrite_as_cog(index.path)
    statistics = parcel_statistics(index, farms)
    for repaired in statistics.repaired:
        LOG.warning("parcel %s repaired for statistics: %s", repaired.parcel_id, repaired.reason)
    zoning = zones_of_parcels(
        index.path, farms, n_zones=settings.management_zones, mmu_ha=settings.zone_mmu_ha
    )
    for note in zoning.notes:
        LOG.info("zones of parcel %s: %s", note.parcel_id, note.note)
    write_prescription(zoning.zones, out_dir / "prescription")
    history_path = settings.workspace / HISTORY_GEOPACKAGE
    history = parcel_history(
        {captured_on: statistics.table},
        farms,
        index=index_name,
        history=read_history(history_path),
    )
    write_history(history, history_path)
    trend = declining_parcels(
        history,
        index=index_name,
        drop=settings.decline_drop,
        normalise="crop-or-all" if "land_use" in farms else "all",
        after=captured_on,
    )
    for column in ("date_before", "date_after"):  # GeoPackage dates as ISO text
        trend[column] = trend[column].map(lambda day: day.isoformat() if pd.notna(day) else None)
    return VigourLayers(
        statistics=statistics.table,
        zones=zoning.zones,
        trend=farms[["parcel_id", "geometry"]].merge(trend, on="parcel_id", how="inner"),
    )


@dataclass(frozen=True)
class OrchardLayers:
    """Tree crowns, the trees missing from their rows, and counts per orchard parcel."""

    crowns: gpd.GeoDataFrame
    missing: gpd.GeoDataFrame
    per_parcel: pd.DataFrame


@task(cache_policy=NO_CACHE)
def trees_task(mosaic: Raster, parcels: gpd.GeoDataFrame) -> OrchardLayers:
    """Tree crowns in the orchard parcels (land use ``orchard``), counted per parcel, and the
    planting positions where a tree is missing from its row."""
    orchards = (
        parcels[parcels["land_use"] == "orchard"] if "land_use" in parcels else parcels.iloc[:0]
    )
    crowns = detect_trees(mosaic.path, parcels=orchards) if len(orchards) else None
    if crowns is None or crowns.empty:
        none = gpd.GeoDataFrame({"parcel_id": pd.Series(dtype=str)}, geometry=[], crs=parcels.crs)
        return OrchardLayers(
            crowns=none,
            missing=none.assign(row_id=pd.Series(dtype=int)),
            per_parcel=pd.DataFrame(none.drop(columns="geometry")),
        )
    orchards = orchards.to_crs(crowns.crs)
    missing = pd.concat(
        [
            missing_trees(crowns, parcel.geometry).assign(parcel_id=parcel.parcel_id)
            for parcel in orchards.itertuples()
        ],
        ignore_index=True,
    )
    per_parcel = trees_per_parcel(crowns, orchards).drop(columns="geometry", errors="ignore")
    return OrchardLayers(
        crowns=crowns,
        missing=gpd.GeoDataFrame(missing, geometry="geometry", crs=crowns.crs),
        per_parcel=pd.DataFrame(per_parcel),
    )


def agricultural(parcels: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The parcels whose land use is farming (all of them when land use is not recorded)."""
    if "land_use" not in parcels:
        return parcels
    return parcels[parcels["land_use"].isin(AGRICULTURAL_USES)]


@task(cache_policy=NO_CACHE)
def buildings_task(
    models: Models,
    mosaic: Raster,
    parcels: gpd.GeoDataFrame,
    settings: Settings,
    dsm: Path | None = None,
) -> gpd.GeoDataFrame:
    """Built-up structures, cut along parcel boundaries (the shape test applies to the pieces);
    with the epoch's surface model ``dsm``, height above ground is a cue too."""
    return detect_buildings(
        load_model(models.buildings),
        mosaic.path,
        min_area_m2=settings.min_building_area_m2,
        min_solidity=settings.min_building_solidity,
        threshold=settings.building_score_threshold,
        parcels=parcels,
        dsm=dsm,
    )


@task(cache_policy=NO_CACHE)
def change_task(
    models: Models,
    before_mosaic: Path,
    after_mosaic: Path,
    before: gpd.GeoDataFrame,
    after: gpd.GeoDataFrame,
    settings: Settings,
    dsms: tuple[Path, Path] | None = None,
) -> gpd.GeoDataFrame:
    """New or grown structures: polygons compared, then confirmed on both mosaics' pixels
    (and, with both epochs' surface models ``dsms``, by a rise of the surface)."""
    candidates = new_buildings(
        before.to_crs(after.crs), after, min_overlap=settings.new_building_overlap
    )
    return confirm_changes(
        load_model(models.buildings),
        before_mosaic,
        before,
        candidates,
        after_image=after_mosaic,
        new_below=settings.new_building_overlap,
        threshold=settings.building_score_threshold,
        dsms=dsms,
    )


@task(cache_policy=NO_CACHE)
def publish_task(path: Path, layers: dict[str, pd.DataFrame]) -> Path:
    return publish_geopackage(path, layers)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def notify_task(
    work: gpd.GeoDataFrame, lists: dict[str, CommuneWorkList], settings: Settings
) -> tuple[Delivery, ...]:
    """Send the flags not sent before (failed sends come back, they do not raise; a retry
    here covers the ledger, e.g. a locked SQLite file)."""
    maps = {commune: files.map_png for commune, files in lists.items()}
    return send_notifications(
        work, maps, settings.notify, settings.workspace / NOTIFICATIONS_LEDGER
    )


def qgis_project(geopackage: Path, mosaic: Path | None, settings: Settings) -> Path:
    """The epoch's QGIS project beside its GeoPackage, with its rasters (those it has) and
    the workspace's project and parcel histories (for the layers' relations)."""
    out_dir = geopackage.parent
    rasters = [out_dir / "crop_health.tif", out_dir / INDEX_RASTER]
    return write_qgis_project(
        geopackage,
        rasters=[*rasters, *([mosaic] if mosaic else [])],
        tables=[
            (settings.workspace / PROJECT_HISTORY_GEOPACKAGE, PROJECT_HISTORY_TABLE),
            (settings.workspace / HISTORY_GEOPACKAGE, PARCEL_HISTORY_TABLE),
        ],
    )


# -- flows -------------------------------------------------------------------------------


@flow(name="process", validate_parameters=False)
def process(
    frames_dir: Path,
    parcels_path: Path,
    permits_path: Path | None,
    epoch: str,
    captured_on: date,
    settings: Settings,
    *,
    projects_path: Path | None = None,
    grid: Grid | None = None,
    models: Models | None = None,
    mission: Mission | None = None,
    mission_plan: Path | None = None,
    commune: str | None = None,
    force: bool = False,
    dsm: Path | None = None,
) -> EpochResult:
    """An existing folder of photos → mosaic → crop health, buildings, flags → GeoPackage
    (of the parcels of ``commune`` only, when given). Stages whose inputs and outputs are
    unchanged since the last run are skipped (``<epoch>/stages.json``); ``force`` reruns
    them all.

    ``dsm``: the epoch's surface model (an ODM ``odm_dem/dsm.tif``, a LiDAR DSM; any CRS),
    checked before anything runs, kept as ``<epoch>/dsm.tif``; buildings are then detected
    with height above ground, and changes confirmed by the rise of the surface when the
    previous epoch had one too."""
    if dsm is not None:
        check_surface_model(dsm, grid)
    out_dir = settings.workspace / epoch
    out_dir.mkdir(parents=True, exist_ok=True)
    book = resumed_stages(settings.workspace, epoch, force=force)
    parcels = read_parcels(parcels_path, settings.crs)
    permit_source = records_source(permits_path, settings.permits, "permits", settings)
    if permit_source is None:
        raise InputError("permits", "no permit records: give a permits file or a [permits] table")
    permits = load_permits(permit_source, parcel_ids=parcels["parcel_id"].astype(str))
    if commune is not None:
        parcels = commune_parcels(parcels, commune, parcels_path)
    project_source = records_source(projects_path, settings.projects, "projects", settings)
    projects = load_projects(project_source, crs=settings.crs) if project_source else None
    zoning = zoning_of(settings)
    ingested = book.run(
        "ingest",
        key_of_stage(settings, {"frames": frames_dir}, epoch=epoch, folder=frames_dir),
        lambda: ingest_task(frames_dir, epoch, settings),
        say=stage_log,
    )
    if not ingested.images:
        raise InputError(
            frames_dir,
            "no usable photo: " + "; ".join(f"{s.path.name}: {s.reason}" for s in ingested.skipped),
        )
    if grid is None:
        grid = grid_of_images(ingested, settings)
        if dsm is not None:
            check_dsm(dsm, grid)
    if is_multispectral(ingested):
        if dsm is not None:
            LOG.warning(
                "%s: a multispectral flight; the surface model %s is not used (its height "
                "cue serves building detection, which needs RGB photos)",
                epoch,
                dsm,
            )
        mosaic = multispectral_mosaic_task(ingested, grid, out_dir / "mosaic.tif", settings.crs)
        return publish_vigour_only(ingested, mosaic, parcels, permits, epoch, captured_on, settings)
    kept_dsm = keep_surface_model(book, dsm, out_dir) if dsm is not None else None
    models = building_model_task(models or default_models(settings), captured_on, settings)
    previous = previous_epoch(settings.workspace, epoch, captured_on)
    reference = Path(previous["mosaic"]) if previous else None
    before_dsm = earlier_surface_model(previous) if previous and kept_dsm else None
    dsms = (before_dsm, kept_dsm) if before_dsm and kept_dsm else None
    records = book.run(
        "coregister",
        key_of_stage(settings, {"reference": reference}, images=ingested),
        lambda: coregister_task(ingested, settings.crs, reference),
        say=stage_log,
    )
    mosaic = book.run(
        "mosaic",
        key_of_stage(settings, records=records, grid=grid),
        lambda: (
            mosaic_on_cluster(records, grid, out_dir / "mosaic.tif", settings.dask_cluster)
            if settings.dask_cluster
            else mosaic_task(records, grid, out_dir / "mosaic.tif")
        ),
        outputs=lambda raster: [raster.path],
        say=stage_log,
    )
    on_mosaic = {"mosaic": mosaic.path}
    health = book.run(
        "health",
        key_of_stage(settings, on_mosaic | {"model": models.health}, parcels=parcels),
        lambda: health_task(models, mosaic, parcels, out_dir, settings),
        outputs=lambda _: [out_dir / "crop_health.tif"],
        say=stage_log,
    )
    vigour = book.run(
        "vigour",
        key_of_stage(settings, on_mosaic, parcels=parcels, captured_on=captured_on),
        lambda: vigour_task(mosaic, parcels, out_dir, captured_on, settings),
        outputs=lambda _: [out_dir / INDEX_RASTER, *sorted(out_dir.glob("prescription.*"))],
        say=stage_log,
    )
    orchards = book.run(
        "trees",
        key_of_stage(settings, on_mosaic, parcels=parcels),
        lambda: trees_task(mosaic, parcels),
        say=stage_log,
    )
    buildings = book.run(
        "buildings",
        key_of_stage(
            settings, on_mosaic | {"model": models.buildings, "dsm": kept_dsm}, parcels=parcels
        ),
        lambda: buildings_task(models, mosaic, parcels, settings, kept_dsm),
        say=stage_log,
    )
    if previous is None:
        changed = buildings.iloc[:0].assign(change=pd.Series(dtype=str))
    else:
        before = gpd.read_file(previous["geopackage"], layer="buildings", engine="pyogrio")
        changed = book.run(
            "change",
            key_of_stage(
                settings,
                on_mosaic
                | {"model": models.buildings, "before mosaic": reference}
                | ({"before dsm": dsms[0], "dsm": dsms[1]} if dsms else {}),
                before=before,
                after=buildings,
            ),
            lambda: change_task(models, reference, mosaic.path, before, buildings, settings, dsms),
            say=stage_log,
        )
    progress = (
        book.run(
            "projects",
            key_of_stage(
                settings,
                on_mosaic,
                projects=projects.valid,
                buildings=buildings,
                captured_on=captured_on,
            ),
            lambda: projects_task(projects.valid, mosaic, buildings, captured_on, settings),
            say=stage_log,
        )
        if projects
        else None
    )
    stage_log("stage flags: running (rules, feedback and evidence are cheap: always rerun)")
    flagged = flag_new_buildings(
        changed,
        parcels,
        permits.valid,
        captured_on=captured_on,
        settings=settings,
        projects=projects.valid if projects else None,
        zoning=zoning,
        zoning_tolerance=settings.zoning_tolerance,
    )
    feedback = collect_feedback(
        [
            *([Path(previous["geopackage"])] if previous else []),
            out_dir / GEOPACKAGE,  # this epoch's, when rerun: what inspectors said on it
            *([settings.feedback] if settings.feedback else []),
        ]
    )
    flagged = carry_feedback(flagged, feedback.decisions)
    if previous is not None:
        flagged = with_evidence(
            flagged,
            changed,
            (Path(previous["mosaic"]), previous["captured_on"]),
            (mosaic.path, captured_on),
            out_dir / EVIDENCE,
        )
    work = work_list(flagged, parcels)
    layers: dict[str, pd.DataFrame] = {}
    if mission is not None:
        layers["mission"] = mission_frame(mission, settings.crs)
    layers |= {
        "images": images_frame(ingested, settings.crs, collection=epoch),
        "parcels": parcels[parcels.intersects(box(*grid.bounds))],
        "crop_health_parcels": health.merge(vigour.statistics, on="parcel_id", how="left").merge(
            orchards.per_parcel, on="parcel_id", how="left"
        ),
        "management_zones": vigour.zones,
        "tree_crowns": orchards.crowns,
        "missing_trees": orchards.missing,
        "parcel_trend": vigour.trend,
        "buildings": buildings.assign(building_model=models.buildings.name),
        "new_buildings": changed,
        "flagged_parcels": flagged,
        WORK_LIST_LAYER: work,
        **({"projects": progress} if progress is not None else {}),
        "skipped_images": skipped_frame(ingested),
        "failed_tiles": failed_tiles_frame(mosaic.path),
        "record_problems": pd.DataFrame(
            [
                asdict(p)
                for p in permits.problems
                + (projects.problems if projects else ())
                + feedback.problems
            ],
            columns=["source", "line", "field", "problem"],
        ),
    }
    geopackage = book.run(
        "publish",
        key_of_stage(settings, layers=layers),
        lambda: publish_task(out_dir / GEOPACKAGE, layers),
        outputs=lambda path: [path],
        say=stage_log,
    )
    record_epoch(settings.workspace, epoch, captured_on, geopackage, mosaic.path, dsm=kept_dsm)
    derived = book.run(
        "derived",
        key_of_stage(settings, derived_inputs(settings, epoch), epoch=epoch),
        lambda: derive_outputs(settings, epoch),
        outputs=lambda written: written.paths,
        say=stage_log,
    )
    stage_log("stage notify: running (the ledger sends each flag once)")
    deliveries = notify_task(work, derived.work_lists, settings)
    postgis_output(settings, epoch)
    return EpochResult(
        epoch=epoch,
        captured_on=captured_on,
        out_dir=out_dir,
        geopackage=geopackage,
        mosaic=mosaic,
        images=len(ingested.images),
        skipped=tuple((s.path.name, s.reason) for s in ingested.skipped),
        buildings=len(buildings),
        new_buildings=len(changed),
        flags=len(flagged),
        mission_plan=mission_plan,
        zones=len(vigour.zones),
        declining=tuple(vigour.trend.loc[vigour.trend["status"] == "declining", "parcel_id"]),
        undelivered=tuple(str(d) for d in deliveries if not d.sent),
        dsm=kept_dsm,
    )


def publish_vigour_only(
    ingested: IngestResult,
    mosaic: Raster,
    parcels: gpd.GeoDataFrame,
    permits: RecordsResult,
    epoch: str,
    captured_on: date,
    settings: Settings,
) -> EpochResult:
    """A multispectral epoch's layers: the ``multispectral_index`` statistics, zones and trend.
    The health classes, trees and buildings need colour photos (their models are RGB)."""
    out_dir = settings.workspace / epoch
    vigour = vigour_task(
        mosaic, parcels, out_dir, captured_on, settings, index_name=settings.multispectral_index
    )
    LOG.warning(
        "%s: a multispectral flight; health classes, trees and buildings need RGB photos "
        "(fly the RGB camera too): published %s statistics, zones and trend only",
        epoch,
        settings.multispectral_index.upper(),
    )
    layers: dict[str, pd.DataFrame] = {
        "images": images_frame(ingested, settings.crs, collection=epoch),
        "crop_health_parcels": agricultural(parcels)[["parcel_id", "commune", "geometry"]].merge(
            vigour.statistics, on="parcel_id", how="left"
        ),
        "management_zones": vigour.zones,
        "parcel_trend": vigour.trend,
        "skipped_images": skipped_frame(ingested),
        "record_problems": pd.DataFrame(
            [asdict(p) for p in permits.problems], columns=["source", "line", "field", "problem"]
        ),
    }
    geopackage = publish_task(out_dir / GEOPACKAGE, layers)
    record_epoch(
        settings.workspace, epoch, captured_on, geopackage, mosaic.path, kind=MULTISPECTRAL
    )
    derive_outputs(settings, epoch)
    postgis_output(settings, epoch)
    return EpochResult(
        epoch=epoch,
        captured_on=captured_on,
        out_dir=out_dir,
        geopackage=geopackage,
        mosaic=mosaic,
        images=len(ingested.images),
        skipped=tuple((s.path.name, s.reason) for s in ingested.skipped),
        buildings=0,
        new_buildings=0,
        flags=0,
        zones=len(vigour.zones),
        declining=tuple(vigour.trend.loc[vigour.trend["status"] == "declining", "parcel_id"]),
    )


@flow(name="survey", validate_parameters=False)
def survey(
    world_dir: Path,
    epoch: str,
    settings: Settings,
    commune: str | None = None,
    *,
    force: bool = False,
    dsm: Path | None = None,
) -> EpochResult:
    """Plan a survey of the world's AOI (or of one commune's parcels), fly it on the
    simulator, process and publish it. Stages unchanged since the last run are skipped
    (``<workspace>/<epoch>/stages.json``), a complete flight is not flown again; ``force``
    reruns them all. ``dsm``: the epoch's surface model (see :func:`process`), checked
    against the survey's grid before anything is planned or flown."""
    world = load_world(world_dir)
    dates = dict(world.epochs)
    if epoch not in dates:
        raise InputError(world.paths.metadata, f"no epoch {epoch!r}; known: {', '.join(dates)}")
    aoi_lonlat, bounds = survey_area(world, settings.crs, commune)
    resolution_m = settings.mosaic_resolution_m or SURVEY_GSD_CM / 100.0
    grid = Grid.from_bounds(bounds, resolution_m, settings.crs)
    if dsm is not None:
        check_surface_model(dsm, grid)
    out_dir = settings.workspace / epoch
    book = resumed_stages(settings.workspace, epoch, force=force)
    home = Waypoint(lat_deg=world.home_lonlat[1], lon_deg=world.home_lonlat[0], altitude_m=0.0)
    name = f"{world.root.name}-{epoch}"
    mission, plan_path = book.run(
        "plan",
        key_of_stage(settings, aoi=aoi_lonlat, home=home, name=name),
        lambda: plan_task(aoi_lonlat, home, name, out_dir, world.ground_elevation_m, settings),
        outputs=lambda _: sorted(out_dir.glob("mission*")),
        say=stage_log,
    )
    frames_dir = out_dir / "frames"
    book.run(
        "fly",
        key_of_stage(
            settings,
            {"orthophoto": world.paths.ortho(epoch)},
            mission=mission,
            epoch=epoch,
            start=capture_start(world, epoch),
        ),
        lambda: fly_task(world, epoch, mission, frames_dir, settings),
        outputs=lambda _: [frames_dir, out_dir / "flight_log.csv"],
        say=stage_log,
    )
    return process(
        frames_dir,
        world.paths.parcels,
        world.paths.permits,
        epoch,
        dates[epoch],
        settings,
        projects_path=world.paths.projects,
        grid=grid,
        mission=mission,
        mission_plan=plan_path,
        commune=commune,
        force=force,
        dsm=dsm,
    )


# -- helpers the flows share --------------------------------------------------------------


RUN_ONLY_SETTINGS = frozenset(
    {
        "workspace",
        "notify",
        "publish",
        "dask_cluster",
        "sim_speedup",
        "vehicle_timeout_s",
        "vehicle_retries",
        "vehicle_backoff_s",
        "records_timeout_s",
        "records_retries",
    }
)
"""Settings that change how a run goes, not what it computes: left out of stage keys."""
SETTING_FILES = ("zoning", "feedback", "health_labels", "no_fly_zones", "camera_file")
"""Settings naming a file whose content is an input of every stage."""


def key_of_stage(
    settings: Settings, files: Mapping[str, Path | str | None] | None = None, **parameters: object
) -> str:
    """A stage's key (``core.stages.stage_key``): the content of its input ``files`` and of
    the files the settings name, every setting that can change a result, and ``parameters``."""
    named = {f"setting {n}": getattr(settings, n) for n in SETTING_FILES}
    inputs = {label: Path(p) for label, p in {**(files or {}), **named}.items() if p is not None}
    computed = settings.model_dump(mode="json", exclude=set(RUN_ONLY_SETTINGS))
    return stage_key(inputs, {"settings": computed, **parameters})


def stage_log(message: str) -> None:
    """One line in the run's log: the Prefect run logger's inside a flow, else ours."""
    try:
        get_run_logger().info(message)
    except MissingContextError:
        LOG.info(message)


def resumed_stages(workspace: Path, epoch: str, *, force: bool = False) -> StageBook:
    """The epoch's stage record, after deleting the temporary files a killed run left in
    the epoch's folder, the workspace's catalogue and the workspace itself."""
    leftovers = [
        *remove_leftovers(workspace / epoch),
        *remove_leftovers(workspace / WORKSPACE_CATALOG),
        *remove_leftovers(workspace, recursive=False),
    ]
    for path in leftovers:
        stage_log(f"removed {path}, left by an interrupted run")
    return StageBook(workspace / epoch, force=force)


def survey_area(
    world: World, crs: str, commune: str | None
) -> tuple[Polygon, tuple[float, float, float, float]]:
    """The AOI a survey flies (lon/lat) and the bounds of its output grid (in ``crs``): the
    whole world, or the hull of one commune's parcels."""
    if commune is None:
        return world.aoi_lonlat, transform_bounds(world.crs, crs, *world.bounds)
    parcels = read_parcels(world.paths.parcels, crs)
    area = commune_area(parcels, commune, world.paths.parcels)
    return reproject(area, crs, "EPSG:4326"), area.bounds


def capture_start(world: World, epoch: str) -> datetime:
    """Local time the world's epoch was lit for (its shadows), as the flight's start."""
    meta = json.loads(world.paths.metadata.read_text(encoding="utf-8"))
    entry = next(e for e in meta["epochs"] if e["name"] == epoch)
    return datetime.fromisoformat(f"{entry['date']}T{entry['time_local']}{entry['utc_offset']}")


def grid_of_images(
    result: IngestResult,
    settings: Settings,
    *,
    dem: Path | None = None,
    dem_heights: HeightRule = "absolute",
) -> Grid:
    """The output grid over all image footprints (on ``dem`` if given: wider over low
    ground), at the setting's or the median GSD."""
    if dem is None:
        shapes = [footprint(record, settings.crs) for record in result.images]
    else:
        with open_dem(dem) as heights:
            shapes = [
                footprint_on_dem(
                    record,
                    heights,
                    settings.crs,
                    camera_elevation_m(record, heights, settings.crs, dem_heights),
                )
                for record in result.images
            ]
    bounds = gpd.GeoSeries(shapes).total_bounds
    gsds = sorted(ground_sampling_m(record) for record in result.images)
    resolution_m = settings.mosaic_resolution_m or round(gsds[len(gsds) // 2], 3)
    return Grid.from_bounds(tuple(bounds), resolution_m, settings.crs)


def mosaic_folder(
    frames_dir: Path,
    out_path: Path,
    settings: Settings,
    *,
    refine: bool = True,
    on_tile: Callable[[int, int], None] | None = None,
    dem: Path | None = None,
    dem_heights: HeightRule = "absolute",
    panels: Mapping[str, PanelReading] | None = None,
) -> tuple[Raster, IngestResult]:
    """Ingest a folder of nadir photos, co-register them (unless ``refine`` is off) and
    mosaic them to a COG on a grid snapped to the median GSD (or ``mosaic_resolution_m``),
    orthorectified on ``dem`` if given (see ``pipeline.mosaic.mosaic_frames``).

    Multispectral band files (one band per file, grouped by capture) give one float32 band per
    camera band (``pipeline.multispectral_mosaic``), in reflectance from ``panels`` readings
    or the sun sensor when there is one."""
    if settings.dask_cluster:
        check_scheduler_reachable(settings.dask_cluster)
    if dem is not None:
        check_dem(dem)
        if Path(out_path).resolve() == Path(dem).resolve():
            raise InputError(out_path, "is the DEM itself; write the mosaic elsewhere")
    ingested = ingest_photos(frames_dir, settings)
    if not ingested.images:
        raise InputError(frames_dir, f"no usable photo ({len(ingested.skipped)} skipped)")
    grid = grid_of_images(ingested, settings, dem=dem, dem_heights=dem_heights)
    if is_multispectral(ingested):
        if settings.dask_cluster:
            raise InputError(
                settings.dask_cluster,
                "multispectral mosaics render on this machine: drop --cluster",
            )
        captures = multispectral_captures(ingested)
        if refine:
            captures = coregister_captures(captures, settings.crs)
        raster = mosaic_captures(
            captures,
            grid,
            out_path,
            panels=panels,
            on_tile=on_tile,
            dem=dem,
            dem_heights=dem_heights,
        )
        return raster, ingested
    if panels:
        raise InputError(frames_dir, "calibration panels are for multispectral band files, not RGB")
    records = coregister(ingested.images, settings.crs) if refine else ingested.images
    if settings.dask_cluster:
        raster = mosaic_on_cluster(
            records, grid, out_path, settings.dask_cluster, on_tile, dem, dem_heights
        )
    else:
        raster = mosaic_frames(
            records, grid, out_path, on_tile=on_tile, dem=dem, dem_heights=dem_heights
        )
    return raster, ingested


def records_source(
    path: Path | None, table: dict[str, object] | None, kind: str, settings: Settings
) -> RecordSource | Path | None:
    """Where ``kind`` records are read from: the file given for this run, else the settings'
    ``[kind]`` table (a file or a JSON API with its field mapping), else nowhere."""
    if path is not None or table is None:
        return path
    http = HttpOptions(timeout_s=settings.records_timeout_s, retries=settings.records_retries)
    return record_source(table, http, where=f"settings [{kind}]")


@task(cache_policy=NO_CACHE)
def projects_task(
    projects: gpd.GeoDataFrame,
    mosaic: Raster,
    buildings: gpd.GeoDataFrame,
    captured_on: date,
    settings: Settings,
) -> gpd.GeoDataFrame:
    """Each public project's progress in this epoch (its dated photo archived in the
    workspace), added to the workspace's project history, and its status on this date:
    stalled with the reasons in words, on track, not started, finished or not assessed
    (see ``gis.projects``)."""
    progress = project_progress(
        projects,
        captured_on,
        mosaic=mosaic.path,
        structures=buildings,
        archive=settings.workspace / PROJECT_ARCHIVE,
    )
    history_path = settings.workspace / PROJECT_HISTORY_GEOPACKAGE
    history = add_epoch(read_project_history(history_path), progress)
    write_project_history(history, history_path)
    status = assess_projects(
        history,
        projects,
        on=captured_on,
        stall_days=settings.project_stall_days,
        min_change=settings.project_min_change,
        schedule_tolerance=settings.project_schedule_tolerance,
        url_template=settings.project_url_template,
    )
    dates = projects[["project_id", "start", "planned_end"]]
    return status.merge(dates, on="project_id", how="left")


def check_surface_model(dsm: Path, grid: Grid | None = None) -> None:
    """InputError naming ``dsm`` unless it is a raster with a CRS (overlapping ``grid``,
    when the output grid is known already)."""
    if grid is not None:
        check_dsm(dsm, grid)
    else:
        with open_georaster(dsm):
            pass


def keep_surface_model(book: StageBook, dsm: Path, out_dir: Path) -> Path:
    """``out_dir/dsm.tif`` (:data:`EPOCH_DSM`): a copy of ``dsm``, written atomically unless
    the stage record says it holds that content already; a GeoTIFF is copied byte for byte,
    another raster (or a GeoTIFF with sidecar files: .aux.xml, .tfw) converted to one."""
    target = out_dir / EPOCH_DSM
    if Path(dsm).resolve() == target.resolve():
        return target

    def copy() -> Path:
        with open_georaster(dsm) as src:
            one_file = src.driver == "GTiff" and len(src.files) == 1
        with atomic_path(target) as scratch:
            if one_file:
                shutil.copyfile(dsm, scratch)
            else:
                copy_raster(
                    dsm,
                    scratch,
                    driver="GTiff",
                    TILED="YES",
                    COMPRESS="DEFLATE",
                    BIGTIFF="IF_SAFER",
                )
        return target

    return book.run(
        "dsm", stage_key({"dsm": dsm}), copy, outputs=lambda path: [path], say=stage_log
    )


def earlier_surface_model(previous: Mapping[str, str]) -> Path | None:
    """The surface model the manifest lists for an earlier epoch (None without one, or with
    a warning when it is gone: changes are then confirmed without heights)."""
    if "dsm" not in previous:
        return None
    path = Path(previous["dsm"])
    if not path.is_file():
        stage_log(
            f"the surface model of the epoch of {previous['captured_on']} ({path}) is gone: "
            "changes since then are confirmed without heights"
        )
        return None
    return path


def zoning_of(settings: Settings) -> Zoning | None:
    """The zoning plan of ``settings.zoning`` (None: the outside_buildable_zone rule is off)."""
    if settings.zoning is None:
        return None
    return read_zoning(
        settings.zoning,
        settings.crs,
        zone_column=settings.zoning_zone_column,
        buildable_column=settings.zoning_buildable_column,
    )


def with_evidence(
    flagged: gpd.GeoDataFrame,
    structures: gpd.GeoDataFrame,
    before: tuple[Path, str],
    after: tuple[Path, date],
    folder: Path,
) -> gpd.GeoDataFrame:
    """``flagged`` with an ``evidence`` PNG per flag: the parcel (yellow) and the structures
    flagged on it (magenta) on the previous and this epoch's mosaics, side by side, dated."""
    (before_mosaic, before_day), (after_mosaic, after_day) = before, after
    ids = pd.Index(
        structures["building_id"] if "building_id" in structures else structures.index
    ).astype(str)
    paths = []
    for flag in flagged.itertuples():
        name = evidence_file_name(flag.parcel_id, flag.reason)
        write_before_after(
            before_mosaic,
            after_mosaic,
            gpd.GeoSeries([flag.geometry], crs=flagged.crs),
            folder / name,
            captions=(before_day, after_day.isoformat()),
            second=structures[ids.isin(flag.building_ids.split(","))],
        )
        paths.append(str(folder / name))
    return flagged.assign(evidence=paths)


def mission_frame(mission: Mission, crs: str) -> gpd.GeoDataFrame:
    """The mission's flight path as one line feature in ``crs``."""
    path = LineString([(w.lon_deg, w.lat_deg) for w in mission.waypoints])
    return gpd.GeoDataFrame(
        {
            "name": [mission.name],
            "altitude_m": [round(mission.altitude_m, 1)],
            "gsd_cm": [mission.spec.gsd_cm],
            "photo_count": [mission.photo_count],
            "distance_m": [round(mission.distance_m, 1)],
            "estimated_time_s": [round(mission.estimated_time_s)],
            "trigger_distance_m": [round(mission.trigger_distance_m, 2)],
            "camera": [mission.spec.camera.name],
        },
        geometry=[reproject(path, "EPSG:4326", crs)],
        crs=crs,
    )


def record_epoch(
    workspace: Path,
    epoch: str,
    captured_on: date,
    geopackage: Path,
    mosaic: Path,
    *,
    kind: str = "rgb",
    dsm: Path | None = None,
) -> None:
    """Add (or replace) an epoch in the workspace's manifest, written atomically; a
    multispectral epoch is marked ``"kind": "multispectral"`` (it has no buildings to compare
    with, and its mosaic is no reference to co-register colour photos to); ``dsm``: the
    epoch's surface model, for the next epoch's change stage."""
    manifest_path = workspace / EPOCHS_MANIFEST
    epochs = read_manifest(workspace)
    epochs[epoch] = {
        "captured_on": captured_on.isoformat(),
        "geopackage": str(geopackage),
        "mosaic": str(mosaic),
        **({"kind": kind} if kind != "rgb" else {}),
        **({"dsm": str(dsm)} if dsm is not None else {}),
    }
    with atomic_path(manifest_path) as scratch:
        scratch.write_text(json.dumps(epochs, indent=2, sort_keys=True), encoding="utf-8")


def read_manifest(workspace: Path) -> dict[str, dict[str, str]]:
    path = workspace / EPOCHS_MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def publish_derived(workspace: Path, epoch: str) -> list[Path]:
    """Rebuild the province report of an epoch (``<workspace>/<epoch>/report.html``) from its
    published outputs without recomputing them; older epochs stay as they are."""
    return [
        write_report(
            epoch_outputs(workspace, epoch), accuracy=read_accuracy(workspace / ACCURACY_FILE)
        )
    ]


@dataclass(frozen=True)
class DerivedOutputs:
    """What :func:`derive_outputs` wrote for one epoch."""

    project: Path
    work_lists: dict[str, CommuneWorkList]
    report: Path
    postgis_schema: str | None = None

    @property
    def paths(self) -> list[Path]:
        lists = [path for wl in self.work_lists.values() for path in (wl.csv, wl.html)]
        return [self.project, *lists, self.report]


def derived_inputs(settings: Settings, epoch: str) -> dict[str, Path]:
    """The files :func:`derive_outputs` reads for ``epoch``: its GeoPackage and rasters, the
    workspace's histories and measured accuracy."""
    outputs = epoch_outputs(settings.workspace, epoch)
    return {
        "geopackage": outputs.geopackage,
        "mosaic": outputs.mosaic,
        "crop health": outputs.folder / "crop_health.tif",
        "index": outputs.folder / INDEX_RASTER,
        "accuracy": settings.workspace / ACCURACY_FILE,
        "parcel history": settings.workspace / HISTORY_GEOPACKAGE,
        "project history": settings.workspace / PROJECT_HISTORY_GEOPACKAGE,
    }


def derive_outputs(settings: Settings, epoch: str) -> DerivedOutputs:
    """The files derived from an epoch's published GeoPackage and rasters, no model run: the
    QGIS project, the inspectors' work lists (of its ``work_list`` layer) and the province
    report. Sends nothing."""
    outputs = epoch_outputs(settings.workspace, epoch)
    layers = list_layers(outputs.geopackage)
    lists = (
        write_work_lists(
            gpd.read_file(outputs.geopackage, layer=WORK_LIST_LAYER, engine="pyogrio"),
            gpd.read_file(outputs.geopackage, layer="parcels", engine="pyogrio")
            if "parcels" in layers
            else None,
            outputs.folder / WORK_LISTS,
        )
        if WORK_LIST_LAYER in layers
        else {}
    )
    return DerivedOutputs(
        project=qgis_project(outputs.geopackage, outputs.mosaic, settings),
        work_lists=lists,
        report=publish_derived(settings.workspace, epoch)[0],
    )


def postgis_output(settings: Settings, epoch: str) -> str | None:
    """Copy the epoch's GeoPackage into its PostGIS schema when ``publish.postgis_url`` is
    set (after the files and notifications: a database down delays nothing else)."""
    if not settings.publish.postgis_url:
        return None
    outputs = epoch_outputs(settings.workspace, epoch)
    schema = epoch_schema(epoch, settings.publish.postgis_schema_prefix)
    publish_postgis(
        outputs.geopackage,
        settings.publish.postgis_url,
        schema,
        comment=f"Raqib epoch {epoch}, captured on {outputs.captured_on.isoformat()}",
    )
    return schema


def republish(settings: Settings, epoch: str) -> DerivedOutputs:
    """``raqib publish --epoch``: the epoch's GeoPackage gets today's styles and a work list
    rebuilt from its flags (inspectors' decisions included), then everything derived from
    it is rewritten; no model runs and nothing is sent (each flag is sent once, by the flow
    that raised it)."""
    geopackage = epoch_outputs(settings.workspace, epoch).geopackage
    if not geopackage.is_file():
        raise InputError(geopackage, f"the GeoPackage of epoch {epoch!r} is gone; re-run it")
    layers = list_layers(geopackage)
    refreshed: dict[str, pd.DataFrame] = {}
    if "flagged_parcels" in layers:
        flagged = gpd.read_file(geopackage, layer="flagged_parcels", engine="pyogrio")
        parcels = (
            gpd.read_file(geopackage, layer="parcels", engine="pyogrio")
            if "parcels" in layers
            else None
        )
        if "flag_id" in flagged.columns:
            refreshed[WORK_LIST_LAYER] = work_list(flagged, parcels)
        else:
            LOG.warning(
                "%s: flags published without flag ids (an older Raqib): work list kept as is",
                geopackage,
            )
    republish_geopackage(geopackage, refreshed)
    derived = derive_outputs(settings, epoch)
    return replace(derived, postgis_schema=postgis_output(settings, epoch))


def epoch_outputs(workspace: Path, epoch: str) -> EpochOutputs:
    """Where the manifest says ``epoch``'s outputs are (paths written relative to another
    working directory are looked up in the epoch's folder); InputError naming the known
    epochs when the workspace has no such epoch."""
    epochs = read_manifest(workspace)
    if epoch not in epochs:
        known = ", ".join(sorted(epochs)) or "none (process an epoch first)"
        raise InputError(workspace / EPOCHS_MANIFEST, f"no epoch {epoch!r}; known: {known}")
    entry, folder = epochs[epoch], workspace / epoch

    def located(recorded: str) -> Path:
        path = Path(recorded)
        return path if path.exists() else folder / path.name

    return EpochOutputs(
        epoch=epoch,
        captured_on=date.fromisoformat(entry["captured_on"]),
        folder=folder,
        geopackage=located(entry["geopackage"]),
        mosaic=located(entry["mosaic"]),
    )


def previous_epoch(workspace: Path, epoch: str, captured_on: date) -> dict[str, str] | None:
    """The manifest entry of the latest epoch captured before ``captured_on``, if any."""
    earlier = [
        entry
        for name, entry in read_manifest(workspace).items()
        if name != epoch
        and entry["captured_on"] < captured_on.isoformat()
        and entry.get("kind") != MULTISPECTRAL
    ]
    if not earlier:
        return None
    latest = max(earlier, key=lambda entry: entry["captured_on"])
    for key in ("geopackage", "mosaic"):
        if not Path(latest[key]).exists():
            raise InputError(
                workspace / EPOCHS_MANIFEST,
                f"epoch of {latest['captured_on']} lists {latest[key]}, which no longer exists; "
                "re-run that epoch or remove it from the manifest",
            )
    return latest


def default_models(settings: Settings) -> Models:
    """The workspace's classifiers: the models Raqib ships (``models/default``), copied into
    ``<workspace>/models`` once, so that every epoch of the workspace uses the same files."""
    folder = settings.workspace / "models"
    models = Models(health=folder / "crop_health.joblib", buildings=folder / "buildings.joblib")
    if models.health.exists() and models.buildings.exists():
        return models
    LOG.warning(
        "no models in %s: using the ones Raqib ships, trained on synthetic worlds (seeds %s); "
        "for real imagery train on your own labels",
        folder,
        ", ".join(map(str, TRAINING_SEEDS)),
    )
    folder.mkdir(parents=True, exist_ok=True)
    shipped = {models.health: DEFAULT_HEALTH_MODEL, models.buildings: DEFAULT_BUILDINGS_MODEL}
    for copy, source in shipped.items():
        load_model(source)  # a clear error if the package lost or spoilt it
        with atomic_path(copy) as partial:
            shutil.copyfile(source, partial)
    return models


def training_worlds(folder: Path) -> list[World]:
    """The simulator worlds of the shipped models' recipe, generated in ``folder`` once."""
    worlds = []
    for seed, (width_m, height_m) in zip(TRAINING_SEEDS, TRAINING_SIZES_M, strict=True):
        root = folder / str(seed)
        worlds.append(
            load_world(root)
            if (root / "world.json").exists()
            else generate(root, seed=seed, width_m=width_m, height_m=height_m)
        )
    return worlds


def train_default_models(out_dir: Path, worlds_dir: Path) -> Models:
    """Train the models Raqib ships, by their recipe: crop health on both epochs of world
    101, buildings on both epochs of worlds 101-103 (:data:`BUILDING_SAMPLES` pixels a class);
    the worlds are generated in ``worlds_dir``."""
    worlds = training_worlds(worlds_dir)
    first = worlds[0]
    health = gpd.read_file(first.paths.truth, layer="health")
    models = Models(out_dir / DEFAULT_HEALTH_MODEL.name, out_dir / DEFAULT_BUILDINGS_MODEL.name)
    save_model(
        train_health_on([(first.paths.ortho(epoch), health) for epoch, _ in first.epochs]),
        models.health,
    )
    save_model(
        train_buildings_on(building_examples(worlds), max_samples_per_class=BUILDING_SAMPLES),
        models.buildings,
    )
    return models


def building_examples(worlds: Sequence[World]) -> list[tuple[Path, gpd.GeoDataFrame]]:
    """The building model's training pairs: each world's orthophotos with their footprints,
    crisp and softened (:data:`SOFTENED_SIGMA_PX`)."""
    crisp = [example for world in worlds for example in truth_buildings(world)]
    return crisp + [(softened_copy(image, SOFTENED_SIGMA_PX), fp) for image, fp in crisp]


def truth_buildings(world: World) -> list[tuple[Path, gpd.GeoDataFrame]]:
    """Each epoch's orthophoto of a synthetic world with its true building footprints."""
    return [
        (world.paths.ortho(epoch), gpd.read_file(world.paths.truth, layer=f"buildings_{epoch}"))
        for epoch, _ in world.epochs
    ]


# -- inspector feedback into the building model ------------------------------------------


Judged = list[tuple[Path, gpd.GeoDataFrame]]
"""Inspector-judged footprints (``gis.feedback.feedback_samples``) per mosaic they were seen on."""


@task(cache_policy=NO_CACHE)
def building_model_task(models: Models, captured_on: date, settings: Settings) -> Models:
    """``models`` with the building model this epoch uses (see :func:`building_model_for`)."""
    judged = judged_footprints(settings.workspace, captured_on, settings.feedback)
    return replace(models, buildings=building_model_for(models, judged, settings.workspace))


def judged_footprints(workspace: Path, captured_on: date, feedback: Path | None) -> Judged:
    """The footprints inspectors judged (confirmed, regularised, false positive) on the flags
    of the workspace's epochs captured before ``captured_on``, read from their GeoPackages and
    the ``feedback`` file, each with the mosaic its flag was raised on."""
    epochs = read_manifest(workspace).values()
    earlier = sorted(
        (
            entry
            for entry in epochs
            if entry["captured_on"] < captured_on.isoformat() and entry.get("kind") != MULTISPECTRAL
        ),
        key=lambda entry: entry["captured_on"],
    )
    sources = [Path(entry["geopackage"]) for entry in earlier] + ([feedback] if feedback else [])
    by_day: dict[str, list[Decision]] = {}
    for decision in collect_feedback(sources).decisions:
        parsed = parse_flag_id(decision.flag_id)
        if decision.status in SAMPLE_LABELS and parsed and parsed[0] < captured_on:
            by_day.setdefault(parsed[0].isoformat(), []).append(decision)
    judged: Judged = []
    for entry in earlier:
        decisions = by_day.pop(entry["captured_on"], [])
        geopackage, mosaic = Path(entry["geopackage"]), Path(entry["mosaic"])
        if not decisions or not (geopackage.exists() and mosaic.exists()):
            continue
        samples = feedback_samples(
            decisions,
            gpd.read_file(geopackage, layer="flagged_parcels", engine="pyogrio"),
            gpd.read_file(geopackage, layer="new_buildings", engine="pyogrio"),
        )
        if len(samples):
            judged.append((mosaic, samples))
    if by_day:
        LOG.warning(
            "decisions on flags of %s not used for training: no epoch of that date in %s",
            ", ".join(sorted(by_day)),
            workspace / EPOCHS_MANIFEST,
        )
    return judged


def building_model_for(models: Models, judged: Judged, workspace: Path) -> Path:
    """The building model an epoch uses: ``models.buildings`` without judged footprints;
    with them, that model refitted on its training world plus the judged footprints, saved
    as ``<workspace>/models/buildings-feedback-<hash>.joblib`` (the hash of the base model and
    the samples: the same feedback reuses the file, new feedback makes a new one)."""
    if not judged:
        return models.buildings
    counts = pd.concat([samples["label"] for _, samples in judged]).value_counts().to_dict()
    worlds_dir = models.buildings.parent / TRAINING_WORLDS
    worlds = [load_world(p.parent) for p in sorted(worlds_dir.glob("*/world.json"))]
    shipped = load_model(DEFAULT_BUILDINGS_MODEL).training_hash
    if not worlds and load_model(models.buildings).training_hash != shipped:
        LOG.warning(
            "inspectors' judged footprints (%s) not used: %s is not the shipped model and no "
            "synthetic worlds to refit it on are in %s",
            counts,
            models.buildings,
            worlds_dir,
        )
        return models.buildings
    path = workspace / "models" / f"buildings-feedback-{feedback_digest(models, judged)}.joblib"
    if not path.exists():
        model = train_buildings_on(
            building_examples(worlds or training_worlds(worlds_dir)),
            judged=judged,
            max_samples_per_class=BUILDING_SAMPLES,
        )
        save_model(model, path)
    LOG.info(
        "building model %s: %s refitted with judged footprints %s",
        path,
        models.buildings.name,
        counts,
    )
    return path


def feedback_digest(models: Models, judged: Judged) -> str:
    """12 hex digits of the SHA-256 of the base building model file and the judged samples
    (flag, label, footprint), independent of the order they come in."""
    digest = hashlib.sha256(models.buildings.read_bytes())
    rows = sorted(
        (flag_id, label, geometry.normalize().wkb_hex)
        for _, samples in judged
        for flag_id, label, geometry in zip(
            samples["flag_id"], samples["label"], samples.geometry, strict=True
        )
    )
    digest.update(json.dumps(rows).encode())
    return digest.hexdigest()[:12]


def epoch_flags(workspace: Path, epoch: str) -> gpd.GeoDataFrame:
    """The ``flagged_parcels`` layer published for ``epoch`` in the workspace."""
    epochs = read_manifest(workspace)
    if epoch not in epochs:
        raise InputError(
            workspace / EPOCHS_MANIFEST,
            f"no epoch {epoch!r}; known: {', '.join(sorted(epochs)) or 'none'}",
        )
    geopackage = Path(epochs[epoch]["geopackage"])
    if not geopackage.exists():
        raise InputError(geopackage, f"the GeoPackage of epoch {epoch!r} is gone; re-run it")
    if FEEDBACK_LAYER not in pyogrio.list_layers(geopackage)[:, 0]:
        raise InputError(geopackage, f"no {FEEDBACK_LAYER!r} layer: epoch {epoch!r} has no flags")
    flags = gpd.read_file(geopackage, layer=FEEDBACK_LAYER, engine="pyogrio")
    if "flag_id" not in flags:
        raise InputError(
            geopackage, "flags published without ids (an older Raqib): re-run the epoch first"
        )
    return flags


def published_flag_ids(workspace: Path) -> set[str] | None:
    """The ids of every flag published in the workspace's epochs; None when it has no epoch."""
    epochs = read_manifest(workspace)
    if not epochs:
        return None
    ids: set[str] = set()
    for entry in epochs.values():
        geopackage = Path(entry["geopackage"])
        if geopackage.exists() and FEEDBACK_LAYER in pyogrio.list_layers(geopackage)[:, 0]:
            fields = pyogrio.read_info(geopackage, layer=FEEDBACK_LAYER)["fields"]
            if "flag_id" in fields:
                table = pyogrio.read_dataframe(
                    geopackage, layer=FEEDBACK_LAYER, columns=["flag_id"], read_geometry=False
                )
                ids |= set(table["flag_id"].astype(str))
    return ids


@dataclass(frozen=True)
class PlannedMission:
    """A checked mission, the files written for it, and the grid angle it was planned at."""

    mission: Mission
    crs: str
    files: dict[str, Path]
    angle: AngleChoice | None
    notes: tuple[str, ...] = ()
    """What the mission files could not hold (formats left out, unknown heights)."""


def checked_mission(
    aoi: Polygon,
    spec: SurveySpec,
    home: Waypoint,
    settings: Settings,
    *,
    name: str,
    crs: str,
    auto_angle: bool = False,
    dem: Dem | None = None,
    wind_m_s: float | None = None,
) -> tuple[Mission, AngleChoice | None]:
    """Plan over ``aoi`` (lon/lat), follow the terrain, fence it, and refuse it if unsafe.

    ``auto_angle`` replaces ``spec.grid_angle_deg`` by the fastest angle; with no ``dem``
    the mission assumes flat terrain and says so in its warnings.
    """
    choice = best_grid_angle(aoi, spec, home, crs=crs) if auto_angle else None
    if choice is not None:
        spec = replace(spec, grid_angle_deg=choice.angle_deg)
    mission = plan_survey(aoi, spec, home, name=name, crs=crs)
    mission = follow_terrain(mission, dem, crs=crs) if dem else flat_terrain(mission)
    no_fly = load_no_fly_zones(settings.no_fly_zones)
    mission = with_geofence(mission, settings.geofence_margin_m, no_fly=no_fly)
    mission = check_mission(
        mission,
        no_fly=no_fly,
        dem=dem,
        reserve=settings.battery_reserve,
        wind_m_s=wind_m_s,
        max_wind_m_s=settings.max_wind_m_s,
    )
    return mission, choice


def plan_mission_files(
    aoi_path: Path,
    out_dir: Path,
    spec: SurveySpec,
    settings: Settings,
    *,
    auto_angle: bool = True,
    home_latlon: tuple[float, float] | None = None,
    dem_path: Path | None = None,
    wind_m_s: float | None = None,
) -> PlannedMission:
    """Plan a survey over an AOI file; write .plan, .waypoints, .kml, .kmz and a GPKG preview.

    Planned in the AOI's UTM zone; home defaults to the AOI's first vertex.
    """
    aoi = load_aoi(aoi_path)
    lon, lat = aoi.exterior.coords[0]
    if home_latlon is not None:
        lat, lon = home_latlon
    home = Waypoint(lat_deg=lat, lon_deg=lon, altitude_m=0.0)
    crs = gpd.GeoSeries([aoi], crs="EPSG:4326").estimate_utm_crs().to_string()
    dem = Dem(dem_path) if dem_path else None
    mission, choice = checked_mission(
        aoi,
        spec,
        home,
        settings,
        name=aoi_path.stem,
        crs=crs,
        auto_angle=auto_angle,
        dem=dem,
        wind_m_s=wind_m_s,
    )
    home_amsl_m = float(dem.heights_m([lon], [lat])[0]) if dem else None
    written = write_mission_files(mission, out_dir, aoi_path.stem, home_alt_amsl_m=home_amsl_m)
    files = {
        **written.paths,
        "preview": write_preview(mission, out_dir / f"{aoi_path.stem}.gpkg", crs),
    }
    return PlannedMission(mission, crs, files, choice, notes=written.notes)


# -- the demo ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSummary:
    world: Path
    epochs: tuple[EpochResult, ...]
    accuracy: dict[str, Accuracy]


def demo(
    settings: Settings,
    *,
    size: str = "default",
    console: Console | None = None,
    with_dsm: bool = True,
) -> DemoSummary:
    """Generate the default world, survey both epochs (each with the world's surface model,
    :data:`DEMO_DSM`, unless not ``with_dsm``), measure accuracy against its truth."""
    say: Callable[[str], None] = console.print if console else (lambda _msg: None)
    if size not in DEMO_SIZES_M:
        raise InputError("--size", f"unknown size {size!r}; use one of {', '.join(DEMO_SIZES_M)}")
    width_m, height_m = DEMO_SIZES_M[size]
    say(f"[bold]1/4[/] generating the Berkane world ({width_m:.0f} x {height_m:.0f} m)")
    world = generate(settings.workspace / "world", width_m=width_m, height_m=height_m)
    say("[bold]2/4[/] the classifiers Raqib ships (trained on worlds of other seeds)")
    default_models(settings)
    results = []
    for i, (epoch, captured_on) in enumerate(world.epochs, start=1):
        say(
            f"[bold]{2 + i}/4[/] survey of {epoch} ({captured_on}): plan, fly, ingest, mosaic, "
            f"analyse{' (height from the world DSM)' if with_dsm else ''}, publish"
        )
        dsm = world.paths.dsm(epoch) if with_dsm else None
        results.append(survey(world.root, epoch, settings, dsm=dsm))
    accuracy = measure_accuracy(world, results)
    measured = MeasuredAccuracy(
        tuple(replace(score, name=what) for what, score in accuracy.items()),
        measured_on=f"the published outputs of {results[-1].epoch} against the simulated "
        f"world's truth (the shipped models, trained on worlds of seeds "
        f"{', '.join(map(str, TRAINING_SEEDS))})",
        measured_at=date.today(),
    )
    write_accuracy(settings.workspace / ACCURACY_FILE, measured)
    publish_derived(settings.workspace, results[-1].epoch)  # its report now shows the accuracy
    return DemoSummary(world.root, tuple(results), accuracy)


def measure_accuracy(world: World, results: list[EpochResult]) -> dict[str, Accuracy]:
    """Buildings and crop health of the last epoch against the world's truth."""
    last = results[-1]
    truth = world.paths.truth
    detected = gpd.read_file(last.geopackage, layer="buildings")
    accuracy = {
        "buildings": object_scores(
            detected, gpd.read_file(truth, layer=f"buildings_{last.epoch}").to_crs(detected.crs)
        )
    }
    health = class_scores(
        last.out_dir / "crop_health.tif",
        gpd.read_file(truth, layer="health"),
        "health",
        HEALTH_CLASSES,
    )
    accuracy |= {f"health:{name}": value for name, value in health.items()}
    accuracy["flagged parcels"] = flag_scores(
        gpd.read_file(last.geopackage, layer="flagged_parcels"),
        gpd.read_file(truth, layer=f"buildings_{last.epoch}"),
    )
    return accuracy


def print_epoch_result(result: EpochResult, console: Console) -> None:
    console.print(
        f"[bold]{result.epoch}[/] ({result.captured_on}): {result.images} images "
        f"({len(result.skipped)} skipped), mosaic {result.mosaic.width} x "
        f"{result.mosaic.height} px, {result.buildings} buildings, "
        f"{result.new_buildings} new or grown, {result.flags} flagged parcels, "
        f"{result.zones} management zones, {len(result.declining)} declining parcels"
        + (f" ({', '.join(result.declining)})" if result.declining else "")
    )
    for name, reason in result.skipped:
        console.print(f"  skipped {name}: {reason}")
    for tile in failed_tiles(result.mosaic.path):
        console.print(
            f"  [yellow]tile left as no-data[/] at px ({tile.col_off}, {tile.row_off}): "
            f"{escape(tile.error)}"
        )
    for problem in result.undelivered:
        console.print(f"  [yellow]not sent[/] {problem}")
    console.print(f"  GeoPackage: {result.geopackage}")
    console.print(f"  mosaic:     {result.mosaic.path}")
    if result.dsm:
        console.print(f"  surface model (height cue): {result.dsm}")
    if result.mission_plan:
        console.print(f"  mission:    {result.mission_plan}")


def print_planned_mission(planned: PlannedMission, console: Console) -> None:
    """One summary line, the angle against QGroundControl's 0°, warnings, the files."""
    mission = planned.mission
    console.print(
        f"{mission.name}: {len(mission.waypoints)} waypoints, {mission.photo_count} photos, "
        f"{mission.distance_m / 1000:.2f} km, ~{mission.estimated_time_s / 60:.1f} min "
        f"at {mission.altitude_m:.0f} m AGL ({mission.spec.gsd_cm:.2f} cm/px), "
        f"grid {mission.spec.grid_angle_deg:.0f}°"
    )
    if planned.angle is not None:
        zero = planned.angle.at_zero
        console.print(
            f"  at QGroundControl's default 0°: {zero.time_s / 60:.1f} min, "
            f"{zero.distance_m / 1000:.2f} km ({planned.angle.time_ratio:.2f}x the time)"
        )
    for warning in mission.warnings:
        console.print(f"  warning: {warning}")
    for note in planned.notes:
        console.print(f"  note: {note}")
    for kind, path in planned.files.items():
        console.print(f"  {kind + ':':10s} {path}")


def print_demo_summary(summary: DemoSummary, console: Console) -> None:
    console.print(f"\n[bold]Raqib demo[/] — world: {summary.world}")
    if any(result.dsm for result in summary.epochs):
        console.print(f"Buildings detected with height: {DEMO_DSM}.")
    for result in summary.epochs:
        print_epoch_result(result, console)
    table = Table(title="Accuracy against the world's truth (models trained on another seed)")
    for column in ("what", "precision", "recall", "F1", "kappa", "support"):
        table.add_column(column)
    for name, acc in summary.accuracy.items():
        table.add_row(
            name,
            f"{acc.precision:.2f}",
            f"{acc.recall:.2f}",
            f"{acc.f1:.2f}",
            "" if acc.kappa is None else f"{acc.kappa:.2f}",
            str(acc.support),
        )
    console.print(table)


# -- schedules -----------------------------------------------------------------------------

SURVEY_CRON = "0 6 * * 1"
"""Default schedule of the commune surveys: Mondays at 06:00."""
SCHEDULE_TIMEZONE = "Africa/Casablanca"
SCHEDULED_FLOW = "commune-survey"
NEXT_RUNS_LISTED = 3
START_SERVER = (
    "start one (`prefect server start --host 127.0.0.1`) and export "
    "PREFECT_API_URL=http://127.0.0.1:4200/api (docs/operations.md)"
)


@flow(name=SCHEDULED_FLOW, validate_parameters=False)
def commune_survey(
    world: str, commune: str, workspace: str, epoch: str | None = None
) -> EpochResult:
    """What a schedule runs: the survey of one commune of a world (its latest epoch unless
    named) into the commune's own folder of ``workspace``; other settings come from the
    serving process (its working folder's raqib.toml, its ``RAQIB_*`` environment)."""
    world_dir = Path(world)
    flown = epoch or load_world(world_dir).epochs[-1][0]
    settings = load_settings(workspace=commune_workspace(Path(workspace), commune))
    return survey(world_dir, flown, settings, commune)


def commune_slug(commune: str) -> str:
    """A commune's name as a folder or deployment name: lower case, words joined by '-'."""
    return re.sub(r"[\W_]+", "-", commune.strip().lower()).strip("-")


def commune_workspace(workspace: Path, commune: str) -> Path:
    """The folder of one commune's epochs (its manifest, histories) inside ``workspace``."""
    return workspace / commune_slug(commune)


@dataclass(frozen=True)
class SurveySchedule:
    """The commune surveys of a world on one cron schedule (all its communes by default)."""

    world: Path
    workspace: Path
    communes: tuple[str, ...] = ()
    cron: str = SURVEY_CRON
    timezone: str = SCHEDULE_TIMEZONE
    epoch: str | None = None


def survey_deployments(schedule: SurveySchedule) -> list[RunnerDeployment]:
    """One deployment of :func:`commune_survey` per commune; InputError for a bad cron, an
    unknown time zone, world, epoch or commune (before anything is registered)."""
    if schedule.timezone not in available_timezones():
        raise InputError(
            "--timezone",
            f"unknown time zone {schedule.timezone!r} (an IANA name like {SCHEDULE_TIMEZONE})",
        )
    try:
        cron = Cron(schedule.cron, timezone=schedule.timezone)
    except ValueError as exc:
        raise InputError("--cron", f"{schedule.cron!r} is not a cron schedule ({exc})") from exc
    world = load_world(schedule.world)
    epochs = [name for name, _ in world.epochs]
    if schedule.epoch is not None and schedule.epoch not in epochs:
        raise InputError(
            world.paths.metadata, f"no epoch {schedule.epoch!r}; known: {', '.join(epochs)}"
        )
    parcels = read_parcels(world.paths.parcels, world.crs)
    communes = schedule.communes or tuple(commune_names(parcels))
    for commune in communes:
        commune_parcels(parcels, commune, world.paths.parcels)
    return [
        commune_survey.to_deployment(
            name=f"survey-{commune_slug(commune)}",
            schedule=cron,
            parameters={
                "world": str(world.root.resolve()),
                "commune": commune,
                "workspace": str(schedule.workspace.resolve()),
                "epoch": schedule.epoch,
            },
            description=f"Survey of the commune {commune} ({schedule.cron}, {schedule.timezone})",
            tags=["raqib", "survey"],
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        for commune in communes
    ]


def prefect_server_url(timeout_s: float = 5.0) -> str:
    """The Prefect server that keeps the schedules (``PREFECT_API_URL``), checked to answer;
    InputError saying how to start one (an ephemeral API runs no scheduler)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise InputError("PREFECT_API_URL", f"schedules need a Prefect server: {START_SERVER}")
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout_s):
            pass
    except OSError as exc:
        raise InputError(
            "PREFECT_API_URL", f"no Prefect server answers at {url} ({exc}); {START_SERVER}"
        ) from exc
    return url


def serve_schedules(schedule: SurveySchedule, *, limit: int = 1) -> None:
    """Register the commune surveys with the Prefect server and run each when due (``limit``
    at a time) until stopped by Ctrl-C or SIGTERM; their schedules are paused on the way out."""
    deployments = survey_deployments(schedule)
    prefect_server_url()
    serve(*deployments, limit=limit)


@dataclass(frozen=True)
class RegisteredSchedule:
    """A commune survey as the Prefect server keeps it."""

    deployment: str
    commune: str
    cron: str
    timezone: str
    active: bool
    next_runs: tuple[datetime, ...]
    """Its next scheduled runs, in the schedule's time zone (none while paused)."""


def registered_schedules() -> list[RegisteredSchedule]:
    """The commune surveys registered on the Prefect server, with their next runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    prefect_server_url()
    registered = []
    with get_client(sync_client=True) as client:
        ours = FlowFilter(name=FlowFilterName(any_=[SCHEDULED_FLOW]))
        for deployment in client.read_deployments(flow_filter=ours):
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                    )
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=NEXT_RUNS_LISTED,
            )
            for entry in deployment.schedules or [None]:
                cron = getattr(entry.schedule, "cron", "") if entry else ""
                zone = (getattr(entry.schedule, "timezone", None) if entry else None) or "UTC"
                registered.append(
                    RegisteredSchedule(
                        deployment=f"{SCHEDULED_FLOW}/{deployment.name}",
                        commune=str(deployment.parameters.get("commune", "")),
                        cron=cron,
                        timezone=zone,
                        active=bool(entry and entry.active and not deployment.paused),
                        next_runs=tuple(
                            run.expected_start_time.astimezone(ZoneInfo(zone))
                            for run in runs
                            if run.expected_start_time
                        ),
                    )
                )
    return sorted(registered, key=lambda r: r.deployment)


def print_schedules(schedules: Sequence[RegisteredSchedule], console: Console) -> None:
    if not schedules:
        console.print("no commune survey registered (start `raqib schedule serve`)")
    for entry in schedules:
        state = "active" if entry.active else "paused"
        next_runs = ", ".join(run.strftime("%Y-%m-%d %H:%M %z") for run in entry.next_runs)
        console.print(
            f"{entry.deployment}  commune {entry.commune!r}  cron {entry.cron!r} "
            f"{entry.timezone}  {state}\n  next runs: {next_runs or '-'}",
            markup=False,
            soft_wrap=True,
        )
