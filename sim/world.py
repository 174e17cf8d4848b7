"""A seeded synthetic Berkane scene with ground truth: two orthophotos, parcels, records.

``generate`` lays out a strip of Berkane town and farm parcels of the Triffa plain at real
coordinates (south-west corner near 34.928 N, 2.300 W), renders a winter and a summer
orthophoto, each with a surface model (``sim._render_dsm``), and writes the cadastre, permits,
public projects and the truth the models are scored against. Between the epochs the town
gains new houses, works sites and a few extensions of standing houses
(``sim._render_extensions``). Same seed, same bytes
(orthophotos) and same records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.windows import Window
from scipy.spatial import cKDTree
from shapely.geometry import Point, Polygon, box

from core.capture_time import capture_tags
from core.errors import InputError
from core.io import atomic_path
from sim._render_dsm import DSM_GSD_M, render_dsm
from sim._render_extensions import plant_extensions
from sim._render_layout import Layout, health_zones, make_layout, orchard_planting, shift
from sim._render_ortho import SUMMER, WINTER, EpochPainter, Season

CRS = "EPSG:32630"
SW_CORNER_LONLAT = (-2.300, 34.928)
GROUND_ELEVATION_M = 120.0
HOME_LOCAL_M = (10.0, 44.5)  # take-off on the road's north shoulder, west end

# Sun (azimuth clockwise from north, elevation) at capture time, computed with NOAA's
# solar-position equations for 34.93 N, 2.30 W; local time is UTC+01:00.
SEASONS = (
    (date(2026, 1, 15), "11:00", Season("epoch1", 144.5, 25.0, **WINTER)),  # type: ignore[arg-type]
    (date(2026, 7, 10), "12:00", Season("epoch2", 122.8, 69.5, **SUMMER)),  # type: ignore[arg-type]
)
PROJECT = {
    "project_id": "PRJ-001",
    "name": "École primaire Hay Al Qods",
    "start": "2025-09-01",
    "planned_end": "2026-12-31",
}
PERMIT_COLUMNS = ["permit_id", "parcel_id", "status", "issued", "expires", "permitted_footprint_m2"]
PLANTING_MATCH_M = 0.6  # a rendered crown lies within this of its planting position (jitter 0.12 m)


@dataclass(frozen=True)
class WorldPaths:
    """Where a world's files live."""

    root: Path

    def ortho(self, epoch_name: str) -> Path:
        return self.root / f"ortho_{epoch_name}.tif"

    def dsm(self, epoch_name: str) -> Path:
        """The epoch's surface model (float32 metres, ``sim._render_dsm.DSM_GSD_M`` pixels)."""
        return self.root / f"dsm_{epoch_name}.tif"

    @property
    def parcels(self) -> Path:
        return self.root / "parcels.gpkg"

    @property
    def permits(self) -> Path:
        return self.root / "permits.csv"

    @property
    def projects(self) -> Path:
        return self.root / "projects.gpkg"

    @property
    def truth(self) -> Path:
        return self.root / "truth.gpkg"

    @property
    def metadata(self) -> Path:
        return self.root / "world.json"


@dataclass(frozen=True)
class World:
    """A generated world: its grid, place, dates and files."""

    root: Path
    crs: str
    bounds: tuple[float, float, float, float]
    gsd_m: float
    ground_elevation_m: float
    epochs: tuple[tuple[str, date], ...]
    aoi_lonlat: Polygon
    home_lonlat: tuple[float, float]
    paths: WorldPaths


def _origin_utm() -> tuple[float, float]:
    """The south-west corner in EPSG:32630, snapped to whole metres."""
    to_utm = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    x, y = to_utm.transform(*SW_CORNER_LONLAT)
    return float(round(x)), float(round(y))


def _tiled_profile(
    width: int, height: int, left: float, top: float, pixel_m: float, **options: object
) -> dict[str, object]:
    """A deflate-compressed, 512 x 512 tiled GeoTIFF on the world's grid."""
    return dict(
        driver="GTiff",
        width=width,
        height=height,
        crs=CRS,
        transform=Affine(pixel_m, 0.0, left, 0.0, -pixel_m, top),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        **options,
    )


