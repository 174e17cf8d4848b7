"""Ingest a folder of drone photos: hash, read metadata, check, and skip the bad ones.

Every skipped photo gets a reason (for the operator) and a kind (to count them by): the
report of ``raqib ingest`` is :func:`summary_line` plus the reasons. Each photo is read on its
own (:func:`read_photo`: hash, decode check, metadata), so a mapper may read them anywhere (a
Dask worker); the results are gathered in name order, duplicates found by their hashes.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from core.crs_area import swapped_lonlat, where
from core.errors import InputError
from core.settings import Settings
from core.types import ImageRecord, IngestResult, SkippedInput
from pipeline.exif import off_nadir_deg, read_metadata, record_from_metadata

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".tif", ".tiff"})
MAX_OFF_NADIR_DEG = 15.0
"""A photo whose camera axis is known to be further than this from straight down is oblique."""
DECODE_ROWS = 1024
MAX_FLIGHT_RADIUS_KM = 100.0
"""A photo this far from the median position of a folder's photos (three or more) was not
taken on that survey (a lost sign, swapped coordinates, a photo of another job); kept, it
would stretch the mosaic's grid across the distance."""
EARTH_RADIUS_KM = 6371.0

NOT_AN_IMAGE = "not an image"
TRUNCATED = "truncated or corrupt"
DUPLICATE = "duplicate"
NO_GPS = "no GPS"
GPS_ZERO = "GPS 0,0"
NOT_NADIR = "not nadir"
INCOMPLETE = "incomplete metadata"
SWAPPED = "lon/lat swapped"
FAR_AWAY = "far from the flight"
"""Kinds of skip (``SkippedInput.kind``)."""


class PhotoSkipped(InputError):
    """A photo that ingest leaves out, with the kind of reason."""

    def __init__(self, source: str | Path, kind: str, problem: str) -> None:
        super().__init__(source, problem)
        self.kind = kind


@dataclass(frozen=True)
class PhotoRead:
    """One photo read on its own: its content hash and its record, or why it is skipped."""

    path: Path
    sha256: str
    record: ImageRecord | None
    skipped: SkippedInput | None = None


PhotoMapper = Callable[[Callable[[Path], PhotoRead], Sequence[Path]], Iterable[PhotoRead]]
"""Runs ``read(path)`` for every path and yields the results in the paths' order (``map``
reads them here, one by one)."""


def ingest_folder(
    folder: Path,
    *,
    ground_elevation_m: float | None = None,
    default_tz: tzinfo | None = None,
    max_off_nadir_deg: float = MAX_OFF_NADIR_DEG,
    crs: str | None = None,
    map_photos: PhotoMapper = map,
) -> IngestResult:
    """Records of every photo in ``folder`` (sorted by name); bad photos are skipped.

    A photo is skipped, with its reason, if it is not an image, cannot be fully decoded,
    repeats an earlier photo's content, has no (or a 0, 0) GPS position, is not nadir, or
    lacks what :func:`pipeline.exif.record_from_metadata` needs (``ground_elevation_m`` (MSL)
    and ``default_tz`` are passed to it); then if its position has longitude and latitude
    swapped (outside the working ``crs``, inside it swapped) or lies more than
    :data:`MAX_FLIGHT_RADIUS_KM` from the others. ``map_photos`` runs :func:`read_photo` on
    each (default: here, in turn). InputError if the folder is missing or has no photos.
    """
    folder = Path(folder)
    if folder.is_file():
        raise InputError(folder, "is a file: give the folder that holds the flight's photos")
    if not folder.is_dir():
        raise InputError(folder, "photo folder not found")
    paths = photo_paths(folder)
    if not paths:
        raise InputError(folder, f"no photos ({', '.join(sorted(PHOTO_SUFFIXES))}) in folder")
    read = partial(
        read_photo,
        ground_elevation_m=ground_elevation_m,
        default_tz=default_tz,
        max_off_nadir_deg=max_off_nadir_deg,
    )
    images: list[ImageRecord] = []
    skipped: list[SkippedInput] = []
    first_by_digest: dict[str, Path] = {}
    for photo in map_photos(read, paths):
        if photo.sha256 in first_by_digest:
            reason = f"duplicate of {first_by_digest[photo.sha256].name}"
            skipped.append(SkippedInput(photo.path, reason, DUPLICATE))
            continue
        first_by_digest[photo.sha256] = photo.path
        if photo.record is not None:
            images.append(photo.record)
        elif photo.skipped is not None:
            skipped.append(photo.skipped)
    images, misplaced = _placed(images, crs)
    return IngestResult(images=tuple(images), skipped=(*skipped, *misplaced))


def read_photo(
    path: Path,
    *,
    ground_elevation_m: float | None = None,
    default_tz: tzinfo | None = None,
    max_off_nadir_deg: float = MAX_OFF_NADIR_DEG,
) -> PhotoRead:
    """One photo's hash and record (see :func:`ingest_photo`), or the reason it is skipped."""
    digest = file_sha256(path)
    try:
        record = ingest_photo(
            path,
            digest,
            ground_elevation_m=ground_elevation_m,
            default_tz=default_tz,
            max_off_nadir_deg=max_off_nadir_deg,
        )
    except PhotoSkipped as exc:
        return PhotoRead(path, digest, None, SkippedInput(path, exc.problem, exc.kind))
    except InputError as exc:
        return PhotoRead(path, digest, None, SkippedInput(path, exc.problem, INCOMPLETE))
    return PhotoRead(path, digest, record)


