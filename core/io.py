"""Atomic file writes: build a file beside its target, then rename it over the target.

Readers of the target see the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
from pyogrio import raw

from core.errors import DiskFullError, InputError, RaqibError

_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
"""The mode a plainly created file gets (``mkstemp`` files are owner-only)."""

GPKG_VERSION = "1.3"
"""GeoPackage version every layer is written in: QGIS 3.22 warns that 1.4 (pyogrio's
default) 'may only be partially supported'."""

_SIDECARS = ("-journal", "-wal", "-shm", ".aux.xml")
"""Files some writers (SQLite/GeoPackage, GDAL) leave beside the one they write."""

GDAL_CACHE_BYTES = 256 * 2**20
"""GDAL's raster block cache while Raqib reads or writes rasters. GDAL's default (5 % of
RAM, 1.15 GiB on a 23 GiB machine) filled up on any mosaic of that size and set the peak RSS
of the analyses (vigour: 1.6 GiB at 500 m, 10,000² px); capped, their peak no longer grows
with area. In bytes: rasterio hands an integer ``GDAL_CACHEMAX`` to ``GDALSetCacheMax64``
as bytes (GDAL reads "256" as MB only from the environment): the mosaic writer's earlier
``GDAL_CACHEMAX=256`` was a cache of 256 bytes."""

_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""Errors of a write that found no room: disk full, quota, file-size limit."""
_PROBE_BYTES = 1 << 20
"""What :func:`_no_room` tries to write to tell a full disk from any other failure."""


def _no_room(scratch: Path) -> bool:
    """Whether appending to ``scratch`` fails for lack of room (GDAL and SQLite report a
    full disk as a generic write error, so ask the file system directly)."""
    try:
        with scratch.open("ab") as handle:
            handle.write(bytes(_PROBE_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        return exc.errno in _NO_ROOM
    return False


def _caused_by_no_room(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def disk_full_named(target: str | Path, scratch: Path) -> Iterator[None]:
    """Turn a failure of the block into :class:`DiskFullError` naming ``target`` when there
    is no room left (checked by appending to ``scratch``, a file the caller then removes)."""
    try:
        yield
    except DiskFullError as exc:  # of a file written inside the block: name ours
        raise DiskFullError(target) from exc
    except RaqibError:  # a problem the writer named itself
        raise
    except Exception as exc:
        if _caused_by_no_room(exc) or _no_room(scratch):
            raise DiskFullError(target) from exc
        raise


@contextmanager
def atomic_path(target: str | Path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a new, unique temporary path beside ``target``; on success rename it onto
    ``target``, on failure remove it (``target`` is then left as it was).

    The temporary name is hidden (dot-prefixed) and ends with ``suffix`` (default: the
    target's own suffix), so writers that choose a format by extension pick the right one.
    The file exists (empty) when yielded; the parent directory is created if needed. A
    failure for lack of room becomes :class:`DiskFullError` naming ``target``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=target.parent,
        prefix=f".{target.stem}.",
        suffix=f".tmp{target.suffix if suffix is None else suffix}",
    )
    os.close(fd)
    tmp = Path(name)
    try:
        with disk_full_named(target, tmp):
            yield tmp
        tmp.chmod(_FILE_MODE)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        for sidecar in _SIDECARS:
            tmp.with_name(tmp.name + sidecar).unlink(missing_ok=True)


def write_geopackage(path: str | Path, layers: Mapping[str, gpd.GeoDataFrame]) -> Path:
    """Write ``layers`` (name -> GeoDataFrame with a CRS) as one GeoPackage, atomically.

    Version :data:`GPKG_VERSION`; each layer's geometry type is its geometries' single type
    (so an empty layer or one with missing geometries still gets one), else GDAL's promotion.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        for k, (name, frame) in enumerate(layers.items()):
            kinds = frame.geom_type.dropna().unique()
            options: dict[str, object] = {}
            if k == 0:
                options["dataset_options"] = {"VERSION": GPKG_VERSION}
            if len(kinds) <= 1:
                options["geometry_type"] = kinds[0] if len(kinds) else "Unknown"
            pyogrio.write_dataframe(frame, tmp, driver="GPKG", layer=name, **options)
    return path


def write_attribute_table(
    path: str | Path, table: str, columns: Sequence[str], arrays: Sequence[np.ndarray]
) -> Path:
    """Write ``arrays`` (one per column; ``datetime64[D]`` ones become DATE columns) as the
    non-spatial table ``table`` of a GeoPackage, atomically. Other layers of an existing file
    are kept (the file is copied, the table replaced in the copy, the copy renamed over the
    file); a new file is GeoPackage :data:`GPKG_VERSION`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.exists():
            shutil.copyfile(path, tmp)
        raw.write(
            tmp,
            None,
            list(arrays),
            list(columns),
            layer=table,
            driver="GPKG",
            dataset_options={"VERSION": GPKG_VERSION},
        )
    return path


def read_attribute_table(path: str | Path, table: str) -> pd.DataFrame | None:
    """Table ``table`` of a GeoPackage; None when the file or the table does not exist yet,
    InputError when the file is not a readable GeoPackage."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        layers = pyogrio.list_layers(path)[:, 0]
    except pyogrio.errors.DataSourceError as exc:
        raise InputError(path, f"not a readable GeoPackage ({exc})") from exc
    if table not in layers:
        return None
    return pyogrio.read_dataframe(path, layer=table)


@contextmanager
def bounded_gdal_cache() -> Iterator[None]:
    """GDAL's block cache capped at :data:`GDAL_CACHE_BYTES` inside the block (or the decorated
    function). The cache is process-wide: a cap set in one thread holds for all of them
    until the block ends."""
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        yield


@bounded_gdal_cache()
def rewrite_as_cog(path: str | Path, *, profile: str = "deflate") -> Path:
    """Rewrite the GeoTIFF at ``path`` as a Cloud-Optimised GeoTIFF (overviews, tiled;
    rio-cogeo ``profile``), atomically: QGIS and web viewers then read it fast at any zoom."""
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    path = Path(path)
    with atomic_path(path) as tmp:
        cog_translate(path, tmp, cog_profiles.get(profile), in_memory=False, quiet=True)
    return path