def _write_ortho(
    path: Path, painter: EpochPainter, left: float, top: float, captured_at: datetime
) -> None:
    """Paint the epoch and write its orthophoto band by band as it is finished."""
    canvas = painter.canvas
    width, height = canvas.width_px, canvas.height_px
    profile = _tiled_profile(
        width, height, left, top, canvas.gsd_m,
        count=3, dtype="uint8", predictor=2, photometric="RGB", interleave="pixel",
    )  # fmt: skip
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for rows, band in painter.paint():
            window = Window(0, rows.start, width, rows.stop - rows.start)
            dst.write(np.moveaxis(band, -1, 0), window=window)
        dst.colorinterp = [
            rasterio.enums.ColorInterp.red,
            rasterio.enums.ColorInterp.green,
            rasterio.enums.ColorInterp.blue,
        ]
        dst.update_tags(**capture_tags(captured_at))


def _write_dsm(path: Path, heights: np.ndarray, left: float, top: float) -> None:
    height, width = heights.shape
    profile = _tiled_profile(
        width, height, left, top, DSM_GSD_M, count=1, dtype="float32", nodata=-9999.0, predictor=3
    )
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(heights, 1)


def _write_layers(path: Path, layers: dict[str, gpd.GeoDataFrame]) -> None:
    with atomic_path(path) as tmp:
        for name, frame in layers.items():
            frame.to_file(tmp, layer=name, driver="GPKG", engine="pyogrio")


def _frame(rows: list[dict], columns: list[str]) -> gpd.GeoDataFrame:
    if not rows:
        return gpd.GeoDataFrame(
            {c: pd.Series(dtype=str) for c in columns}, geometry=gpd.GeoSeries([], crs=CRS), crs=CRS
        )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)[columns + ["geometry"]]


def _buildings(layout: Layout, epoch2: bool, left: float, bottom: float) -> gpd.GeoDataFrame:
    """The epoch's footprints; in epoch 2 an extended house is one footprint with its annex
    and carries the extension's case, and ``change`` says "new", "grown" or "unchanged"."""
    extended = {e.building_id: e for e in layout.extensions} if epoch2 else {}
    rows = []
    for b in layout.buildings:
        if not (b.in_epoch1 or epoch2):
            continue
        row = dict(
            building_id=b.building_id,
            parcel_id=b.parcel_id,
            case=b.case,
            roof=b.roof,
            height_m=b.height_m,
            geometry=shift(b.footprint, left, bottom),
        )
        if epoch2:
            row["change"] = "unchanged" if b.in_epoch1 else "new"
        if b.building_id in extended:
            annex = extended[b.building_id].annex
            row |= dict(
                case=annex.case,
                change="grown",
                geometry=shift(b.footprint.union(annex.footprint), left, bottom),
            )
        rows.append(row)
    columns = ["building_id", "parcel_id", "case", "roof", "height_m"]
    return _frame(rows, columns + (["change"] if epoch2 else []))


def _extensions(layout: Layout, left: float, bottom: float) -> gpd.GeoDataFrame:
    """The annexes built between the epochs and the buildings they extend."""
    rows = [
        dict(
            building_id=e.building_id,
            parcel_id=e.parcel_id,
            case=e.case,
            roof=e.roof,
            height_m=e.annex.height_m,
            change="grown",
            geometry=shift(e.annex.footprint, left, bottom),
        )
        for e in layout.extensions
    ]
    return _frame(rows, ["building_id", "parcel_id", "case", "roof", "height_m", "change"])


