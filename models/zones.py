"""Management zones: per parcel, 3-5 vigour classes of an index raster as polygons no smaller
than a minimum mapping unit (MMU), ready for variable-rate prescriptions.

Each parcel is handled on its own window of the index raster (the raster is never read whole):

1. the index is averaged onto cells of about ``cell_m`` (whole pixels, so memory does not grow
   with the GSD), then over a ``smoothing_m`` box of the parcel's own cells only, so orchard
   crowns and bare inter-rows make one vigour value, neighbours do not bleed in, and cells
   the parcel's edge only touches take values from inside;
2. the parcel's values are split into ``n_zones`` classes by a ``ZONE_METHODS`` rule
   (quantiles or 1-D k-means), class 1 being the lowest vigour;
3. classes pass a majority filter (:func:`smooth_classes`), then regions smaller than the MMU
   merge into their largest neighbour (GDAL's sieve, ``rasterio.features.sieve``);
4. regions are polygonised (``rasterio.features.shapes``) and clipped to the parcel; a clipped
   polygon still below the MMU merges into the zone it shares the longest border with.

A parcel smaller than the MMU is one zone of the middle class (a flat, average rate).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from affine import Affine
from rasterio import features as rio_features
from rasterio import windows as rio_windows
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.windows import Window
from shapely.geometry import box, shape
from sklearn.cluster import KMeans

from core.errors import InputError
from core.io import bounded_gdal_cache, write_geopackage
from models.windows import open_georaster

ZONE_COUNTS: tuple[int, ...] = (3, 4, 5)
MMU_HA = 0.05
SMOOTHING_M = 5.0
"""Index averaging box: about one orchard row spacing (5-6 m in the Triffa plain)."""
MAJORITY_KERNEL_M = 3.0
ZONE_CELL_M = 0.5
"""Zones are drawn on cells of about this size (whole pixels, the index averaged over them):
finer than any spreader's section, and a 50 ha parcel is then 2 M cells (whatever the GSD)."""
KMEANS_SAMPLE = 50_000
"""Pixels of a parcel k-means sees at most (a seeded sample); the breaks are 1-D, so enough."""
EVEN_SPREAD = 1e-5
"""A parcel whose smoothed index spans no more than this is even (float32 rounding aside)."""
UNCLASSIFIED = 0
ZONE_COLUMNS: tuple[str, ...] = ("parcel_id", "zone", "index", "index_mean", "area_ha", "rate")
SHAPEFILE_FIELDS: dict[str, str] = {
    "parcel_id": "PARCEL_ID",
    "zone": "ZONE",
    "index": "INDEX",
    "index_mean": "IDX_MEAN",
    "area_ha": "AREA_HA",
    "rate": "RATE",
}
"""Zone column -> shapefile field (dBASE names are at most 10 characters): the parcel, the
zone's class rank (1 = lowest vigour), the index name and its mean over the zone, the area
in hectares and the prescribed rate (in the agronomist's unit, e.g. kg N/ha; empty unless
given)."""
SHAPEFILE_CRS = "EPSG:4326"
"""Tractor terminals commonly read prescriptions only in WGS84 longitude / latitude."""


def quantile_breaks(values: np.ndarray, n_zones: int, seed: int) -> np.ndarray:
    """Breaks putting equal shares of the parcel's pixels in each class."""
    return np.quantile(values, np.arange(1, n_zones) / n_zones)


def kmeans_breaks(values: np.ndarray, n_zones: int, seed: int) -> np.ndarray:
    """Midpoints between the sorted centres of a 1-D k-means (natural breaks) of the values."""
    distinct = np.unique(values)
    if len(distinct) <= n_zones:
        return (distinct[:-1] + distinct[1:]) / 2
    sample = np.random.default_rng(seed).choice(values, min(len(values), KMEANS_SAMPLE), False)
    model = KMeans(n_clusters=n_zones, n_init=4, random_state=seed).fit(sample[:, None])
    centres = np.sort(model.cluster_centers_.ravel())
    return (centres[:-1] + centres[1:]) / 2


ZONE_METHODS: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {
    "quantile": quantile_breaks,
    "kmeans": kmeans_breaks,
}
"""Zoning rules: ``(values, n_zones, seed) -> n_zones - 1`` ascending class breaks."""


