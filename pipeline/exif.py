"""Photo metadata from EXIF and XMP (DJI, MicaSense, Parrot Sequoia, senseFly/Pix4D, generic).

GDAL exposes EXIF as ``EXIF_*`` tags (the default domain for JPEG, the ``EXIF`` domain for
TIFF) and the XMP packet in the ``xml:XMP`` domain; the XMP is parsed with ElementTree.

Angles are given in DJI's convention: yaw clockwise from true north, camera pitch -90 at
nadir. Each maker writes its own:

- DJI ``drone-dji:Gimbal{Yaw,Pitch,Roll}Degree`` is the camera (gimbal), pitch -90 = nadir;
  ``drone-dji:Flight*Degree`` is the aircraft body.
- Pix4D ``Camera:{Yaw,Pitch,Roll}`` (senseFly, Parrot Sequoia) has pitch 0 = nadir and the
  roll of opposite sign (as OpenDroneMap reads it); it is converted.
- MicaSense has no gimbal: the camera is fixed to the airframe, and the sun sensor (DLS)
  gives the aircraft attitude (``Camera:Irradiance{Yaw,Pitch,Roll}`` in degrees, or
  ``DLS:{Yaw,Pitch,Roll}`` in radians), level flight = pitch 0, roll 0. The camera yaw is
  taken as the aircraft heading (camera top towards the nose, as MicaSense mounts it); its
  pitch is unknown (nadir assumed) and :func:`off_nadir_deg` uses the aircraft's tilt.
"""

from __future__ import annotations

import math
import re
import struct
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

import piexif
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from core.errors import InputError
from core.types import Camera, ImageRecord

DIAGONAL_35MM_MM = 43.27
"""Diagonal of a 36 x 24 mm frame, the reference of ``FocalLengthIn35mmFilm``."""

PLAUSIBLE_SENSOR_WIDTH_MM = (1.0, 60.0)
"""A sensor width outside this range means FocalPlaneXResolution is bogus (or the photo
was resampled after capture), so it is not trusted."""

DEFAULT_TIMEZONE = ZoneInfo("Africa/Casablanca")
"""Zone of a camera clock that states no offset (Morocco: UTC+1, UTC+0 during Ramadan)."""

ATTITUDE_GIMBAL = "drone-dji gimbal"
ATTITUDE_PIX4D = "Camera XMP (Pix4D, senseFly, Sequoia)"
ATTITUDE_AIRFRAME = "airframe (MicaSense DLS)"

_MM_PER_RESOLUTION_UNIT = {2: 25.4, 3: 10.0, 4: 1.0}  # EXIF: 2 inch, 3 cm, 4 mm

_XMP_NAMESPACES = {
    "http://www.dji.com/drone-dji/1.0/": "drone-dji",
    "http://pix4d.com/camera/1.0/": "Camera",
    "http://pix4d.com/camera/1.0": "Camera",
    "http://pix4d.com/1.0": "Camera",
    "http://ns.sensefly.com/Camera/1.0/": "Camera",
    "http://micasense.com/MicaSense/1.0/": "MicaSense",
    "http://micasense.com/DLS/1.0/": "DLS",
}
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_DEFAULT_BANDS = {1: ("gray",), 3: ("red", "green", "blue")}
_CAPTURE_ID_KEYS = ("MicaSense:CaptureId", "Camera:CaptureUUID", "drone-dji:CaptureUUID")
_IRRADIANCE_KEYS = ("Camera:HorizontalIrradiance", "Camera:SpectralIrradiance", "Camera:Irradiance")


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
    """Camera clock (with sub-seconds), naive: its zone is ``utc_offset`` if stated."""
    utc_offset: tzinfo | None
    focal_length_mm: float | None
    focal_plane_px_per_mm: float | None
    focal_length_35mm_mm: float | None
    yaw_deg: float | None
    pitch_deg: float | None
    roll_deg: float | None
    bands: tuple[str, ...]
    central_wavelengths_nm: tuple[float, ...] = ()
    absolute_altitude_m: float | None = None
    gps_time: datetime | None = None
    """EXIF GPSDateStamp + GPSTimeStamp, in UTC."""
    flight_yaw_deg: float | None = None
    flight_pitch_deg: float | None = None
    flight_roll_deg: float | None = None
    attitude_source: str = ""
    capture_id: str | None = None
    irradiance_w_m2_nm: tuple[float, ...] = ()