def _trees(
    layout: Layout, crowns: list[tuple[float, float, float]], left: float, bottom: float
) -> gpd.GeoDataFrame:
    """Every orchard planting position (alive: its painted crown; removed: none painted there)
    and every street tree."""
    painted = np.array(crowns, dtype=float).reshape(-1, 3)
    index = cKDTree(painted[:, :2])
    rows = []
    for parcel in layout.parcels:
        if parcel.land_use != "orchard":
            continue
        planted = orchard_planting(parcel)
        distance, nearest = index.query(planted, distance_upper_bound=PLANTING_MATCH_M)
        alive = np.isfinite(distance)
        inside = shapely.contains_xy(parcel.geometry, painted[:, 0], painted[:, 1])
        if alive.sum() != inside.sum():
            raise RuntimeError(f"orchard {parcel.parcel_id}: planting and painted crowns disagree")
        for k, ((x, y), live) in enumerate(zip(planted, alive, strict=True)):
            px, py, radius = painted[nearest[k]] if live else (x, y, np.nan)
            rows.append(
                dict(
                    parcel_id=parcel.parcel_id,
                    planting="orchard",
                    status="alive" if live else "removed",
                    crown_radius_m=float(radius),
                    geometry=Point(left + px, bottom + py),
                )
            )
    rows += [
        dict(
            parcel_id=None,
            planting="street",
            status="alive",
            crown_radius_m=r,
            geometry=Point(left + x, bottom + y),
        )
        for x, y, r in layout.street_trees
    ]
    trees = _frame(rows, ["parcel_id", "planting", "status", "crown_radius_m"])
    trees.insert(0, "tree_id", [f"T-{i + 1:05d}" for i in range(len(trees))])
    return trees


def _write_records(
    layout: Layout, paths: WorldPaths, left: float, bottom: float, trees: gpd.GeoDataFrame
) -> None:
    parcels = _frame(
        [
            dict(
                parcel_id=p.parcel_id,
                commune=p.commune,
                land_use=p.land_use,
                geometry=shift(p.geometry, left, bottom),
            )
            for p in layout.parcels
        ],
        ["parcel_id", "commune", "land_use"],
    )
    _write_layers(paths.parcels, {"parcels": parcels})

    permits = pd.DataFrame(
        [
            [
                p.permit_id,
                p.parcel_id,
                p.status,
                p.issued.isoformat(),
                p.expires.isoformat(),
                p.permitted_footprint_m2,
            ]
            for p in layout.permits
        ],
        columns=PERMIT_COLUMNS,
    )
    with atomic_path(paths.permits) as tmp:
        permits.to_csv(tmp, index=False)

    project_geom = next(p.geometry for p in layout.parcels if p.parcel_id == layout.project_parcel)
    projects = _frame(
        [
            dict(
                PROJECT, parcel_id=layout.project_parcel, geometry=shift(project_geom, left, bottom)
            )
        ],
        [*PROJECT, "parcel_id"],
    )
    _write_layers(paths.projects, {"projects": projects})

    health = _frame(
        [
            dict(parcel_id=pid, health=h, geometry=shift(g, left, bottom))
            for pid, h, g in health_zones(layout)
        ],
        ["parcel_id", "health"],
    )
    greenhouses = _frame(
        [
            dict(greenhouse_id=f"GH-{i + 1:03d}", parcel_id=pid, geometry=shift(g, left, bottom))
            for i, (g, pid) in enumerate(
                zip(layout.greenhouses, layout.greenhouse_parcels, strict=True)
            )
        ],
        ["greenhouse_id", "parcel_id"],
    )
    _write_layers(
        paths.truth,
        {
            "buildings_epoch1": _buildings(layout, False, left, bottom),
            "buildings_epoch2": _buildings(layout, True, left, bottom),
            "extensions": _extensions(layout, left, bottom),
            "health": health,
            "greenhouses": greenhouses,
            "trees": trees,
        },
    )


def _aoi_lonlat(bounds: tuple[float, float, float, float]) -> Polygon:
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    ring = np.asarray(shapely.segmentize(box(*bounds), 50.0).exterior.coords)
    lon, lat = to_lonlat.transform(ring[:, 0], ring[:, 1])
    return Polygon(np.column_stack([lon, lat]))