@dataclass(frozen=True)
class ZoningNote:
    """A parcel zoned only in part, or not at all, and why."""

    parcel_id: str
    note: str


@dataclass(frozen=True)
class Zoning:
    """Zone polygons (``ZONE_COLUMNS``, in the parcels' CRS) and notes on parcels left out."""

    zones: gpd.GeoDataFrame
    notes: tuple[ZoningNote, ...]


@dataclass(frozen=True)
class _Options:
    n_zones: int
    method: str
    mmu_m2: float
    smoothing_m: float
    majority_kernel_m: float
    seed: int

    @property
    def middle_class(self) -> int:
        """The class of a parcel too small or too even to split: an average rate."""
        return (self.n_zones + 1) // 2


@dataclass(eq=False)
class _Piece:
    """A zone polygon being built: its class rank and the index sum over its pixels."""

    geometry: shapely.Geometry
    rank: int
    index_sum: float
    index_n: int


def smooth_classes(
    classes: np.ndarray,
    *,
    pixel_size_m: float,
    kernel_m: float = MAJORITY_KERNEL_M,
    nodata: int = UNCLASSIFIED,
) -> np.ndarray:
    """Majority filter: each classified pixel takes the most frequent class of the classified
    pixels in a ``kernel_m`` square around it (its own class wins ties). The kernel is in
    metres, so the result does not depend on the GSD; ``nodata`` pixels neither vote nor change.
    """
    size_px = _odd_px(kernel_m, pixel_size_m)
    classified = classes != nodata
    if size_px <= 1 or not classified.any():
        return classes.copy()
    smoothed = classes.copy()
    best_votes = np.zeros(classes.shape, np.float32)
    for code in np.unique(classes[classified]):
        is_code = classes == code
        votes = cv2.boxFilter(
            is_code.view(np.uint8),
            cv2.CV_32F,
            (size_px, size_px),
            normalize=False,
            borderType=cv2.BORDER_CONSTANT,
        )
        votes[is_code] += 0.5
        wins = votes > best_votes
        smoothed[wins & classified] = code
        best_votes[wins] = votes[wins]
    return smoothed


@bounded_gdal_cache()
def zones_of_parcels(
    index_raster: str | Path,
    parcels: gpd.GeoDataFrame,
    *,
    n_zones: int = 3,
    method: str = "quantile",
    mmu_ha: float = MMU_HA,
    smoothing_m: float = SMOOTHING_M,
    majority_kernel_m: float = MAJORITY_KERNEL_M,
    cell_m: float = ZONE_CELL_M,
    rates: Mapping[int, float] | None = None,
    id_column: str = "parcel_id",
    seed: int = 0,
) -> Zoning:
    """Split every parcel into ``n_zones`` vigour zones of a one-band index raster (e.g. from
    ``models.indices.index_raster``), each zone polygon at least ``mmu_ha``.

    ``rates`` maps a zone class (1 = lowest vigour) to its prescribed rate; the ``rate``
    column is nan for classes it does not name. Parcels may be in any CRS; the raster's must
    be projected in metres. Parcels outside the raster, without index values or not
    polygons are skipped with a note, as are parts of parcels without index values.
    ``cell_m``, ``smoothing_m`` and ``majority_kernel_m`` are the steps of the module
    docstring (``cell_m=0`` keeps the raster's pixels).
    """
    _check_options(n_zones, method, mmu_ha, rates)
    if parcels.crs is None:
        raise InputError("parcels", "no CRS")
    if id_column not in parcels.columns:
        raise InputError("parcels", f"no column {id_column!r}")
    rows: list[dict] = []
    notes: list[ZoningNote] = []
    with _open_index(index_raster) as src:
        index_name = src.descriptions[0] or "index"
        grid = _CellGrid.of(src, cell_m)
        options = _Options(n_zones, method, mmu_ha * 10_000, smoothing_m, majority_kernel_m, seed)
        geometries = parcels.geometry.to_crs(src.crs)
        for parcel_id, geometry in zip(parcels[id_column].astype(str), geometries, strict=True):
            if geometry is None or geometry.is_empty:
                notes.append(ZoningNote(parcel_id, "no geometry"))
                continue
            if geometry.geom_type not in ("Polygon", "MultiPolygon"):
                notes.append(ZoningNote(parcel_id, f"a {geometry.geom_type}, not a polygon"))
                continue
            if not geometry.is_valid:
                reason = shapely.is_valid_reason(geometry)
                notes.append(ZoningNote(parcel_id, f"invalid geometry repaired ({reason})"))
                geometry = _polygonal(shapely.make_valid(geometry))
            pieces, parcel_notes = _zone_parcel(src, grid, geometry, options)
            notes += [ZoningNote(parcel_id, note) for note in parcel_notes]
            rows += [_zone_row(parcel_id, piece, index_name, rates or {}) for piece in pieces]
        zones = gpd.GeoDataFrame(rows, columns=[*ZONE_COLUMNS, "geometry"], crs=src.crs)
    zones = zones.astype({"zone": "int32", "index_mean": float, "area_ha": float, "rate": float})
    return Zoning(zones.to_crs(parcels.crs), tuple(notes))


