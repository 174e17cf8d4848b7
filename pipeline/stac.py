"""The image catalogue as STAC: one Item per capture, one Collection per flight or epoch.

A capture is one trigger of the camera: an RGB photo, or the band files of a multispectral
camera (MicaSense, Sequoia) sharing a capture id. Its Item carries the ground footprint in
lon/lat, one ``data`` asset per file with its bands (``eo``: name, common name, centre
wavelength) and sha256, the view geometry (``view``: off-nadir, look azimuth, sun
position), ``proj`` (a raw frame has no CRS: ``proj:code`` null, ``proj:shape``), ``gsd``
and ``raqib:*`` fields (capture id, height above ground, camera pose). Item ids are built
from file names and content hashes, so re-adding the same photos adds nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

import pystac
import shapely
from astral import Observer
from astral.sun import azimuth as sun_azimuth_deg
from astral.sun import elevation as sun_elevation_deg
from pyproj import Transformer
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.view import ViewExtension
from pystac.stac_io import DefaultStacIO
from pystac.validation import JsonSchemaSTACValidator
from shapely.geometry.polygon import orient

from core.errors import InputError
from core.io import atomic_path
from core.types import Capture, ImageRecord, IngestResult
from pipeline.footprint import footprint, ground_sampling_m

CATALOG_FILE = "catalog.json"
CATALOG_ID = "raqib-images"
SHA256_PROP = "raqib:sha256"
ASSET_KEY = "image"
"""Asset key of a capture made of one file; band files are keyed by their band name."""
MIN_AZIMUTH_TILT_DEG = 1.0
"""Below this off-nadir angle a frame looks straight down: its look azimuth is undefined."""
COMMON_BAND_NAMES = {
    "coastal": "coastal",
    "blue": "blue",
    "green": "green",
    "yellow": "yellow",
    "red": "red",
    "red_edge": "rededge",
    "rededge": "rededge",
    "nir": "nir",
    "near_infrared": "nir",
    "pan": "pan",
    "panchromatic": "pan",
    "lwir": "lwir",
    "thermal": "lwir",
}
"""Band names as ingest writes them (lower case, ``_`` for spaces) -> STAC eo common names."""
MEDIA_TYPES = {
    ".jpg": pystac.MediaType.JPEG,
    ".jpeg": pystac.MediaType.JPEG,
    ".tif": pystac.MediaType.TIFF,
    ".tiff": pystac.MediaType.TIFF,
}
_COLLECTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def item_id(capture: Capture) -> str:
    """The capture's Item id: ``<stem>-<12 hex digits>``.

    For one file, its stem and the start of its sha256; for band files, their common stem
    (``IMG_0000`` for ``IMG_0000_1.tif`` ...) and the start of a hash of their sha256s.
    """
    images = capture.images
    if len(images) == 1:
        return f"{images[0].path.stem}-{images[0].sha256[:12]}"
    stem = os.path.commonprefix([image.path.stem for image in images]).rstrip("_-. ")
    digest = hashlib.sha256("".join(sorted(image.sha256 for image in images)).encode())
    return f"{stem or 'capture'}-{digest.hexdigest()[:12]}"


def local_utm_crs(lon_deg: float, lat_deg: float) -> str:
    """The WGS84 UTM zone CRS containing a point (``EPSG:326zz`` north, ``327zz`` south)."""
    zone = min(int((lon_deg + 180.0) // 6.0) + 1, 60)
    return f"EPSG:{(32600 if lat_deg >= 0 else 32700) + zone}"


def footprint_lonlat(capture: Capture) -> dict[str, Any]:
    """The ground its files' frames cover (convex hull), as a GeoJSON polygon in lon/lat
    (counter-clockwise ring).

    Computed in the capture's own UTM zone, so it is exact wherever the photo was taken.
    """
    first = capture.images[0]
    crs = local_utm_crs(first.lon_deg, first.lat_deg)
    covered = shapely.union_all([footprint(image, crs) for image in capture.images]).convex_hull
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    polygon = shapely.transform(covered, to_lonlat.transform, interleaved=False)
    ring = [(round(x, 8), round(y, 8)) for x, y in orient(polygon).exterior.coords]
    return {"type": "Polygon", "coordinates": [ring]}


def off_nadir_deg(record: ImageRecord) -> float:
    """Angle between the camera axis and the vertical, from gimbal pitch (-90 = nadir) and roll."""
    tilt_rad = math.radians(record.pitch_deg + 90.0)
    roll_rad = math.radians(record.roll_deg)
    cosine = max(-1.0, min(1.0, math.cos(tilt_rad) * math.cos(roll_rad)))
    return math.degrees(math.acos(cosine))


def look_azimuth_deg(record: ImageRecord) -> float | None:
    """Azimuth (clockwise from north) the camera looks towards, None for a nadir frame."""
    if off_nadir_deg(record) < MIN_AZIMUTH_TILT_DEG:
        return None
    forward = math.tan(math.radians(record.pitch_deg + 90.0))
    right = math.tan(math.radians(record.roll_deg))
    return (record.yaw_deg + math.degrees(math.atan2(right, forward))) % 360.0


def image_bands(record: ImageRecord) -> list[Band]:
    """The file's bands: STAC common names where the name is a known one, centre
    wavelengths (µm) where the camera wrote them."""
    wavelengths_nm: tuple[float | None, ...] = record.wavelengths_nm
    if len(wavelengths_nm) != len(record.bands):
        wavelengths_nm = (None,) * len(record.bands)
    return [
        Band.create(
            name=name,
            common_name=COMMON_BAND_NAMES.get(name),
            center_wavelength=None if nm is None else round(nm / 1000.0, 4),
        )
        for name, nm in zip(record.bands, wavelengths_nm, strict=True)
    ]


def asset_keys(capture: Capture) -> list[str]:
    """``image`` for a one-file capture; else each file's band name (``nir``), or its stem
    when it holds several bands or another file has the same band."""
    if len(capture.images) == 1:
        return [ASSET_KEY]
    names = [image.bands[0] if len(image.bands) == 1 else "" for image in capture.images]
    return [
        name if name and names.count(name) == 1 else image.path.stem
        for name, image in zip(names, capture.images, strict=True)
    ]


def capture_item(capture: Capture) -> pystac.Item:
    """The STAC Item of one capture, an asset per file (href: the file's absolute path).

    Time, pose and view are the first file's (the files of one trigger share them); the
    geometry covers every file's frame; ``gsd`` is the coarsest file's.
    """
    first = capture.images[0]
    geometry = footprint_lonlat(capture)
    ring = geometry["coordinates"][0]
    xs, ys = [x for x, _ in ring], [y for _, y in ring]
    properties = {
        "raqib:capture_id": capture.capture_id,
        "raqib:altitude_m": first.altitude_m,
        "raqib:yaw_deg": first.yaw_deg,
        "raqib:pitch_deg": first.pitch_deg,
        "raqib:roll_deg": first.roll_deg,
        "raqib:local_time": first.captured_at.isoformat(),
        "instruments": sorted({image.camera.name for image in capture.images}),
        "gsd": round(max(ground_sampling_m(image) for image in capture.images), 4),
    }
    item = pystac.Item(
        id=item_id(capture),
        geometry=geometry,
        bbox=[min(xs), min(ys), max(xs), max(ys)],
        datetime=first.captured_at.astimezone(UTC),
        properties=properties,
    )
    for key, image in zip(asset_keys(capture), capture.images, strict=True):
        _add_file_asset(item, key, image)
    EOExtension.ext(item, add_if_missing=True)
    _apply_view(item, first)
    return item


def _add_file_asset(item: pystac.Item, key: str, record: ImageRecord) -> None:
    path = record.path.resolve()
    asset = pystac.Asset(
        href=str(path),
        title=path.name,
        media_type=MEDIA_TYPES.get(path.suffix.lower()),
        roles=["data"],
        extra_fields={SHA256_PROP: record.sha256},
    )
    item.add_asset(key, asset)
    EOExtension.ext(asset, add_if_missing=True).bands = image_bands(record)
    projection = ProjectionExtension.ext(asset, add_if_missing=True)
    projection.code = None
    projection.shape = [record.height_px, record.width_px]


def _apply_view(item: pystac.Item, record: ImageRecord) -> None:
    observer = Observer(latitude=record.lat_deg, longitude=record.lon_deg)
    ViewExtension.ext(item, add_if_missing=True).apply(
        off_nadir=round(off_nadir_deg(record), 3),
        azimuth=_rounded(look_azimuth_deg(record)),
        sun_azimuth=round(sun_azimuth_deg(observer, record.captured_at), 3),
        sun_elevation=round(sun_elevation_deg(observer, record.captured_at), 3),
    )


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def default_collection_id(records: Sequence[ImageRecord]) -> str:
    """``flight-YYYY-MM-DD``: the local date of the earliest capture."""
    first = min(record.captured_at for record in records)
    return f"flight-{first.date().isoformat()}"


def check_collection_id(collection_id: str) -> str:
    """The id itself, or InputError if it would not make a safe folder name."""
    if not _COLLECTION_ID.match(collection_id):
        raise InputError(
            collection_id,
            "not a usable flight/epoch name: use letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)",
        )
    return collection_id


class AtomicStacIO(DefaultStacIO):
    """pystac I/O that writes each JSON file atomically (beside it, then renamed)."""

    def write_text_to_href(self, href: str, txt: str) -> None:
        with atomic_path(href) as tmp:
            tmp.write_text(txt, encoding="utf-8")


def open_catalog(stac_dir: Path) -> pystac.Catalog:
    """The catalogue in ``stac_dir``, or a new empty one if there is none yet."""
    path = Path(stac_dir) / CATALOG_FILE
    if not path.exists():
        return pystac.Catalog(
            id=CATALOG_ID,
            catalog_type=pystac.CatalogType.SELF_CONTAINED,
            description="Drone photos ingested by Raqib, one collection per flight or epoch.",
            title="Raqib drone images",
        )
    try:
        return pystac.Catalog.from_file(str(path), stac_io=AtomicStacIO())
    except (OSError, ValueError, KeyError, pystac.STACError) as exc:
        raise InputError(
            path, f"not a readable STAC catalog ({exc}); move it away to start a new one"
        ) from exc


def catalogued_sha256(catalog: pystac.Catalog) -> set[str]:
    """Content hashes of every file already in the catalogue (its assets' ``raqib:sha256``)."""
    return {
        asset.extra_fields.get(SHA256_PROP, "")
        for item in catalog.get_items(recursive=True)
        for asset in item.assets.values()
    }


def add_images(
    stac_dir: Path,
    records: Iterable[ImageRecord],
    collection_id: str,
    *,
    replacing: Collection[str] = (),
) -> tuple[str, ...]:
    """Add an Item per capture of the photos not yet catalogued to ``collection_id``, save.

    The Items ``replacing`` of that collection (photos re-written since) are removed first.
    Photos whose sha256 is already in the catalogue are left out (band files catalogued
    after the rest of their capture get an Item of their own). Returns the new Item ids.
    The catalogue is saved self-contained (relative links); each file is written atomically.
    """
    stac_dir = Path(stac_dir)
    check_collection_id(collection_id)
    catalog = open_catalog(stac_dir)
    removed = _remove_items(catalog, collection_id, replacing)
    known = catalogued_sha256(catalog)
    new: list[ImageRecord] = []
    for record in records:
        if record.sha256 not in known:
            known.add(record.sha256)
            new.append(record)
    if not new and not removed:
        if not (stac_dir / CATALOG_FILE).exists():
            catalog.normalize_and_save(str(stac_dir), stac_io=AtomicStacIO())
        return ()
    collection = flight_collection(catalog, collection_id)
    items = [capture_item(capture) for capture in IngestResult(images=tuple(new)).captures]
    collection.add_items(items)
    if next(iter(collection.get_items()), None) is not None:  # an emptied one keeps its extent
        collection.update_extent_from_items()
    catalog.normalize_hrefs(str(stac_dir))
    stac_io = AtomicStacIO()
    for stac_object in (*items, collection, catalog):  # the root last: it links the rest
        stac_object.save_object(include_self_link=False, stac_io=stac_io)
    saved = {Path(item.self_href) for item in items}
    for item_file in set(removed) - saved:  # unlinked above: a kill leaves unused files only
        item_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            item_file.parent.rmdir()  # the Item's own folder, when empty
    return tuple(item.id for item in items)


def _remove_items(
    catalog: pystac.Catalog, collection_id: str, item_ids: Collection[str]
) -> list[Path]:
    """Take the Items ``item_ids`` out of the collection; the files they were read from."""
    collection = catalog.get_child(collection_id) if item_ids else None
    if not isinstance(collection, pystac.Collection):
        return []
    removed = []
    for item in list(collection.get_items()):
        if item.id in item_ids:
            if item.self_href:
                removed.append(Path(item.self_href))
            collection.remove_item(item.id)
    return removed


def flight_collection(catalog: pystac.Catalog, collection_id: str) -> pystac.Collection:
    """The catalogue's collection ``collection_id``, added (extent filled later) if new."""
    child = catalog.get_child(collection_id)
    if isinstance(child, pystac.Collection):
        return child
    if child is not None:
        raise InputError(collection_id, "is a sub-catalog, not a collection, in the STAC catalog")
    collection = pystac.Collection(
        id=collection_id,
        description=f"Drone photos of {collection_id}.",
        extent=pystac.Extent(
            pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
            pystac.TemporalExtent([[None, None]]),
        ),
    )
    catalog.add_child(collection)
    return collection


class OfflineValidator(JsonSchemaSTACValidator):
    """pystac's JSON-schema validator that never goes to the network.

    STAC core (item, catalog, collection v1.1.0) and GeoJSON schemas come from the copies
    pystac ships; extension schemas from ``schema_dir`` (``*.json``, keyed by their
    ``$id``). An extension whose schema is not there is recorded in :attr:`unchecked`
    instead of being fetched.
    """

    def __init__(self, schema_dir: Path | None = None) -> None:
        super().__init__()
        self.unchecked: set[str] = set()
        for path in sorted(Path(schema_dir).glob("*.json")) if schema_dir else ():
            schema = json.loads(path.read_text(encoding="utf-8"))
            self.schema_cache[schema.get("$id") or schema["id"]] = schema

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        if schema_uri not in self.schema_cache:
            raise pystac.validation.GetSchemaError(
                schema_uri, LookupError("schema not available offline")
            )
        return self.schema_cache[schema_uri]

    def validate_extension(
        self,
        stac_dict: dict[str, Any],
        stac_object_type: pystac.STACObjectType,
        stac_version: str,
        extension_id: str,
        href: str | None = None,
    ) -> str | None:
        if extension_id not in self.schema_cache:
            self.unchecked.add(extension_id)
            return None
        return super().validate_extension(
            stac_dict, stac_object_type, stac_version, extension_id, href
        )


def validate_catalog(catalog: pystac.Catalog, schema_dir: Path | None = None) -> frozenset[str]:
    """Validate the catalogue, its collections and items offline (see :class:`OfflineValidator`).

    Raises ``pystac.STACValidationError`` on the first invalid object; returns the
    extension schema URIs that could not be checked because their schema is not at hand.
    """
    validator = OfflineValidator(schema_dir)
    for parent, _, items in catalog.walk():
        parent.validate(validator=validator)
        for item in items:
            item.validate(validator=validator)
    return frozenset(validator.unchecked)
