"""The image catalogue as STAC: one Item per photo, one Collection per flight or epoch.

Items carry the frame's ground footprint in lon/lat, the photo as a ``data`` asset with
its bands (``eo``), the view geometry (``view``: off-nadir, look azimuth, sun position),
``proj`` (a raw frame has no CRS: ``proj:code`` null, ``proj:shape``), ``gsd`` and
``raqib:*`` fields (sha256, height above ground, camera pose). Item ids are built from the
file name and its content hash, so re-adding the same photos adds nothing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
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
from core.types import ImageRecord
from pipeline.footprint import footprint, ground_sampling_m

CATALOG_FILE = "catalog.json"
CATALOG_ID = "raqib-images"
SHA256_PROP = "raqib:sha256"
ASSET_KEY = "image"
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


def item_id(record: ImageRecord) -> str:
    """The photo's Item id: file stem and the first 12 hex digits of its sha256."""
    return f"{record.path.stem}-{record.sha256[:12]}"


def local_utm_crs(lon_deg: float, lat_deg: float) -> str:
    """The WGS84 UTM zone CRS containing a point (``EPSG:326zz`` north, ``327zz`` south)."""
    zone = min(int((lon_deg + 180.0) // 6.0) + 1, 60)
    return f"EPSG:{(32600 if lat_deg >= 0 else 32700) + zone}"


def footprint_lonlat(record: ImageRecord) -> dict[str, Any]:
    """The frame's footprint as a GeoJSON polygon in lon/lat (counter-clockwise ring).

    Computed in the photo's own UTM zone, so it is exact wherever the photo was taken.
    """
    crs = local_utm_crs(record.lon_deg, record.lat_deg)
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    polygon = shapely.transform(footprint(record, crs), to_lonlat.transform, interleaved=False)
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
    """The photo's bands with their STAC common names where the name is a known one."""
    return [
        Band.create(name=name, common_name=COMMON_BAND_NAMES.get(name)) for name in record.bands
    ]


def image_item(record: ImageRecord) -> pystac.Item:
    """The STAC Item of one ingested photo (asset href: the photo's absolute path)."""
    geometry = footprint_lonlat(record)
    ring = geometry["coordinates"][0]
    xs, ys = [x for x, _ in ring], [y for _, y in ring]
    properties = {
        SHA256_PROP: record.sha256,
        "raqib:altitude_m": record.altitude_m,
        "raqib:yaw_deg": record.yaw_deg,
        "raqib:pitch_deg": record.pitch_deg,
        "raqib:roll_deg": record.roll_deg,
        "raqib:local_time": record.captured_at.isoformat(),
        "instruments": [record.camera.name],
        "gsd": round(ground_sampling_m(record), 4),
    }
    item = pystac.Item(
        id=item_id(record),
        geometry=geometry,
        bbox=[min(xs), min(ys), max(xs), max(ys)],
        datetime=record.captured_at.astimezone(UTC),
        properties=properties,
    )
    path = record.path.resolve()
    asset = pystac.Asset(
        href=str(path),
        title=path.name,
        media_type=MEDIA_TYPES.get(path.suffix.lower()),
        roles=["data"],
    )
    item.add_asset(ASSET_KEY, asset)
    EOExtension.ext(asset, add_if_missing=True).bands = image_bands(record)
    EOExtension.ext(item, add_if_missing=True)
    projection = ProjectionExtension.ext(asset, add_if_missing=True)
    projection.code = None
    projection.shape = [record.height_px, record.width_px]
    _apply_view(item, record)
    return item


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
    """Content hashes of every photo already in the catalogue."""
    return {item.properties.get(SHA256_PROP, "") for item in catalog.get_items(recursive=True)}


def add_images(
    stac_dir: Path, records: Iterable[ImageRecord], collection_id: str
) -> tuple[str, ...]:
    """Add Items for the photos not yet catalogued to ``collection_id`` and save.

    Photos whose sha256 is already in the catalogue are left out. Returns the new Item ids.
    The catalogue is saved self-contained (relative links); each file is written atomically.
    """
    stac_dir = Path(stac_dir)
    check_collection_id(collection_id)
    catalog = open_catalog(stac_dir)
    known = catalogued_sha256(catalog)
    new: list[ImageRecord] = []
    for record in records:
        if record.sha256 not in known:
            known.add(record.sha256)
            new.append(record)
    if not new:
        if not (stac_dir / CATALOG_FILE).exists():
            catalog.normalize_and_save(str(stac_dir), stac_io=AtomicStacIO())
        return ()
    collection = flight_collection(catalog, collection_id)
    items = [image_item(record) for record in new]
    collection.add_items(items)
    collection.update_extent_from_items()
    catalog.normalize_hrefs(str(stac_dir))
    stac_io = AtomicStacIO()
    for stac_object in (*items, collection, catalog):  # the root last: it links the rest
        stac_object.save_object(include_self_link=False, stac_io=stac_io)
    return tuple(item.id for item in items)


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
