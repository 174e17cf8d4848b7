"""Ingest a folder of drone photos: hash, read metadata, check, and skip the bad ones.

Every skipped photo gets a reason (for the operator) and a kind (to count them by): the
report of ``raqib ingest`` is :func:`summary_line` plus the reasons.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from core.errors import InputError
from core.settings import Settings
from core.types import ImageRecord, IngestResult, SkippedInput
from pipeline.exif import off_nadir_deg, read_metadata, record_from_metadata

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".tif", ".tiff"})
MAX_OFF_NADIR_DEG = 15.0
"""A photo whose camera axis is known to be further than this from straight down is oblique."""
DECODE_ROWS = 1024

NOT_AN_IMAGE = "not an image"
TRUNCATED = "truncated or corrupt"
DUPLICATE = "duplicate"
NO_GPS = "no GPS"
GPS_ZERO = "GPS 0,0"
NOT_NADIR = "not nadir"
INCOMPLETE = "incomplete metadata"
"""Kinds of skip (``SkippedInput.kind``)."""


class PhotoSkipped(InputError):
    """A photo that ingest leaves out, with the kind of reason."""

    def __init__(self, source: str | Path, kind: str, problem: str) -> None:
        super().__init__(source, problem)
        self.kind = kind


def ingest_folder(
    folder: Path,
    *,
    ground_elevation_m: float | None = None,
    default_tz: tzinfo | None = None,
    max_off_nadir_deg: float = MAX_OFF_NADIR_DEG,
) -> IngestResult:
    """Records of every photo in ``folder`` (sorted by name); bad photos are skipped.

    A photo is skipped, with its reason, if it is not an image, cannot be fully decoded,
    repeats an earlier photo's content, has no (or a 0, 0) GPS position, is not nadir, or
    lacks what :func:`pipeline.exif.record_from_metadata` needs (``ground_elevation_m`` (MSL)
    and ``default_tz`` are passed to it). InputError if the folder is missing or has no photos.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "photo folder not found")
    paths = photo_paths(folder)
    if not paths:
        raise InputError(folder, f"no photos ({', '.join(sorted(PHOTO_SUFFIXES))}) in folder")
    images: list[ImageRecord] = []
    skipped: list[SkippedInput] = []
    first_by_digest: dict[str, Path] = {}
    for path in paths:
        digest = file_sha256(path)
        if digest in first_by_digest:
            reason = f"duplicate of {first_by_digest[digest].name}"
            skipped.append(SkippedInput(path, reason, DUPLICATE))
            continue
        first_by_digest[digest] = path
        try:
            images.append(
                ingest_photo(
                    path,
                    digest,
                    ground_elevation_m=ground_elevation_m,
                    default_tz=default_tz,
                    max_off_nadir_deg=max_off_nadir_deg,
                )
            )
        except PhotoSkipped as exc:
            skipped.append(SkippedInput(path, exc.problem, exc.kind))
        except InputError as exc:
            skipped.append(SkippedInput(path, exc.problem, INCOMPLETE))
    return IngestResult(images=tuple(images), skipped=tuple(skipped))


def ingest_with_settings(folder: Path, settings: Settings) -> IngestResult:
    """:func:`ingest_folder` with the ``timezone``, ``max_off_nadir_deg`` and
    ``ground_elevation_m`` settings: how the CLI and the flows ingest a folder."""
    return ingest_folder(
        folder,
        ground_elevation_m=settings.ground_elevation_m,
        default_tz=ZoneInfo(settings.timezone),
        max_off_nadir_deg=settings.max_off_nadir_deg,
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
