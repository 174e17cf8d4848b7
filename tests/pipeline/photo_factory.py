"""A seeded synthetic orthophoto near Berkane and DJI-style nadir photos rendered from it.

Frames are rendered here from the shared pose convention written out independently of
``pipeline.footprint`` (yaw clockwise from true north, image top towards the yaw, +u
towards yaw + 90, pinhole with the principal point at the centre, flat ground).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import piexif
import pyproj
import rasterio
from affine import Affine
from PIL import Image

CRS = "EPSG:32630"
ORTHO_RES_M = 0.1
ORTHO_LEFT_M, ORTHO_TOP_M = 565000.0, 3865000.0  # about 34.92 N, 2.29 W
GROUND_ELEVATION_M = 150.0

# A small camera: 640 x 480 px, 10 um pixels, 6 mm lens -> 600 px focal, 0.1 m GSD at 60 m.
WIDTH_PX, HEIGHT_PX = 640, 480
PX_PER_MM = 100.0
FOCAL_MM = 6.0
FOCAL_PX = FOCAL_MM * PX_PER_MM

_TO_LONLAT = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


@dataclass(frozen=True)
class Pose:
    """Where a photo is taken: UTM position, height above ground, true yaw."""

    east_m: float
    north_m: float
    altitude_m: float = 60.0
    yaw_deg: float = 0.0

    @property
    def lonlat(self) -> tuple[float, float]:
        return _TO_LONLAT.transform(self.east_m, self.north_m)


def ortho_transform() -> Affine:
    return Affine(ORTHO_RES_M, 0.0, ORTHO_LEFT_M, 0.0, -ORTHO_RES_M, ORTHO_TOP_M)


def make_ortho(size_px: int = 2000, seed: int = 0) -> np.ndarray:
    """A (size, size, 3) uint8 texture: smooth multi-scale noise with fields and roofs."""
    rng = np.random.default_rng(seed)
    image = np.zeros((size_px, size_px, 3), np.float32)
    for cell_px, amplitude in ((40, 60.0), (8, 30.0), (2, 15.0)):
        coarse = rng.normal(size=(size_px // cell_px + 1, size_px // cell_px + 1, 3))
        noise = cv2.resize(
            coarse.astype(np.float32), (size_px, size_px), interpolation=cv2.INTER_CUBIC
        )
        image += amplitude * noise / noise.std()
    image += 120.0
    for _ in range(60):
        col, row = rng.integers(0, size_px, 2)
        w, h = rng.integers(30, 150, 2)
        colour = tuple(float(c) for c in rng.integers(40, 230, 3))
        cv2.rectangle(image, (int(col), int(row)), (int(col + w), int(row + h)), colour, -1)
    image = cv2.GaussianBlur(image, (0, 0), 1.0)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_ortho(path: Path, ortho: np.ndarray) -> Path:
    profile = {
        "driver": "GTiff",
        "width": ortho.shape[1],
        "height": ortho.shape[0],
        "count": 3,
        "dtype": "uint8",
        "crs": CRS,
        "transform": ortho_transform(),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(ortho.transpose(2, 0, 1))
    return path


def meridian_convergence_deg(pose: Pose) -> float:
    """Angle from true north to grid north at the pose (PROJ's definition)."""
    lon, lat = pose.lonlat
    return pyproj.Proj(CRS).get_factors(lon, lat).meridian_convergence


def render_frame(ortho: np.ndarray, pose: Pose) -> np.ndarray:
    """The (HEIGHT_PX, WIDTH_PX, 3) nadir photo of ``ortho`` taken at ``pose``."""
    gsd_m = pose.altitude_m / FOCAL_PX
    bearing = math.radians(pose.yaw_deg - meridian_convergence_deg(pose))  # grid bearing
    top = np.array([math.sin(bearing), math.cos(bearing)])  # image top, (east, north)
    right = np.array([math.cos(bearing), -math.sin(bearing)])  # image +u, (east, north)
    du = np.arange(WIDTH_PX, dtype=np.float64)[None, :] + 0.5 - WIDTH_PX / 2
    dv = np.arange(HEIGHT_PX, dtype=np.float64)[:, None] + 0.5 - HEIGHT_PX / 2
    east = pose.east_m + gsd_m * (du * right[0] - dv * top[0])
    north = pose.north_m + gsd_m * (du * right[1] - dv * top[1])
    map_col = ((east - ORTHO_LEFT_M) / ORTHO_RES_M - 0.5).astype(np.float32)
    map_row = ((ORTHO_TOP_M - north) / ORTHO_RES_M - 0.5).astype(np.float32)
    return cv2.remap(ortho, map_col, map_row, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _rational(value: float, denominator: int = 1_000_000) -> tuple[int, int]:
    fraction = Fraction(value).limit_denominator(denominator)
    return fraction.numerator, fraction.denominator


def _dms(value_deg: float) -> tuple[tuple[int, int], ...]:
    value_deg = abs(value_deg)
    degrees = int(value_deg)
    minutes = int((value_deg - degrees) * 60)
    seconds = (value_deg - degrees - minutes / 60) * 3600
    return (degrees, 1), (minutes, 1), (round(seconds * 1_000_000), 1_000_000)


@dataclass(frozen=True)
class Attitude:
    """Camera (gimbal) and aircraft (flight) angles as DJI writes them, in degrees."""

    gimbal_pitch_deg: float = -90.0
    gimbal_roll_deg: float = 0.0
    flight_yaw_deg: float | None = None
    """None: the aircraft points where the gimbal does."""
    flight_pitch_deg: float = 0.0
    flight_roll_deg: float = 0.0


def dji_xmp(
    relative_altitude_m: float,
    yaw_deg: float,
    pitch_deg: float = -90.0,
    *,
    attitude: Attitude | None = None,
    capture_uuid: str | None = None,
) -> bytes:
    """A DJI-style XMP packet (attributes of one rdf:Description), as a Mavic 3E writes it."""
    attitude = attitude or Attitude(gimbal_pitch_deg=pitch_deg)
    flight_yaw = attitude.flight_yaw_deg if attitude.flight_yaw_deg is not None else yaw_deg
    uuid = f'\n    drone-dji:CaptureUUID="{capture_uuid}"' if capture_uuid else ""
    return f"""<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="DJI Meta Data"
    xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"
    drone-dji:AbsoluteAltitude="{GROUND_ELEVATION_M + relative_altitude_m:+.3f}"
    drone-dji:RelativeAltitude="{relative_altitude_m:+.3f}"
    drone-dji:GimbalRollDegree="{attitude.gimbal_roll_deg:+.2f}"
    drone-dji:GimbalYawDegree="{yaw_deg:+.2f}"
    drone-dji:GimbalPitchDegree="{attitude.gimbal_pitch_deg:+.2f}"
    drone-dji:FlightRollDegree="{attitude.flight_roll_deg:+.2f}"
    drone-dji:FlightYawDegree="{flight_yaw:+.2f}"
    drone-dji:FlightPitchDegree="{attitude.flight_pitch_deg:+.2f}"{uuid}/>
 </rdf:RDF>
</x:xmpmeta>""".encode()


def gps_ifd(
    lonlat: tuple[float, float], altitude_msl_m: float, utc: datetime | None = None
) -> dict[int, object]:
    """An EXIF GPS IFD (piexif) for a position, and the GPS date and time if given."""
    lon, lat = lonlat
    gps: dict[int, object] = {
        piexif.GPSIFD.GPSLatitudeRef: b"N" if lat >= 0 else b"S",
        piexif.GPSIFD.GPSLatitude: _dms(lat),
        piexif.GPSIFD.GPSLongitudeRef: b"E" if lon >= 0 else b"W",
        piexif.GPSIFD.GPSLongitude: _dms(lon),
        piexif.GPSIFD.GPSAltitudeRef: 0,
        piexif.GPSIFD.GPSAltitude: _rational(altitude_msl_m, 1000),
    }
    if utc is not None:
        gps[piexif.GPSIFD.GPSDateStamp] = utc.strftime("%Y:%m:%d").encode()
        gps[piexif.GPSIFD.GPSTimeStamp] = ((utc.hour, 1), (utc.minute, 1), (utc.second, 1))
    return gps


def write_photo(
    path: Path,
    pixels: np.ndarray,
    pose: Pose,
    *,
    pitch_deg: float = -90.0,
    lonlat: tuple[float, float] | None = None,
    with_gps: bool = True,
    with_xmp: bool = True,
    taken_at: datetime = datetime(2026, 3, 14, 10, 30, 0),
    utc_offset: str | None = "+01:00",
    gps_utc: datetime | None = None,
    attitude: Attitude | None = None,
    capture_uuid: str | None = None,
) -> Path:
    """Write ``pixels`` as a JPEG with DJI-style EXIF (+ XMP) for ``pose``.

    ``taken_at`` is the camera clock, at ``utc_offset`` (None: no OffsetTimeOriginal);
    ``gps_utc`` adds the EXIF GPS date and time.
    """
    exif_ifd = {
        piexif.ExifIFD.DateTimeOriginal: taken_at.strftime("%Y:%m:%d %H:%M:%S").encode(),
        piexif.ExifIFD.FocalLength: _rational(FOCAL_MM),
        piexif.ExifIFD.FocalPlaneXResolution: _rational(PX_PER_MM),
        piexif.ExifIFD.FocalPlaneYResolution: _rational(PX_PER_MM),
        piexif.ExifIFD.FocalPlaneResolutionUnit: 4,
        piexif.ExifIFD.PixelXDimension: pixels.shape[1],
        piexif.ExifIFD.PixelYDimension: pixels.shape[0],
    }
    if utc_offset is not None:
        exif_ifd[piexif.ExifIFD.OffsetTimeOriginal] = utc_offset.encode()
    exif = {
        "0th": {piexif.ImageIFD.Make: b"DJI", piexif.ImageIFD.Model: b"M3E"},
        "Exif": exif_ifd,
        "GPS": {},
    }
    if with_gps:
        lon_lat = lonlat if lonlat is not None else pose.lonlat
        exif["GPS"] = gps_ifd(lon_lat, GROUND_ELEVATION_M + pose.altitude_m, gps_utc)
    xmp = dji_xmp(
        pose.altitude_m, pose.yaw_deg, pitch_deg, attitude=attitude, capture_uuid=capture_uuid
    )
    extra = {"xmp": xmp} if with_xmp else {}
    Image.fromarray(pixels).save(path, quality=95, exif=piexif.dump(exif), **extra)
    return path


def fly_over(
    ortho: np.ndarray,
    poses: Sequence[Pose],
    folder: Path,
    height_m: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> Path:
    """A flight over ``ortho`` (flat, or draped on the ground ``height_m(east, north)``): one
    nadir photo per pose, ``folder/DJI_0000.JPG`` onwards (``folder`` made if missing).
    Returns ``folder``, ready for ``ingest_folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, pose in enumerate(poses):
        pixels = (
            render_frame(ortho, pose)
            if height_m is None
            else render_frame_on_dem(ortho, pose, height_m)
        )
        write_photo(folder / f"DJI_{index:04d}.JPG", pixels, pose)
    return folder


def pix4d_band_xmp(
    band_name: str,
    wavelength_nm: float,
    capture_uuid: str,
    yaw_pitch_roll_deg: tuple[float, float, float],
) -> bytes:
    """Pix4D ``Camera`` XMP of one band file, as a Parrot Sequoia writes it (pitch 0 = nadir)."""
    yaw, pitch, roll = yaw_pitch_roll_deg
    return f"""<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:Camera="http://pix4d.com/camera/1.0/">
   <Camera:BandName><rdf:Seq><rdf:li>{band_name}</rdf:li></rdf:Seq></Camera:BandName>
   <Camera:CentralWavelength><rdf:Seq><rdf:li>{wavelength_nm:g}</rdf:li></rdf:Seq>
   </Camera:CentralWavelength>
   <Camera:CaptureUUID>{capture_uuid}</Camera:CaptureUUID>
   <Camera:Yaw>{yaw}</Camera:Yaw><Camera:Pitch>{pitch}</Camera:Pitch><Camera:Roll>{roll}</Camera:Roll>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>""".encode()


def write_band_tiff(
    path: Path,
    pixels: np.ndarray,
    *,
    make: str,
    model: str,
    lonlat: tuple[float, float],
    altitude_msl_m: float,
    taken_at: datetime,
    xmp: bytes,
    focal_mm: float = 3.98,
    px_per_mm: float = 20.0,
) -> Path:
    """A single-band uint16 TIFF with EXIF (IFD0 make/model, capture time, GPS) and XMP.

    GDAL and Pillow do not write EXIF into TIFF, so the file is piexif's EXIF block (itself
    a TIFF header and IFDs) with the image tags added and the pixels appended as one strip.
    """
    height, width = pixels.shape
    zeroth = {
        piexif.ImageIFD.ImageWidth: width,
        piexif.ImageIFD.ImageLength: height,
        piexif.ImageIFD.BitsPerSample: 16,
        piexif.ImageIFD.Compression: 1,
        piexif.ImageIFD.PhotometricInterpretation: 1,
        piexif.ImageIFD.SamplesPerPixel: 1,
        piexif.ImageIFD.RowsPerStrip: height,
        piexif.ImageIFD.StripByteCounts: width * height * 2,
        piexif.ImageIFD.StripOffsets: 0,
        piexif.ImageIFD.Make: make.encode(),
        piexif.ImageIFD.Model: model.encode(),
        piexif.ImageIFD.XMLPacket: xmp,
    }
    exif = {
        "0th": zeroth,
        "Exif": {
            piexif.ExifIFD.DateTimeOriginal: taken_at.strftime("%Y:%m:%d %H:%M:%S").encode(),
            piexif.ExifIFD.FocalLength: _rational(focal_mm),
            piexif.ExifIFD.FocalPlaneXResolution: _rational(px_per_mm),
            piexif.ExifIFD.FocalPlaneResolutionUnit: 4,
        },
        "GPS": gps_ifd(lonlat, altitude_msl_m),
    }
    header = piexif.dump(exif)[len(b"Exif\x00\x00") :]
    zeroth[piexif.ImageIFD.StripOffsets] = len(header)  # same length: a LONG either way
    header = piexif.dump(exif)[len(b"Exif\x00\x00") :]
    byte_order = "<" if header[:2] == b"II" else ">"
    path.write_bytes(header + pixels.astype(f"{byte_order}u2").tobytes())
    return path


# Relief: a hillside with a ridge, its DEM in any CRS, and photos ray-cast onto it.


@dataclass(frozen=True)
class Ridge:
    """A north-south ridge on a hillside rising gently northward. Heights in m, like
    ``GROUND_ELEVATION_M``, the take-off height ``write_photo`` counts altitudes from, which
    is half-way up the ridge by default (the flat model's plane then cuts the relief)."""

    crest_east_m: float
    relief_m: float = 30.0
    foot_m: float = GROUND_ELEVATION_M - 15.0
    """Height of the ridge's foot at the middle of the orthophoto."""
    width_m: float = 25.0
    """Standard deviation of the ridge's Gaussian cross-section."""
    rise_per_m: float = 0.05
    """Slope of the hillside northward, about the middle of the orthophoto."""

    def height_m(self, east_m: np.ndarray, north_m: np.ndarray) -> np.ndarray:
        across = (np.asarray(east_m) - self.crest_east_m) / self.width_m
        along = np.asarray(north_m) - (ORTHO_TOP_M - 100.0)
        return self.foot_m + self.relief_m * np.exp(-0.5 * across**2) + self.rise_per_m * along


def write_dem(
    path: Path,
    height_m: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    crs: str = CRS,
    spacing: float = 1.0,
    margin_m: float = 100.0,
) -> Path:
    """A float32 GeoTIFF DEM of ``height_m(east, north)`` (UTM metres) at its cell centres, in
    ``crs`` with ``spacing`` in that CRS's units, over the orthophoto grown by ``margin_m``."""
    left, top = ORTHO_LEFT_M - margin_m, ORTHO_TOP_M + margin_m
    right, bottom = ORTHO_LEFT_M + 200.0 + margin_m, ORTHO_TOP_M - 200.0 - margin_m
    to_crs = pyproj.Transformer.from_crs(CRS, crs, always_xy=True)
    xs, ys = to_crs.transform([left, right, left, right], [top, top, bottom, bottom])
    width = math.ceil((max(xs) - min(xs)) / spacing)
    height = math.ceil((max(ys) - min(ys)) / spacing)
    transform = Affine(spacing, 0.0, min(xs), 0.0, -spacing, max(ys))
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    x, y = transform * (cols, rows)
    east, north = pyproj.Transformer.from_crs(crs, CRS, always_xy=True).transform(x, y)
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "float32",
        "crs": crs,
        "transform": transform,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(height_m(east, north).astype(np.float32), 1)
    return path


def seen_ground_m(
    pose: Pose,
    height_m: Callable[[np.ndarray, np.ndarray], np.ndarray],
    cols: np.ndarray,
    rows: np.ndarray,
    *,
    iterations: int = 60,
) -> tuple[np.ndarray, np.ndarray]:
    """The ground point (east, north) seen at frame pixel coordinates ``cols``, ``rows``
    (corner-based) over the ground ``height_m(east, north)``, from a camera ``pose.altitude_m``
    above ``GROUND_ELEVATION_M`` (as ``write_photo`` records it).

    Each ray is followed to the ground by fixed-point iteration, which converges (and
    nothing is hidden) where the ground's slope times the ray's tangent stays below 1.
    """
    elevation_m = GROUND_ELEVATION_M + pose.altitude_m
    bearing = math.radians(pose.yaw_deg - meridian_convergence_deg(pose))  # grid bearing
    top = np.array([math.sin(bearing), math.cos(bearing)])  # image top, (east, north)
    right = np.array([math.cos(bearing), -math.sin(bearing)])  # image +u, (east, north)
    du, dv = np.asarray(cols) - WIDTH_PX / 2, np.asarray(rows) - HEIGHT_PX / 2
    east_per_m = (du * right[0] - dv * top[0]) / FOCAL_PX  # ground offset per metre of depth
    north_per_m = (du * right[1] - dv * top[1]) / FOCAL_PX
    east = pose.east_m + east_per_m * pose.altitude_m  # where the take-off plane is seen
    north = pose.north_m + north_per_m * pose.altitude_m
    for _ in range(iterations):
        depth_m = elevation_m - height_m(east, north)
        east_next = pose.east_m + east_per_m * depth_m
        north_next = pose.north_m + north_per_m * depth_m
        step_m = max(np.abs(east_next - east).max(), np.abs(north_next - north).max())
        east, north = east_next, north_next
    if step_m > 1e-6:
        raise ValueError(f"rays did not converge onto the ground ({step_m:.2g} m last step)")
    return east, north


def render_frame_on_dem(
    ortho: np.ndarray, pose: Pose, height_m: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """The (HEIGHT_PX, WIDTH_PX, 3) nadir photo of ``ortho`` draped on the ground
    ``height_m(east, north)``, taken at ``pose`` (see :func:`seen_ground_m`)."""
    cols = np.arange(WIDTH_PX, dtype=np.float64)[None, :] + 0.5
    rows = np.arange(HEIGHT_PX, dtype=np.float64)[:, None] + 0.5
    east, north = seen_ground_m(pose, height_m, cols, rows)
    map_col = ((east - ORTHO_LEFT_M) / ORTHO_RES_M - 0.5).astype(np.float32)
    map_row = ((ORTHO_TOP_M - north) / ORTHO_RES_M - 0.5).astype(np.float32)
    return cv2.remap(ortho, map_col, map_row, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
