"""The image catalogue: GeoPackage layers of photo footprints and centres, and STAC items.

A persistent catalogue lives in one folder (``<workspace>/catalog`` by convention)::

    images.gpkg          layers ``images`` (footprint polygons) and ``image_centres`` (points),
                         one row per file
    stac/catalog.json    one STAC collection per flight or epoch, one item per capture (an
                         RGB photo, or the band files of one multispectral trigger)

Photos are keyed by the sha256 of their bytes: cataloguing the same photos again adds nothing,
and ingesting a folder again under the same collection (a re-flown epoch) replaces its rows.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
from pyproj import CRS

from core.errors import InputError
from core.io import write_geopackage
from core.types import ImageRecord, IngestResult
from pipeline.footprint import footprint, lonlat_to_crs
from pipeline.stac import add_images, check_collection_id, default_collection_id, item_id

WORKSPACE_CATALOG = "catalog"
"""The workspace's catalogue folder, which ``raqib ingest`` and the flows add to."""
CATALOG_GPKG = "images.gpkg"
STAC_DIR = "stac"
IMAGES_LAYER = "images"
CENTRES_LAYER = "image_centres"
_LOCK_FILE = ".catalog.lock"

IMAGE_COLUMNS = (
    "file",
    "path",
    "sha256",
    "captured_at",
    "lon",
    "lat",
    "centre_x_m",
    "centre_y_m",
    "altitude_m",
    "yaw_deg",
    "pitch_deg",
    "roll_deg",
    "camera",
    "bands",
    "capture_id",
    "width_px",
    "height_px",
    "collection",
    "stac_item",
)


@dataclass(frozen=True)
class CatalogUpdate:
    """What :func:`catalog_images` did: where the catalogue is, which photos it added."""

    geopackage: Path
    stac_catalog: Path
    collection: str
    added: tuple[str, ...]
    """sha256 of the photos newly catalogued, in ingest order."""
    already_catalogued: tuple[str, ...]
    """sha256 of the photos that were already in the catalogue (left as they were)."""
    replaced: tuple[str, ...]
    """sha256 of the photos removed: once in an ingested folder under the same collection,
    no longer among its photos (a re-flown epoch's first flight)."""


def images_frame(result: IngestResult, crs: str, *, collection: str = "") -> gpd.GeoDataFrame:
    """Ingested photos with their ground footprints in ``crs`` (the ``images`` layer).

    ``captured_at`` is ISO 8601 with the photo's UTC offset; ``centre_x_m``/``centre_y_m``
    is the camera position in ``crs``; ``stac_item`` the id of the STAC item of the photo's
    capture (shared by the band files of one trigger).
    """
    to_crs = lonlat_to_crs(crs)
    item_of = {
        image.sha256: item_id(capture) for capture in result.captures for image in capture.images
    }
    rows = []
    for record in result.images:
        centre_x_m, centre_y_m = to_crs.transform(record.lon_deg, record.lat_deg)
        rows.append(
            {
                "file": record.path.name,
                "path": str(record.path),
                "sha256": record.sha256,
                "captured_at": record.captured_at.isoformat(),
                "lon": record.lon_deg,
                "lat": record.lat_deg,
                "centre_x_m": centre_x_m,
                "centre_y_m": centre_y_m,
                "altitude_m": record.altitude_m,
                "yaw_deg": record.yaw_deg,
                "pitch_deg": record.pitch_deg,
                "roll_deg": record.roll_deg,
                "camera": record.camera.name,
                "bands": ",".join(record.bands),
                "capture_id": record.capture_id,
                "width_px": record.width_px,
                "height_px": record.height_px,
                "collection": collection,
                "stac_item": item_of[record.sha256],
            }
        )
    geometry = [footprint(record, crs) for record in result.images]
    frame = pd.DataFrame(rows, columns=list(IMAGE_COLUMNS))
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometry, crs=crs), crs=crs)