class _Attitude(NamedTuple):
    yaw_deg: float | None = None
    pitch_deg: float | None = None
    roll_deg: float | None = None
    flight_yaw_deg: float | None = None
    flight_pitch_deg: float | None = None
    flight_roll_deg: float | None = None
    source: str = ""


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

    make = tags.get("EXIF_Make", "").strip()
    model = tags.get("EXIF_Model", "").strip()
    if not make and Path(path).suffix.lower() in {".tif", ".tiff"}:
        make, model = _tiff_make_model(Path(path))  # GDAL does not report IFD0 Make/Model
    if not make and any(key.startswith("MicaSense:") for key in xmp):
        make = "MicaSense"
    attitude = _attitude(xmp)
    yaw = (
        attitude.yaw_deg
        if attitude.yaw_deg is not None
        else _number(tags.get("EXIF_GPSImgDirection"))
    )
    band_names = _list(xmp.get("Camera:BandName"))
    wavelengths = _numbers(xmp.get("Camera:CentralWavelength"))
    return PhotoMetadata(
        path=Path(path),
        width_px=width,
        height_px=height,
        band_count=count,
        make=make,
        model=model,
        lon_deg=_coordinate(tags, "EXIF_GPSLongitude", negative_ref="W"),
        lat_deg=_coordinate(tags, "EXIF_GPSLatitude", negative_ref="S"),
        gps_altitude_m=_gps_altitude(tags),
        relative_altitude_m=_number(xmp.get("drone-dji:RelativeAltitude")),
        local_time=_local_time(tags),
        utc_offset=_utc_offset(tags.get("EXIF_OffsetTimeOriginal") or tags.get("EXIF_OffsetTime")),
        focal_length_mm=_number(tags.get("EXIF_FocalLength")),
        focal_plane_px_per_mm=_px_per_mm(tags),
        focal_length_35mm_mm=_number(tags.get("EXIF_FocalLengthIn35mmFilm")),
        yaw_deg=yaw,
        pitch_deg=attitude.pitch_deg,
        roll_deg=attitude.roll_deg,
        bands=tuple(name.lower().replace(" ", "_") for name in band_names)
        if len(band_names) == count
        else _DEFAULT_BANDS.get(count, tuple(f"band{i}" for i in range(1, count + 1))),
        central_wavelengths_nm=tuple(wavelengths) if len(wavelengths) == count else (),
        absolute_altitude_m=_number(xmp.get("drone-dji:AbsoluteAltitude")),
        gps_time=_gps_time(tags),
        flight_yaw_deg=attitude.flight_yaw_deg,
        flight_pitch_deg=attitude.flight_pitch_deg,
        flight_roll_deg=attitude.flight_roll_deg,
        attitude_source=attitude.source,
        capture_id=next((xmp[key] for key in _CAPTURE_ID_KEYS if xmp.get(key)), None),
        irradiance_w_m2_nm=_irradiance(xmp),
    )