def generate(
    out_dir: Path,
    seed: int = 7,
    width_m: float = 500,
    height_m: float = 400,
    gsd_m: float = 0.1,
) -> World:
    """Generate a world into ``out_dir`` (orthophotos and surface models, parcels, permits,
    projects, truth). Memory peaks at about 28 bytes a pixel of one orthophoto plus ~0.3 GiB
    (1 km² at 10 cm: 3 GiB)."""
    if width_m < 150 or height_m < 140:
        raise InputError(
            "width_m/height_m",
            f"{width_m:g} m x {height_m:g} m is too small: a world needs at least"
            " 150 m x 140 m to hold the town and the farms",
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = WorldPaths(out_dir)
    left, bottom = _origin_utm()
    width_m, height_m = float(round(width_m)), float(round(height_m))
    layout = make_layout(
        np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,))), width_m, height_m
    )
    layout = plant_extensions(  # their own stream: the rest of the world stays as it was
        layout, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(4,)))
    )
    top = bottom + height_m
    for k, (day, time_local, season) in enumerate(SEASONS):
        epoch_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, k)))
        painter = EpochPainter(layout, season, gsd_m, seed, epoch_rng)
        crowns = [(x, y, r) for x, y, r, _, _ in painter.trees()]  # the same in every epoch
        captured_at = datetime.fromisoformat(f"{day.isoformat()}T{time_local}+01:00")
        _write_ortho(paths.ortho(season.name), painter, left, top, captured_at)
        del painter  # frees its canvas (16 bytes a pixel) before the surface model
        dsm_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3, k)))
        heights = render_dsm(layout, crowns, k > 0, GROUND_ELEVATION_M, dsm_rng)
        _write_dsm(paths.dsm(season.name), heights, left, top)
    _write_records(layout, paths, left, bottom, _trees(layout, crowns, left, bottom))

    bounds = (left, bottom, left + width_m, top)
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    home = to_lonlat.transform(left + HOME_LOCAL_M[0], bottom + HOME_LOCAL_M[1])
    metadata = {
        "seed": seed,
        "crs": CRS,
        "bounds": list(bounds),
        "gsd_m": gsd_m,
        "ground_elevation_m": GROUND_ELEVATION_M,
        "epochs": [
            {
                "name": s.name,
                "date": d.isoformat(),
                "time_local": t,
                "utc_offset": "+01:00",
                "sun_azimuth_deg": s.sun_azimuth_deg,
                "sun_elevation_deg": s.sun_elevation_deg,
            }
            for d, t, s in SEASONS
        ],
        "aoi_lonlat_wkt": _aoi_lonlat(bounds).wkt,
        "home_lonlat": [round(home[0], 8), round(home[1], 8)],
        "files": {
            "orthos": {s.name: paths.ortho(s.name).name for _, _, s in SEASONS},
            "parcels": paths.parcels.name,
            "permits": paths.permits.name,
            "projects": paths.projects.name,
            "truth": paths.truth.name,
        },
    }
    with atomic_path(paths.metadata) as tmp:
        tmp.write_text(json.dumps(metadata, indent=2, ensure_ascii=False), encoding="utf-8")
    return load_world(out_dir)


def load_world(root: Path) -> World:
    """The world generated earlier into ``root`` (read from its ``world.json``)."""
    paths = WorldPaths(Path(root))
    try:
        meta = json.loads(paths.metadata.read_text(encoding="utf-8"))
        return World(
            root=paths.root,
            crs=meta["crs"],
            bounds=tuple(float(v) for v in meta["bounds"]),  # type: ignore[arg-type]
            gsd_m=float(meta["gsd_m"]),
            ground_elevation_m=float(meta["ground_elevation_m"]),
            epochs=tuple((e["name"], date.fromisoformat(e["date"])) for e in meta["epochs"]),
            aoi_lonlat=shapely.from_wkt(meta["aoi_lonlat_wkt"]),
            home_lonlat=(float(meta["home_lonlat"][0]), float(meta["home_lonlat"][1])),
            paths=paths,
        )
    except FileNotFoundError as exc:
        raise InputError(paths.metadata, "no world here; run sim.world.generate first") from exc
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(paths.metadata, f"not a valid world description: {exc!r}") from exc