def centres_frame(images: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The ``images`` rows as points at the camera positions (the ``image_centres`` layer)."""
    points = gpd.points_from_xy(images["centre_x_m"], images["centre_y_m"], crs=images.crs)
    return gpd.GeoDataFrame(images.drop(columns="geometry"), geometry=points, crs=images.crs)


def skipped_frame(result: IngestResult) -> pd.DataFrame:
    """Photos left out of the ingest and why (columns ``path``, ``reason``)."""
    return pd.DataFrame(
        [{"path": str(item.path), "reason": item.reason} for item in result.skipped],
        columns=["path", "reason"],
    )


def catalog_images(
    result: IngestResult, catalog_dir: Path, crs: str, *, collection: str | None = None
) -> CatalogUpdate:
    """Add the ingested photos not yet catalogued to the catalogue in ``catalog_dir``.

    New photos (by sha256) are appended to ``images.gpkg`` (rewritten atomically) and get
    STAC items in the collection ``collection`` (default ``flight-<date of the first
    photo>``). Ingesting a folder again under the same collection (a re-flown epoch)
    replaces that folder's rows in it: those of photos it no longer holds go, with their
    STAC items. One process at a time updates a catalogue (a lock file in ``catalog_dir``).
    InputError if the GeoPackage holds its layer in another CRS than ``crs``.
    """
    catalog_dir = Path(catalog_dir)
    images = list(result.images)
    collection = check_collection_id(
        collection or (default_collection_id(images) if images else "flight")
    )
    gpkg = catalog_dir / CATALOG_GPKG
    with _locked(catalog_dir):
        existing = read_images(gpkg, crs)
        replaced = _replaced_rows(existing, images, collection)
        kept = existing[~replaced]
        known = set(kept["sha256"])
        new: list[ImageRecord] = []
        for record in images:
            if record.sha256 not in known:
                known.add(record.sha256)
                new.append(record)
        if new or replaced.any() or not gpkg.exists():
            added = images_frame(IngestResult(images=tuple(new)), crs, collection=collection)
            frames = [frame for frame in (kept, added) if len(frame)]
            merged = pd.concat(frames, ignore_index=True) if frames else added
            merged = gpd.GeoDataFrame(merged, geometry="geometry", crs=crs)
            write_geopackage(gpkg, {IMAGES_LAYER: merged, CENTRES_LAYER: centres_frame(merged)})
        stale_items = set(existing.loc[replaced, "stac_item"])
        add_images(catalog_dir / STAC_DIR, images, collection, replacing=stale_items)
    added_sha256 = {record.sha256 for record in new}
    ingested_sha256 = {record.sha256 for record in images}
    return CatalogUpdate(
        geopackage=gpkg,
        stac_catalog=catalog_dir / STAC_DIR / "catalog.json",
        collection=collection,
        added=tuple(record.sha256 for record in new),
        already_catalogued=tuple(r.sha256 for r in images if r.sha256 not in added_sha256),
        replaced=tuple(
            sha for sha in existing.loc[replaced, "sha256"] if sha not in ingested_sha256
        ),
    )


def _replaced_rows(
    existing: gpd.GeoDataFrame, images: list[ImageRecord], collection: str
) -> pd.Series:
    """Rows of ``collection`` from the folders of ``images`` whose photo is not one of them
    (re-written by a re-flight, or gone), and the rows sharing a STAC item with those."""
    folders = {_folder(record.path) for record in images}
    ingested = {record.sha256 for record in images}
    in_scope = (existing["collection"] == collection) & existing["path"].map(_folder).isin(folders)
    stale = in_scope & ~existing["sha256"].isin(ingested)
    return stale | (in_scope & existing["stac_item"].isin(existing.loc[stale, "stac_item"]))


def _folder(path: str | Path) -> str:
    """The folder of a photo, as an absolute path (catalogued paths may be relative)."""
    return str(Path(path).resolve().parent)


def read_images(gpkg: Path, crs: str) -> gpd.GeoDataFrame:
    """The catalogue's ``images`` layer (empty if there is no catalogue yet), in ``crs``."""
    if not gpkg.exists():
        return images_frame(IngestResult(images=()), crs)
    try:
        frame = pyogrio.read_dataframe(gpkg, layer=IMAGES_LAYER)
    except pyogrio.errors.DataSourceError as exc:
        raise InputError(gpkg, f"not a readable image catalogue: {exc}") from exc
    except pyogrio.errors.DataLayerError as exc:
        raise InputError(gpkg, f"no '{IMAGES_LAYER}' layer: not an image catalogue") from exc
    if frame.crs is None or not CRS(frame.crs).equals(CRS(crs)):
        found = CRS(frame.crs).to_string() if frame.crs is not None else "no CRS"
        raise InputError(
            gpkg,
            f"the image catalogue is in {found}, not {crs}: "
            "use the workspace's CRS, or start a new catalogue folder",
        )
    missing = [column for column in IMAGE_COLUMNS if column not in frame.columns]
    if missing:
        raise InputError(
            gpkg,
            f"'{IMAGES_LAYER}' layer lacks columns {missing} (an older catalogue?): "
            "move its folder away and ingest the photos again",
        )
    return frame.set_crs(crs, allow_override=True)


@contextmanager
def _locked(catalog_dir: Path) -> Iterator[None]:
    catalog_dir.mkdir(parents=True, exist_ok=True)
    with (catalog_dir / _LOCK_FILE).open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