def xmp_values(packet: str) -> dict[str, str]:
    """Known XMP properties (DJI, MicaSense, DLS, Pix4D ``Camera``) as ``prefix:Name``.

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


def capture_time(meta: PhotoMetadata, default_tz: tzinfo | None = None) -> tuple[datetime, str]:
    """When the photo was taken (time-zone aware), and where its zone came from.

    In order: the EXIF offset (``OffsetTimeOriginal``); the GPS date and time (UTC); the
    camera clock of MicaSense and Parrot Sequoia, which keep UTC; else the camera clock read
    in ``default_tz`` (default :data:`DEFAULT_TIMEZONE`). InputError if there is no time.
    """
    if meta.local_time is not None and meta.utc_offset is not None:
        return meta.local_time.replace(tzinfo=meta.utc_offset), "EXIF OffsetTimeOriginal"
    if meta.gps_time is not None:
        return meta.gps_time, "EXIF GPS date and time (UTC)"
    if meta.local_time is None:
        raise InputError(meta.path, "no capture time (EXIF DateTimeOriginal or GPS time)")
    if _clock_is_utc(meta):
        return meta.local_time.replace(tzinfo=UTC), f"{meta.make} camera clock (UTC)"
    zone = default_tz or DEFAULT_TIMEZONE
    return meta.local_time.replace(tzinfo=zone), f"camera clock, assumed {zone}"


def off_nadir_deg(meta: PhotoMetadata) -> float | None:
    """Angle between the camera axis and straight down, in degrees; None if unknown.

    From the camera (gimbal) pitch and roll when the headers give them; for a camera fixed to
    the airframe (MicaSense), from the aircraft's pitch and roll.
    """
    if meta.pitch_deg is not None:
        return _tilt_deg(meta.pitch_deg + 90.0, meta.roll_deg or 0.0)
    if meta.attitude_source == ATTITUDE_AIRFRAME and meta.flight_pitch_deg is not None:
        return _tilt_deg(meta.flight_pitch_deg, meta.flight_roll_deg or 0.0)
    return None


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

    Height above ground: see :func:`height_above_ground_m`. Capture time: see
    :func:`capture_time`. Unknown yaw is 0 and unknown pitch is taken as nadir (-90). Photos
    without a capture id in their XMP are a capture of their own (id = file stem).
    """
    if meta.lon_deg is None or meta.lat_deg is None:
        raise InputError(meta.path, "no GPS position (EXIF GPSLatitude/GPSLongitude)")
    captured_at, time_source = capture_time(meta, default_tz)
    return ImageRecord(
        path=meta.path,
        sha256=sha256,
        captured_at=captured_at,
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
        capture_id=meta.capture_id or meta.path.stem,
        wavelengths_nm=meta.central_wavelengths_nm,
        irradiance_w_m2_nm=meta.irradiance_w_m2_nm,
        flight_yaw_deg=meta.flight_yaw_deg,
        flight_pitch_deg=meta.flight_pitch_deg,
        flight_roll_deg=meta.flight_roll_deg,
        absolute_altitude_m=_absolute_altitude_m(meta),
        time_source=time_source,
    )


def height_above_ground_m(meta: PhotoMetadata, ground_elevation_m: float | None) -> float:
    """Camera height above the (flat) ground, in metres; InputError if unknown or not > 0.

    DJI ``RelativeAltitude`` (above the take-off point) if present, else the altitude above
    sea level (DJI ``AbsoluteAltitude``, else EXIF GPSAltitude) minus ``ground_elevation_m``.
    """
    absolute_m = _absolute_altitude_m(meta)
    if meta.relative_altitude_m is not None:
        height_m = meta.relative_altitude_m
        source = "drone-dji:RelativeAltitude"
    elif absolute_m is not None and ground_elevation_m is not None:
        height_m = absolute_m - ground_elevation_m
        source = f"altitude {absolute_m:g} m - ground elevation {ground_elevation_m:g} m"
    else:
        raise InputError(
            meta.path,
            "height above ground unknown: no drone-dji:RelativeAltitude in XMP "
            "(give the ground elevation to use the GPS altitude)",
        )
    if height_m <= 0:
        raise InputError(meta.path, f"height above ground {height_m:.2f} m <= 0 ({source})")
    return height_m


def _absolute_altitude_m(meta: PhotoMetadata) -> float | None:
    if meta.absolute_altitude_m is not None:
        return meta.absolute_altitude_m
    return meta.gps_altitude_m


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


def _attitude(xmp: dict[str, str]) -> _Attitude:
    """Camera and aircraft attitude in DJI's convention (see the module docstring)."""
    flight = (
        _number(xmp.get("drone-dji:FlightYawDegree")),
        _number(xmp.get("drone-dji:FlightPitchDegree")),
        _number(xmp.get("drone-dji:FlightRollDegree")),
    )
    if "drone-dji:GimbalPitchDegree" in xmp or "drone-dji:GimbalYawDegree" in xmp:
        yaw = _number(xmp.get("drone-dji:GimbalYawDegree"))
        return _Attitude(
            yaw if yaw is not None else flight[0],
            _number(xmp.get("drone-dji:GimbalPitchDegree")),
            _number(xmp.get("drone-dji:GimbalRollDegree")),
            *flight,
            source=ATTITUDE_GIMBAL,
        )
    if "Camera:Yaw" in xmp or "Camera:Pitch" in xmp:
        pitch = _number(xmp.get("Camera:Pitch"))
        roll = _number(xmp.get("Camera:Roll"))
        return _Attitude(
            _number(xmp.get("Camera:Yaw")),
            None if pitch is None else pitch - 90.0,
            None if roll is None else -roll,
            *flight,
            source=ATTITUDE_PIX4D,
        )
    airframe = _dls_attitude(xmp)
    if airframe is not None:
        return _Attitude(airframe[0], None, None, *airframe, source=ATTITUDE_AIRFRAME)
    return _Attitude(flight[0], None, None, *flight)