def _distance_km(lon: np.ndarray, lat: np.ndarray, lon0: float, lat0: float) -> np.ndarray:
    """Great-circle distances (haversine) from (``lon0``, ``lat0``)."""
    lon, lat, lon0, lat0 = map(np.radians, (lon, lat, lon0, lat0))
    h = np.sin((lat - lat0) / 2) ** 2 + np.cos(lat) * np.cos(lat0) * np.sin((lon - lon0) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def _placed(
    images: list[ImageRecord], crs: str | None
) -> tuple[list[ImageRecord], list[SkippedInput]]:
    """``images`` whose position belongs to the survey, and the others skipped with why."""
    skipped: list[SkippedInput] = []
    if crs is not None:
        kept = []
        for image in images:
            box = (image.lon_deg, image.lat_deg, image.lon_deg, image.lat_deg)
            problem = swapped_lonlat(box, crs, "its GPS position")
            if problem is None:
                kept.append(image)
            else:
                skipped.append(SkippedInput(image.path, problem, SWAPPED))
        images = kept
    if len(images) < 3:
        return images, skipped
    lon = np.array([image.lon_deg for image in images])
    lat = np.array([image.lat_deg for image in images])
    centre = (float(np.median(lon)), float(np.median(lat)))
    far_km = _distance_km(lon, lat, *centre)
    swapped_km = _distance_km(lat, lon, *centre)
    kept = []
    for image, km, back_km in zip(images, far_km, swapped_km, strict=True):
        if km <= MAX_FLIGHT_RADIUS_KM:
            kept.append(image)
            continue
        hint = "; longitude and latitude look swapped" if back_km <= MAX_FLIGHT_RADIUS_KM else ""
        reason = (
            f"GPS position {where(image.lon_deg, image.lat_deg)} is {km:,.0f} km from the "
            f"median of the folder's photos {where(*centre)}{hint}"
        )
        skipped.append(SkippedInput(image.path, reason, FAR_AWAY))
    return kept, skipped


def ingest_with_settings(
    folder: Path, settings: Settings, map_photos: PhotoMapper = map
) -> IngestResult:
    """:func:`ingest_folder` with the ``timezone``, ``max_off_nadir_deg``,
    ``ground_elevation_m`` and ``crs`` settings: how the CLI and the flows ingest a folder."""
    return ingest_folder(
        folder,
        ground_elevation_m=settings.ground_elevation_m,
        default_tz=ZoneInfo(settings.timezone),
        max_off_nadir_deg=settings.max_off_nadir_deg,
        crs=settings.crs,
        map_photos=map_photos,
    )


def ingest_photo(
    path: Path,
    sha256: str,
    *,
    ground_elevation_m: float | None = None,
    default_tz: tzinfo | None = None,
    max_off_nadir_deg: float = MAX_OFF_NADIR_DEG,
) -> ImageRecord:
    """One checked ImageRecord; PhotoSkipped (or InputError) saying why it cannot be used."""
    check_decodes(path)
    meta = read_metadata(path)
    if meta.lon_deg is None or meta.lat_deg is None:
        raise PhotoSkipped(path, NO_GPS, "no GPS position (EXIF GPSLatitude/GPSLongitude)")
    if meta.lon_deg == 0.0 and meta.lat_deg == 0.0:
        raise PhotoSkipped(path, GPS_ZERO, "GPS position is 0, 0 (no fix)")
    tilt_deg = off_nadir_deg(meta)
    if tilt_deg is not None and tilt_deg > max_off_nadir_deg:
        raise PhotoSkipped(
            path,
            NOT_NADIR,
            f"not a nadir photo: camera {tilt_deg:.1f} deg from straight down "
            f"(limit {max_off_nadir_deg:g} deg; {meta.attitude_source})",
        )
    return record_from_metadata(
        meta, sha256, ground_elevation_m=ground_elevation_m, default_tz=default_tz
    )


def photo_paths(folder: Path) -> list[Path]:
    """Photo files directly in ``folder`` (suffix case-insensitive), sorted by name."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in PHOTO_SUFFIXES
    )


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def check_decodes(path: Path) -> None:
    """PhotoSkipped unless GDAL opens the file and every pixel decodes (truncated JPEGs).

    A JPEG is decoded at 1/8 scale (libjpeg's DCT scaling, GDAL's implicit overview): that
    still reads the whole entropy-coded stream, so truncation is caught, ~4x faster.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            src = rasterio.open(path)
        except RasterioError as exc:
            raise PhotoSkipped(path, NOT_AN_IMAGE, f"not a readable image: {exc}") from exc
        with src:
            try:
                _decode_all(src)
            except RasterioError as exc:
                raise PhotoSkipped(path, TRUNCATED, f"image truncated or corrupt: {exc}") from exc


def _decode_all(src: rasterio.DatasetReader) -> None:
    if src.driver == "JPEG" and src.overviews(1):
        factor = max(src.overviews(1))
        src.read(out_shape=(src.count, -(-src.height // factor), -(-src.width // factor)))
        return
    for row in range(0, src.height, DECODE_ROWS):
        src.read(window=Window(0, row, src.width, min(DECODE_ROWS, src.height - row)))


def skipped_counts(result: IngestResult) -> dict[str, int]:
    """How many photos were skipped for each kind of reason, most frequent first."""
    return dict(Counter(item.kind or INCOMPLETE for item in result.skipped).most_common())


def summary_line(result: IngestResult) -> str:
    """One line for the operator, e.g. ``10 photos in 2 captures, 3 skipped (2 no GPS, ...)``."""
    images, captures = len(result.images), len(result.captures)
    line = f"{images} photo{'s' * (images != 1)} in {captures} capture{'s' * (captures != 1)}"
    if not result.skipped:
        return f"{line}, none skipped"
    counts = ", ".join(f"{count} {kind}" for kind, count in skipped_counts(result).items())
    return f"{line}, {len(result.skipped)} skipped ({counts})"
