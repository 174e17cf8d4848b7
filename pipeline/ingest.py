"""Ingest a folder of drone photos: hash, read metadata, check, and skip the bad ones."""

from __future__ import annotations

import hashlib
import warnings
from datetime import tzinfo
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from core.errors import InputError
from core.types import ImageRecord, IngestResult, SkippedInput
from pipeline.exif import read_metadata, record_from_metadata

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".tif", ".tiff"})
MAX_NADIR_TILT_DEG = 10.0
"""A photo whose known gimbal pitch is further than this from -90 deg is not nadir."""
DECODE_ROWS = 1024


def ingest_folder(
    folder: Path,
    *,
    ground_elevation_m: float | None = None,
    default_tz: tzinfo | None = None,
) -> IngestResult:
    """Records of every photo in ``folder`` (sorted by name); bad photos are skipped.

    A photo is skipped, with its reason, if it cannot be fully decoded, has no (or a 0, 0)
    GPS position, repeats an earlier photo's content, is not nadir, or lacks what
    :func:`pipeline.exif.record_from_metadata` needs. ``ground_elevation_m`` (MSL) and
    ``default_tz`` are passed to it. InputError if the folder is missing or has no photos.
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
            skipped.append(SkippedInput(path, f"duplicate of {first_by_digest[digest].name}"))
            continue
        first_by_digest[digest] = path
        try:
            images.append(
                ingest_photo(
                    path, digest, ground_elevation_m=ground_elevation_m, default_tz=default_tz
                )
            )
        except InputError as exc:
            skipped.append(SkippedInput(path, exc.problem))
    return IngestResult(images=tuple(images), skipped=tuple(skipped))


def ingest_photo(
    path: Path,
    sha256: str,
    *,
    ground_elevation_m: float | None = None,
    default_tz: tzinfo | None = None,
) -> ImageRecord:
    """One checked ImageRecord, or InputError saying why the photo cannot be used."""
    check_decodes(path)
    meta = read_metadata(path)
    if meta.lon_deg == 0.0 and meta.lat_deg == 0.0:
        raise InputError(path, "GPS position is 0, 0 (no fix)")
    if meta.pitch_deg is not None and abs(meta.pitch_deg + 90.0) > MAX_NADIR_TILT_DEG:
        raise InputError(path, f"not a nadir photo: gimbal pitch {meta.pitch_deg:.1f} deg")
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
    """InputError unless every pixel of the photo decodes (catches truncated JPEGs)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                for row in range(0, src.height, DECODE_ROWS):
                    src.read(window=Window(0, row, src.width, min(DECODE_ROWS, src.height - row)))
    except RasterioError as exc:
        raise InputError(path, f"not a readable image (corrupt or truncated): {exc}") from exc
