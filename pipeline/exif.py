"""Photo metadata from EXIF and XMP (DJI, MicaSense, senseFly/Pix4D), read through GDAL.

GDAL exposes EXIF as ``EXIF_*`` tags (the default domain for JPEG, the ``EXIF`` domain for
TIFF) and the XMP packet in the ``xml:XMP`` domain; the XMP is parsed with ElementTree.
Angles follow DJI's convention: yaw clockwise from true north, gimbal pitch -90 at nadir.
"""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from core.errors import InputError
from core.types import Camera, ImageRecord

DIAGONAL_35MM_MM = 43.27
"""Diagonal of a 36 x 24 mm frame, the reference of ``FocalLengthIn35mmFilm``."""

PLAUSIBLE_SENSOR_WIDTH_MM = (1.0, 60.0)
"""A sensor width outside this range means FocalPlaneXResolution is bogus (or the photo
was resampled after capture), so it is not trusted."""

_MM_PER_RESOLUTION_UNIT = {2: 25.4, 3: 10.0, 4: 1.0}  # EXIF: 2 inch, 3 cm, 4 mm

_XMP_NAMESPACES = {
    "http://www.dji.com/drone-dji/1.0/": "drone-dji",
    "http://pix4d.com/camera/1.0/": "Camera",
    "http://pix4d.com/camera/1.0": "Camera",
    "http://pix4d.com/1.0": "Camera",
    "http://ns.sensefly.com/Camera/1.0/": "Camera",
    "http://micasense.com/MicaSense/1.0/": "MicaSense",
}
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_DEFAULT_BANDS = {1: ("gray",), 3: ("red", "green", "blue")}


@dataclass(frozen=True)
class PhotoMetadata:
    """What a photo's headers say, before any choice of defaults (``None`` = absent)."""

    path: Path
    width_px: int
    height_px: int
    band_count: int
    make: str
    model: str
    lon_deg: float | None
    lat_deg: float | None
    gps_altitude_m: float | None
    relative_altitude_m: float | None
    local_time: datetime | None
    utc_offset: tzinfo | None
    focal_length_mm: float | None
    focal_plane_px_per_mm: float | None
    focal_length_35mm_mm: float | None
    yaw_deg: float | None
    pitch_deg: float | None
    roll_deg: float | None
    bands: tuple[str, ...]
    central_wavelengths_nm: tuple[float, ...] = ()