def write_prescription(
    zones: gpd.GeoDataFrame, path: str | Path, *, shapefile_crs: str | None = SHAPEFILE_CRS
) -> tuple[Path, Path]:
    """Write zones as ``<path>.gpkg`` (layer ``zones``, their CRS) and ``<path>.shp`` (fields
    renamed by ``SHAPEFILE_FIELDS``, in ``shapefile_crs``, with .prj and UTF-8 .cpg), each
    atomically. Returns both paths."""
    missing = [column for column in ZONE_COLUMNS if column not in zones.columns]
    if missing:
        raise InputError("zones", f"missing columns {missing}")
    if zones.crs is None:
        raise InputError("zones", "no CRS")
    path = Path(path)
    table = zones[[*ZONE_COLUMNS, "geometry"]]
    gpkg = write_geopackage(path.with_suffix(".gpkg"), {"zones": table})
    table = table.rename(columns=SHAPEFILE_FIELDS)
    if shapefile_crs is not None:
        table = table.to_crs(shapefile_crs)
    return gpkg, _write_shapefile(table, path.with_suffix(".shp"))


def _check_options(
    n_zones: int, method: str, mmu_ha: float, rates: Mapping[int, float] | None
) -> None:
    if n_zones not in ZONE_COUNTS:
        raise InputError("n_zones", f"must be one of {ZONE_COUNTS}, got {n_zones}")
    if method not in ZONE_METHODS:
        raise InputError("method", f"must be one of {sorted(ZONE_METHODS)}, got {method!r}")
    if not mmu_ha >= 0:
        raise InputError("mmu_ha", f"must be >= 0 ha, got {mmu_ha}")
    unknown = sorted(set(rates or {}) - set(range(1, n_zones + 1)))
    if unknown:
        raise InputError("rates", f"classes {unknown} are not zone classes 1..{n_zones}")


def _zone_row(parcel_id: str, piece: _Piece, index_name: str, rates: Mapping[int, float]) -> dict:
    return {
        "parcel_id": parcel_id,
        "zone": piece.rank,
        "index": index_name,
        "index_mean": piece.index_sum / piece.index_n if piece.index_n else math.nan,
        "area_ha": piece.geometry.area / 10_000,
        "rate": rates.get(piece.rank, math.nan),
        "geometry": piece.geometry,
    }


def _polygonal(geometry: shapely.Geometry) -> shapely.Geometry:
    """The polygons of a geometry (``make_valid`` may add lines or points)."""
    return shapely.union_all([part for part in shapely.get_parts(geometry) if part.area > 0])


def _open_index(path: str | Path) -> DatasetReader:
    src = open_georaster(path, north_up=True)
    problem = None
    if src.count != 1:
        problem = f"expected a one-band index raster, got {src.count} bands"
    elif src.crs.linear_units not in ("metre", "meter"):
        problem = f"zones need a projected CRS in metres, not {src.crs.to_string()}"
    if problem:
        src.close()
        raise InputError(path, problem)
    return src