def _dls_attitude(xmp: dict[str, str]) -> tuple[float, float, float] | None:
    """MicaSense aircraft yaw, pitch, roll (degrees) from its sun sensor, if written."""
    axes = ("Yaw", "Pitch", "Roll")
    degrees = [_number(xmp.get(f"Camera:Irradiance{axis}")) for axis in axes]
    radians = [_number(xmp.get(f"DLS:{axis}")) for axis in axes]
    if all(value is not None for value in degrees):
        yaw, pitch, roll = (float(value or 0.0) for value in degrees)
    elif all(value is not None for value in radians):
        yaw, pitch, roll = (math.degrees(value or 0.0) for value in radians)
    else:
        return None
    return yaw, pitch, roll


def _tilt_deg(pitch_deg: float, roll_deg: float) -> float:
    """Angle from the vertical of an axis tilted by ``pitch_deg`` then ``roll_deg``."""
    cosine = math.cos(math.radians(pitch_deg)) * math.cos(math.radians(roll_deg))
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def _irradiance(xmp: dict[str, str]) -> tuple[float, ...]:
    """MicaSense DLS spectral irradiance per band (W/m2/nm), scaled to SI if it says so."""
    for key in _IRRADIANCE_KEYS:
        values = _numbers(xmp.get(key))
        if values:
            scale = _number(xmp.get("Camera:IrradianceScaleToSIUnits")) or 1.0
            return tuple(value * scale for value in values)
    return ()


def _clock_is_utc(meta: PhotoMetadata) -> bool:
    """MicaSense and Parrot Sequoia set their clock from GPS and keep it in UTC."""
    return meta.make.lower() == "micasense" or "sequoia" in meta.model.lower()


def _tiff_make_model(path: Path) -> tuple[str, str]:
    try:
        ifd0 = piexif.load(str(path))["0th"]
    except (piexif.InvalidImageDataError, ValueError, KeyError, struct.error, OSError):
        return "", ""
    make, model = (
        ifd0.get(tag, b"").decode("ascii", "replace").strip("\x00 ")
        for tag in (piexif.ImageIFD.Make, piexif.ImageIFD.Model)
    )
    return make, model


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
    """DateTimeOriginal (or Digitized, or DateTime) plus its sub-seconds, naive."""
    for key, subsec_key in (
        ("EXIF_DateTimeOriginal", "EXIF_SubSecTimeOriginal"),
        ("EXIF_DateTimeDigitized", "EXIF_SubSecTimeDigitized"),
        ("EXIF_DateTime", "EXIF_SubSecTime"),
    ):
        try:
            whole = datetime.strptime(tags.get(key, "").strip(), "%Y:%m:%d %H:%M:%S")
        except ValueError:
            continue
        subsec = tags.get(subsec_key) or tags.get("EXIF_SubSecTime", "")
        return whole + timedelta(seconds=_subsec_s(subsec))
    return None


def _subsec_s(value: str) -> float:
    """EXIF SubSecTime digits as a fraction of a second (MicaSense may write it negative)."""
    match = re.fullmatch(r"\s*(-?)(\d+)\s*", value)
    if not match:
        return 0.0
    fraction = int(match[2]) / 10 ** len(match[2])
    return -fraction if match[1] else fraction


def _gps_time(tags: dict[str, str]) -> datetime | None:
    clock = _numbers(tags.get("EXIF_GPSTimeStamp"))
    try:
        day = datetime.strptime(tags.get("EXIF_GPSDateStamp", "").strip(), "%Y:%m:%d")
    except ValueError:
        return None
    if len(clock) != 3:
        return None
    hours, minutes, seconds = clock
    return day.replace(tzinfo=UTC) + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def _utc_offset(value: str | None) -> tzinfo | None:
    try:
        return datetime.strptime(value.strip(), "%z").tzinfo if value else None
    except ValueError:
        return None