def read_metadata(path: Path) -> PhotoMetadata:
    """EXIF and XMP of one photo (JPEG or TIFF); InputError if GDAL cannot open it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                tags = {**src.tags(), **src.tags(ns="EXIF")}
                xmp = xmp_values(src.tags(ns="xml:XMP").get("xml:XMP", ""))
                width, height, count = src.width, src.height, src.count
    except RasterioError as exc:
        raise InputError(path, f"not a readable image: {exc}") from exc

    make = tags.get("EXIF_Make", tags.get("TIFFTAG_MAKE", "")).strip()
    if not make and any(key.startswith("MicaSense:") for key in xmp):
        make = "MicaSense"
    yaw, pitch, roll = _attitude(xmp)
    if yaw is None:
        yaw = _number(tags.get("EXIF_GPSImgDirection"))
    band_names = _list(xmp.get("Camera:BandName"))
    return PhotoMetadata(
        path=Path(path),
        width_px=width,
        height_px=height,
        band_count=count,
        make=make,
        model=tags.get("EXIF_Model", tags.get("TIFFTAG_MODEL", "")).strip(),
        lon_deg=_coordinate(tags, "EXIF_GPSLongitude", negative_ref="W"),
        lat_deg=_coordinate(tags, "EXIF_GPSLatitude", negative_ref="S"),
        gps_altitude_m=_gps_altitude(tags),
        relative_altitude_m=_number(xmp.get("drone-dji:RelativeAltitude")),
        local_time=_local_time(tags),
        utc_offset=_utc_offset(tags.get("EXIF_OffsetTimeOriginal")),
        focal_length_mm=_number(tags.get("EXIF_FocalLength")),
        focal_plane_px_per_mm=_px_per_mm(tags),
        focal_length_35mm_mm=_number(tags.get("EXIF_FocalLengthIn35mmFilm")),
        yaw_deg=yaw,
        pitch_deg=pitch,
        roll_deg=roll,
        bands=tuple(name.lower().replace(" ", "_") for name in band_names)
        if len(band_names) == count
        else _DEFAULT_BANDS.get(count, tuple(f"band{i}" for i in range(1, count + 1))),
        central_wavelengths_nm=tuple(
            number for value in _list(xmp.get("Camera:CentralWavelength"))
            for number in _numbers(value)
        ),
    )


def xmp_values(packet: str) -> dict[str, str]:
    """Known XMP properties (DJI, MicaSense, Pix4D/senseFly ``Camera``) as ``prefix:Name``.

    Properties may be attributes or elements of any ``rdf:Description``; an ``rdf:Seq`` or
    ``rdf:Bag`` becomes a comma-separated string. The first occurrence wins. A packet that
    is not well-formed XML gives no values.
    """
    try:
        root = ET.fromstring(packet.strip().lstrip("\ufeff"))
    except ET.ParseError:
        return {}
    values: dict[str, str] = {}
    for description in root.iter(f"{_RDF}Description"):
        items = list(description.attrib.items())
        items += [(child.tag, _element_text(child)) for child in description]
        for tag, value in items:
            key = _prefixed(tag)
            if key is not None:
                values.setdefault(key, value)
    return values


def camera_from_metadata(meta: PhotoMetadata) -> Camera:
    """A pinhole camera for the photo, from FocalPlaneXResolution or else the 35 mm focal.

    InputError if neither gives plausible intrinsics.
    """
    name = f"{meta.make} {meta.model}".strip() or "unknown camera"
    width, height = meta.width_px, meta.height_px
    low, high = PLAUSIBLE_SENSOR_WIDTH_MM
    if meta.focal_length_mm and meta.focal_plane_px_per_mm:
        pitch_mm = 1.0 / meta.focal_plane_px_per_mm
        if low <= width * pitch_mm <= high:
            return _camera(meta, name, pitch_mm, meta.focal_length_mm)
    if meta.focal_length_35mm_mm:
        focal_px = meta.focal_length_35mm_mm / DIAGONAL_35MM_MM * (width**2 + height**2) ** 0.5
        focal_mm = meta.focal_length_mm or meta.focal_length_35mm_mm
        return _camera(meta, name, focal_mm / focal_px, focal_mm)
    raise InputError(
        meta.path,
        "camera intrinsics unknown: no plausible EXIF FocalLength + FocalPlaneXResolution "
        "and no FocalLengthIn35mmFilm",
    )


def record_from_metadata(
    meta: PhotoMetadata,
    sha256: str,
    *,
    ground_elevation_m: float | None = None,
    default_tz: tzinfo | None = None,
) -> ImageRecord:
    """An ImageRecord from a photo's metadata, or InputError naming the missing field.

    Height above ground: DJI ``RelativeAltitude`` if present, else GPS altitude minus
    ``ground_elevation_m``. Capture time: ``OffsetTimeOriginal`` if present, else
    ``default_tz``, else UTC. Unknown yaw is 0 and unknown pitch is taken as nadir (-90).
    """
    if meta.lon_deg is None or meta.lat_deg is None:
        raise InputError(meta.path, "no GPS position (EXIF GPSLatitude/GPSLongitude)")
    if meta.local_time is None:
        raise InputError(meta.path, "no capture time (EXIF DateTimeOriginal)")
    tz = meta.utc_offset or default_tz or UTC
    return ImageRecord(
        path=meta.path,
        sha256=sha256,
        captured_at=meta.local_time.replace(tzinfo=tz),
        lon_deg=meta.lon_deg,
        lat_deg=meta.lat_deg,
        altitude_m=height_above_ground_m(meta, ground_elevation_m),
        camera=camera_from_metadata(meta),
        yaw_deg=meta.yaw_deg if meta.yaw_deg is not None else 0.0,
        pitch_deg=meta.pitch_deg if meta.pitch_deg is not None else -90.0,
        roll_deg=meta.roll_deg if meta.roll_deg is not None else 0.0,
        width_px=meta.width_px,
        height_px=meta.height_px,
        bands=meta.bands,
    )


def height_above_ground_m(meta: PhotoMetadata, ground_elevation_m: float | None) -> float:
    """Camera height above the (flat) ground, in metres; InputError if unknown or not > 0."""
    if meta.relative_altitude_m is not None:
        height_m = meta.relative_altitude_m
        source = "drone-dji:RelativeAltitude"
    elif meta.gps_altitude_m is not None and ground_elevation_m is not None:
        height_m = meta.gps_altitude_m - ground_elevation_m
        source = f"EXIF GPSAltitude - ground elevation {ground_elevation_m:g} m"
    else:
        raise InputError(
            meta.path,
            "height above ground unknown: no drone-dji:RelativeAltitude in XMP "
            "(give the ground elevation to use EXIF GPSAltitude)",
        )
    if height_m <= 0:
        raise InputError(meta.path, f"height above ground {height_m:.2f} m <= 0 ({source})")
    return height_m


def _camera(meta: PhotoMetadata, name: str, pitch_mm: float, focal_mm: float) -> Camera:
    return Camera(
        name=name,
        make=meta.make,
        model=meta.model,
        sensor_width_mm=meta.width_px * pitch_mm,
        sensor_height_mm=meta.height_px * pitch_mm,
        image_width_px=meta.width_px,
        image_height_px=meta.height_px,
        focal_length_mm=focal_mm,
        bands=meta.bands,
    )


def _attitude(xmp: dict[str, str]) -> tuple[float | None, float | None, float | None]:
    """Yaw, pitch, roll in DJI's convention (pitch -90 = nadir)."""
    if "drone-dji:GimbalPitchDegree" in xmp or "drone-dji:GimbalYawDegree" in xmp:
        yaw = _number(xmp.get("drone-dji:GimbalYawDegree", xmp.get("drone-dji:FlightYawDegree")))
        return (
            yaw,
            _number(xmp.get("drone-dji:GimbalPitchDegree")),
            _number(xmp.get("drone-dji:GimbalRollDegree")),
        )
    if "Camera:Yaw" in xmp or "Camera:Pitch" in xmp:
        # senseFly/Pix4D: pitch 0 = nadir and roll of opposite sign (as OpenDroneMap reads it).
        pitch = _number(xmp.get("Camera:Pitch"))
        roll = _number(xmp.get("Camera:Roll"))
        return (
            _number(xmp.get("Camera:Yaw")),
            None if pitch is None else pitch - 90.0,
            None if roll is None else -roll,
        )
    return _number(xmp.get("drone-dji:FlightYawDegree")), None, None