@dataclass(frozen=True)
class _CellGrid:
    """The raster's grid coarsened to cells of ``factor`` x ``factor`` pixels (cells the
    raster only partly covers, at its right and bottom edges, left out)."""

    factor: int
    transform: Affine
    width: int
    height: int

    @classmethod
    def of(cls, src: DatasetReader, cell_m: float) -> _CellGrid:
        factor = max(1, round(cell_m / abs(src.transform.a)))
        transform = src.transform @ Affine.scale(factor)
        return cls(factor, transform, src.width // factor, src.height // factor)

    @property
    def footprint(self) -> shapely.Polygon:
        return box(*rio_windows.bounds(Window(0, 0, self.width, self.height), self.transform))

    def window(self, parcel: shapely.Geometry) -> Window | None:
        """The cells around the parcel's bounds, or None when they miss the grid."""
        left, bottom, right, top = parcel.bounds
        (c0, r0), (c1, r1) = ~self.transform @ (left, top), ~self.transform @ (right, bottom)
        col0, col1 = max(0, math.floor(min(c0, c1))), min(self.width, math.ceil(max(c0, c1)))
        row0, row1 = max(0, math.floor(min(r0, r1))), min(self.height, math.ceil(max(r0, r1)))
        if col1 <= col0 or row1 <= row0:
            return None
        return Window(col0, row0, col1 - col0, row1 - row0)

    def read(self, src: DatasetReader, cells: Window) -> np.ndarray:
        """The index over ``cells``, averaged from its pixels (nodata left out), nan where none."""
        f = self.factor
        pixels = Window(cells.col_off * f, cells.row_off * f, cells.width * f, cells.height * f)
        values = src.read(
            1,
            window=pixels,
            out_shape=(int(cells.height), int(cells.width)),
            resampling=Resampling.average,
            masked=True,
        )
        return values.astype(np.float32).filled(np.nan)


def _zone_parcel(
    src: DatasetReader, grid: _CellGrid, parcel: shapely.Geometry, options: _Options
) -> tuple[list[_Piece], list[str]]:
    """Zone pieces of one parcel (in the raster's CRS) and notes on what was left out."""
    window = grid.window(parcel)
    if window is None:
        return [], ["outside the index raster"]
    notes = []
    imaged = parcel if grid.footprint.contains(parcel) else parcel.intersection(grid.footprint)
    if imaged is not parcel:
        share = 100 * imaged.area / parcel.area
        notes.append(f"only {share:.0f}% inside the index raster: zones cover that part")
    transform = rio_windows.transform(window, grid.transform)
    index = grid.read(src, window)
    inside = _burn(parcel, window, transform, all_touched=False)
    touched = _burn(parcel, window, transform, all_touched=True)
    valid = inside & np.isfinite(index)
    if imaged.area < options.mmu_m2:
        values = index[valid] if valid.any() else index[touched & np.isfinite(index)]
        if not values.size:
            return [], ["no index values"]
        return [_Piece(imaged, options.middle_class, float(values.sum()), values.size)], notes
    if not valid.any():
        return [], ["no index values"]
    cell_m = math.sqrt(abs(transform.a * transform.e))
    classes = _vigour_classes(index, valid, touched, cell_m, options)
    cells = max(1, math.ceil(options.mmu_m2 / cell_m**2))
    classes = rio_features.sieve(classes, cells, mask=touched)
    unzoned = touched & (classes == UNCLASSIFIED)
    if unzoned.any():
        notes.append(f"{unzoned.sum() * cell_m**2:.0f} m2 without index values left unzoned")
    pieces = _pieces(classes, touched, index, valid, transform, parcel)
    return _merge_small(pieces, options.mmu_m2), notes


def _vigour_classes(
    index: np.ndarray, valid: np.ndarray, touched: np.ndarray, cell_m: float, options: _Options
) -> np.ndarray:
    """Classes 1..n_zones of the index smoothed over the parcel's ``valid`` cells, on every
    ``touched`` cell within reach of one, majority-filtered; ``UNCLASSIFIED`` elsewhere."""
    smoothed = _box_mean(index, valid, _odd_px(options.smoothing_m, cell_m, minimum=3))
    known = touched & np.isfinite(smoothed)
    values = smoothed[known & valid]
    classes = np.full(index.shape, UNCLASSIFIED, np.uint8)
    if np.ptp(values) <= EVEN_SPREAD:
        classes[known] = options.middle_class
        return classes
    breaks = ZONE_METHODS[options.method](values, options.n_zones, options.seed)
    classes[known] = np.digitize(smoothed[known], breaks) + 1
    return smooth_classes(classes, pixel_size_m=cell_m, kernel_m=options.majority_kernel_m)


def _burn(
    parcel: shapely.Geometry, window: Window, transform: Affine, *, all_touched: bool
) -> np.ndarray:
    """Pixels of ``window`` whose centre the parcel covers (or that it touches at all)."""
    shape = (int(window.height), int(window.width))
    burnt = rio_features.rasterize(
        [(parcel, 1)], out_shape=shape, transform=transform, all_touched=all_touched, dtype="uint8"
    )
    return burnt.astype(bool)


def _box_mean(values: np.ndarray, weights: np.ndarray, size_px: int) -> np.ndarray:
    """Mean of ``values`` where ``weights`` over a ``size_px`` box around each pixel; nan
    where the box holds none."""
    kernel = (size_px, size_px)
    w = weights.astype(np.float32)
    total = cv2.boxFilter(np.where(weights, values, 0), -1, kernel, borderType=cv2.BORDER_CONSTANT)
    count = cv2.boxFilter(w, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    mean = np.full(values.shape, np.nan, np.float32)
    np.divide(total, count, out=mean, where=count > 1e-6)
    return mean


def _odd_px(length_m: float, pixel_m: float, *, minimum: int = 1) -> int:
    """An odd kernel size in pixels spanning about ``length_m``."""
    size = max(minimum, round(length_m / pixel_m))
    return size if size % 2 else size + 1


def _pieces(
    classes: np.ndarray,
    zoned: np.ndarray,
    index: np.ndarray,
    valid: np.ndarray,
    transform: Affine,
    parcel: shapely.Geometry,
) -> list[_Piece]:
    """One piece per 4-connected region of a class, clipped to the parcel, with the index
    sum over its valid pixels."""
    regions = np.zeros(classes.shape, np.int32)
    ranks = [0]
    for rank in np.unique(classes[zoned & (classes != UNCLASSIFIED)]):
        count, labels = cv2.connectedComponents(
            (zoned & (classes == rank)).view(np.uint8), connectivity=4, ltype=cv2.CV_32S
        )
        regions = np.where(labels > 0, labels + len(ranks) - 1, regions)
        ranks += [int(rank)] * (count - 1)
    n = len(ranks)
    index_sum = np.bincount(regions[valid], index[valid].astype(np.float64), minlength=n)
    index_n = np.bincount(regions[valid], minlength=n)
    pieces = []
    for polygon, region in rio_features.shapes(regions, mask=regions > 0, transform=transform):
        region = int(region)
        clipped = shapely.intersection(shape(polygon), parcel)
        if clipped.area > 0:
            pieces.append(
                _Piece(
                    _polygonal(clipped),
                    ranks[region],
                    float(index_sum[region]),
                    int(index_n[region]),
                )
            )
    return pieces


def _merge_small(pieces: list[_Piece], mmu_m2: float) -> list[_Piece]:
    """Merge pieces below ``mmu_m2``, smallest first, into the neighbour sharing the longest
    border; a piece without neighbours stays."""
    pieces = list(pieces)
    while True:
        small = sorted(
            (piece for piece in pieces if piece.geometry.area < mmu_m2),
            key=lambda piece: piece.geometry.area,
        )
        merged = False
        for piece in small:
            others = [other for other in pieces if other is not piece]
            shared = [
                shapely.intersection(piece.geometry.boundary, other.geometry.boundary).length
                for other in others
            ]
            if others and max(shared) > 0:
                target = others[int(np.argmax(shared))]
                target.geometry = shapely.union(target.geometry, piece.geometry)
                target.index_sum += piece.index_sum
                target.index_n += piece.index_n
                pieces = [other for other in pieces if other is not piece]
                merged = True
                break
        if not merged:
            return pieces


def _write_shapefile(table: gpd.GeoDataFrame, path: Path) -> Path:
    """Write a shapefile in a temporary folder beside ``path``, then move its files into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.stem}."))
    try:
        pyogrio.write_dataframe(
            table, folder / path.name, driver="ESRI Shapefile", layer_options={"ENCODING": "UTF-8"}
        )
        for part in sorted(folder.iterdir()):
            os.replace(part, path.with_suffix(part.suffix))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path