def _prefixed(tag: str) -> str | None:
    if not tag.startswith("{"):
        return None
    uri, _, local = tag[1:].partition("}")
    prefix = _XMP_NAMESPACES.get(uri)
    return f"{prefix}:{local}" if prefix else None


def _element_text(element: ET.Element) -> str:
    items = [li.text or "" for li in element.iter(f"{_RDF}li")]
    return ",".join(item.strip() for item in items) if items else (element.text or "").strip()


def _list(value: str | None) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()] if value else []


def _numbers(value: str | None) -> list[float]:
    return [float(number) for number in _NUMBER.findall(value)] if value else []


def _number(value: str | None) -> float | None:
    numbers = _numbers(value)
    return numbers[0] if numbers else None


def _coordinate(tags: dict[str, str], key: str, negative_ref: str) -> float | None:
    parts = _numbers(tags.get(key))
    if not parts:
        return None
    degrees = sum(part / 60.0**i for i, part in enumerate(parts[:3]))
    return -degrees if tags.get(f"{key}Ref", "").strip().upper() == negative_ref else degrees


def _gps_altitude(tags: dict[str, str]) -> float | None:
    altitude = _number(tags.get("EXIF_GPSAltitude"))
    if altitude is None:
        return None
    below_sea_level = tags.get("EXIF_GPSAltitudeRef", "0").strip() in {"1", "0x01"}
    return -altitude if below_sea_level else altitude


def _px_per_mm(tags: dict[str, str]) -> float | None:
    resolution = _number(tags.get("EXIF_FocalPlaneXResolution"))
    unit = _number(tags.get("EXIF_FocalPlaneResolutionUnit", "2"))
    mm_per_unit = _MM_PER_RESOLUTION_UNIT.get(int(unit)) if unit is not None else None
    if not resolution or mm_per_unit is None:
        return None
    return resolution / mm_per_unit


def _local_time(tags: dict[str, str]) -> datetime | None:
    for key in ("EXIF_DateTimeOriginal", "EXIF_DateTimeDigitized", "EXIF_DateTime"):
        try:
            return datetime.strptime(tags.get(key, "").strip(), "%Y:%m:%d %H:%M:%S")
        except ValueError:
            continue
    return None


def _utc_offset(value: str | None) -> tzinfo | None:
    try:
        return datetime.strptime(value.strip(), "%z").tzinfo if value else None
    except ValueError:
        return None
