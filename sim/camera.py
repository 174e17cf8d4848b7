"""Nadir frames rendered from a truth orthophoto, written as a DJI drone writes them.

The geometry follows the shared camera convention (DJI's): the TOP of a nadir image points
in the yaw direction (degrees clockwise from true north) and the image's +u axis points to
yaw + 90 deg; pinhole, principal point at the image centre, flat ground. The TRUE pose
renders the pixels; the EXIF/XMP carry the REPORTED (GNSS) pose, as on a real drone.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import piexif
import rasterio
from affine import Affine
from PIL import Image
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.windows import Window

from core.io import atomic_path
from core.types import Camera

MOROCCO_TIME = timezone(timedelta(hours=1))
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
POSES_COLUMNS = (
    "frame",
    "file",
    "captured_at",
    "true_easting_m",
    "true_northing_m",
    "true_altitude_agl_m",
    "true_yaw_deg",
    "reported_lon_deg",
    "reported_lat_deg",
    "reported_easting_m",
    "reported_northing_m",
    "reported_altitude_agl_m",
    "reported_yaw_deg",
    "horizontal_error_m",
)


@dataclass(frozen=True)
class Pose:
    """A nadir camera pose: position in the ortho's CRS, height above ground, heading."""

    easting_m: float
    northing_m: float
    altitude_agl_m: float
    yaw_deg: float


@dataclass(frozen=True)
class FrameExif:
    """What a photo's metadata claims: the reported (GNSS) pose and the capture time."""

    lon_deg: float
    lat_deg: float
    altitude_msl_m: float
    relative_altitude_m: float
    gimbal_yaw_deg: float
    flight_yaw_deg: float
    captured_at: datetime


def frame_to_ground(camera: Camera, pose: Pose) -> Affine:
    """Affine map from frame pixel coordinates (col, row; 0 at the top-left edge) to (E, N) m."""
    gsd_m = pose.altitude_agl_m / camera.focal_length_px
    yaw = math.radians(pose.yaw_deg)
    cos_g, sin_g = gsd_m * math.cos(yaw), gsd_m * math.sin(yaw)
    half_w, half_h = camera.image_width_px / 2, camera.image_height_px / 2
    # +col points to yaw + 90 deg = (cos yaw, -sin yaw); -row points to yaw = (sin yaw, cos yaw)
    return Affine(
        cos_g,
        -sin_g,
        pose.easting_m - half_w * cos_g + half_h * sin_g,
        -sin_g,
        -cos_g,
        pose.northing_m + half_w * sin_g + half_h * cos_g,
    )


def render_frame(ortho: rasterio.DatasetReader, camera: Camera, pose: Pose) -> np.ndarray:
    """A clean nadir RGB frame (H, W, 3) uint8 at ``pose``; black outside the ortho."""
    width, height = camera.image_width_px, camera.image_height_px
    frame_to_ortho = ~ortho.transform @ frame_to_ground(camera, pose)
    corners = [frame_to_ortho @ xy for xy in ((0, 0), (width, 0), (0, height), (width, height))]
    cols, rows = zip(*corners, strict=True)
    col0 = max(math.floor(min(cols)) - 2, 0)
    row0 = max(math.floor(min(rows)) - 2, 0)
    col1 = min(math.ceil(max(cols)) + 2, ortho.width)
    row1 = min(math.ceil(max(rows)) + 2, ortho.height)
    if col1 <= col0 or row1 <= row0:
        return np.zeros((height, width, 3), np.uint8)
    # Read coarser than the ortho when the frame's GSD is coarser, so the warp does not alias.
    step = max(1, math.floor(pose.altitude_agl_m / camera.focal_length_px / abs(ortho.res[0])))
    out_w = max(1, math.ceil((col1 - col0) / step))
    out_h = max(1, math.ceil((row1 - row0) / step))
    patch = ortho.read(
        (1, 2, 3),
        window=Window(col0, row0, col1 - col0, row1 - row0),
        out_shape=(3, out_h, out_w),
        resampling=Resampling.average,
    )
    # OpenCV indexes pixel centres at integers, rasterio's continuous coordinates at +0.5.
    index_map = (
        Affine.translation(-0.5, -0.5)
        @ Affine.scale(out_w / (col1 - col0), out_h / (row1 - row0))
        @ Affine.translation(-col0, -row0)
        @ frame_to_ortho
        @ Affine.translation(0.5, 0.5)
    )
    return cv2.warpAffine(
        np.ascontiguousarray(np.moveaxis(patch, 0, -1)),
        np.array(index_map[:6], dtype=np.float64).reshape(2, 3),
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def apply_nuisances(
    pixels: np.ndarray, rng: np.random.Generator, *, exposure_gain: float
) -> np.ndarray:
    """Exposure gain, lens vignetting, slight along-track motion blur and sensor noise."""
    height, width = pixels.shape[:2]
    image = pixels.astype(np.float32) * (exposure_gain * _vignette(height, width))[..., None]
    # The drone flies towards the top of the frame: blur vertically over 1-3 px.
    blur_px = rng.uniform(1.0, 3.0)
    taps = np.clip(blur_px / 2 - np.abs(np.arange(-2, 3)), 0.0, 1.0).astype(np.float32)
    taps[2] = 1.0
    image = cv2.filter2D(image, -1, (taps / taps.sum())[:, None])
    image += 1.5 * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


@cache
def _vignette(height: int, width: int) -> np.ndarray:
    """Relative illumination falling to 70 % in the corners (a wide-angle lens)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    radius2 = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2) / (
        (width / 2) ** 2 + (height / 2) ** 2
    )
    return 1.0 - 0.3 * radius2


def _rational(value: float, denominator: int) -> tuple[int, int]:
    return round(value * denominator), denominator


def _dms(value_deg: float) -> tuple[tuple[int, int], ...]:
    """Degrees, minutes, seconds as EXIF rationals (seconds to 1e-4, about 3 mm)."""
    seconds_e4 = round(abs(value_deg) * 3600 * 10000)
    degrees, rest = divmod(seconds_e4, 3600 * 10000)
    minutes, seconds = divmod(rest, 60 * 10000)
    return (degrees, 1), (minutes, 1), (seconds, 10000)


def _local_time(captured_at: datetime) -> datetime:
    """Capture time on Morocco's clock (naive times are taken as already local)."""
    if captured_at.tzinfo is None:
        return captured_at.replace(tzinfo=MOROCCO_TIME)
    return captured_at.astimezone(MOROCCO_TIME)


def exif_bytes(camera: Camera, exif: FrameExif) -> bytes:
    """The EXIF block (APP1) a DJI drone writes: GPS, capture time, focal plane, size."""
    local = _local_time(exif.captured_at)
    equivalent_mm = (
        camera.focal_length_mm
        * FULL_FRAME_DIAGONAL_MM
        / math.hypot(camera.sensor_width_mm, camera.sensor_height_mm)
    )
    zeroth = {
        piexif.ImageIFD.Make: camera.make,
        piexif.ImageIFD.Model: camera.model,
        piexif.ImageIFD.Orientation: 1,
        piexif.ImageIFD.DateTime: local.strftime("%Y:%m:%d %H:%M:%S"),
    }
    exif_ifd = {
        piexif.ExifIFD.ExifVersion: b"0230",
        piexif.ExifIFD.DateTimeOriginal: local.strftime("%Y:%m:%d %H:%M:%S"),
        piexif.ExifIFD.SubSecTimeOriginal: f"{local.microsecond // 1000:03d}",
        piexif.ExifIFD.OffsetTimeOriginal: local.strftime("%z")[:3]
        + ":"
        + local.strftime("%z")[3:],
        piexif.ExifIFD.FocalLength: _rational(camera.focal_length_mm, 100),
        piexif.ExifIFD.FocalLengthIn35mmFilm: int(equivalent_mm),
        # Unit 4 = mm as exiftool and TIFF/EP read it (EXIF 2.32 itself lists only
        # 2 = inch and 3 = cm); the team's convention: resolution is pixels per mm.
        piexif.ExifIFD.FocalPlaneXResolution: _rational(
            camera.image_width_px / camera.sensor_width_mm, 1_000_000
        ),
        piexif.ExifIFD.FocalPlaneYResolution: _rational(
            camera.image_height_px / camera.sensor_height_mm, 1_000_000
        ),
        piexif.ExifIFD.FocalPlaneResolutionUnit: 4,
        piexif.ExifIFD.PixelXDimension: camera.image_width_px,
        piexif.ExifIFD.PixelYDimension: camera.image_height_px,
    }
    gps = {
        piexif.GPSIFD.GPSVersionID: (2, 3, 0, 0),
        piexif.GPSIFD.GPSLatitudeRef: "N" if exif.lat_deg >= 0 else "S",
        piexif.GPSIFD.GPSLatitude: _dms(exif.lat_deg),
        piexif.GPSIFD.GPSLongitudeRef: "E" if exif.lon_deg >= 0 else "W",
        piexif.GPSIFD.GPSLongitude: _dms(exif.lon_deg),
        piexif.GPSIFD.GPSAltitudeRef: 0 if exif.altitude_msl_m >= 0 else 1,
        piexif.GPSIFD.GPSAltitude: _rational(abs(exif.altitude_msl_m), 1000),
    }
    return piexif.dump({"0th": zeroth, "Exif": exif_ifd, "GPS": gps})


def xmp_packet(exif: FrameExif) -> bytes:
    """The DJI XMP packet (``drone-dji:`` namespace) with altitudes and gimbal angles."""
    attributes = {
        "GpsLatitude": f"{exif.lat_deg:.8f}",
        "GpsLongitude": f"{exif.lon_deg:+.8f}",
        "AbsoluteAltitude": f"{exif.altitude_msl_m:+.3f}",
        "RelativeAltitude": f"{exif.relative_altitude_m:+.3f}",
        "GimbalRollDegree": "+0.00",
        "GimbalYawDegree": f"{_signed_deg(exif.gimbal_yaw_deg):+.2f}",
        "GimbalPitchDegree": "-90.00",
        "FlightRollDegree": "+0.00",
        "FlightYawDegree": f"{_signed_deg(exif.flight_yaw_deg):+.2f}",
        "FlightPitchDegree": "+0.00",
    }
    body = "\n".join(f'    drone-dji:{key}="{value}"' for key, value in attributes.items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about="DJI Meta Data"\n'
        '    xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"\n'
        f"{body}/>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def _signed_deg(angle_deg: float) -> float:
    """An angle in [-180, 180), as DJI writes yaw."""
    return (angle_deg + 180.0) % 360.0 - 180.0


def write_jpeg(
    pixels: np.ndarray, out_path: Path, camera: Camera, exif: FrameExif, *, quality: int = 90
) -> Path:
    """Write an RGB frame as JPEG with EXIF and DJI XMP (atomically: temp file, then rename)."""
    with atomic_path(out_path) as partial:
        Image.fromarray(pixels, "RGB").save(
            partial,
            "JPEG",
            quality=quality,
            exif=exif_bytes(camera, exif),
            xmp=xmp_packet(exif),
        )
    return out_path


class FlightCamera:
    """The camera of one simulated flight.

    Opens the truth ortho once, numbers frames ``IMG_0001.JPG``..., keeps the exposure
    random walk between frames and appends true and reported poses to ``poses.csv``.
    """

    def __init__(
        self,
        ortho_path: Path,
        camera: Camera,
        out_dir: Path,
        *,
        seed: int = 0,
        nuisances: bool = True,
        quality: int = 90,
    ) -> None:
        self.camera = camera
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.nuisances = nuisances
        self.quality = quality
        self.frames: list[Path] = []
        self._rng = np.random.default_rng(seed)
        self._exposure_gain = 1.0
        self._ortho = rasterio.open(ortho_path)
        try:
            self._to_crs = Transformer.from_crs("EPSG:4326", self._ortho.crs, always_xy=True)
            self._poses_file = self.poses_path.open("w", newline="", encoding="utf-8")
        except BaseException:
            self._ortho.close()
            raise
        self._poses = csv.writer(self._poses_file)
        self._poses.writerow(POSES_COLUMNS)

    @property
    def poses_path(self) -> Path:
        return self.out_dir / "poses.csv"

    def capture(self, true_pose: Pose, exif: FrameExif) -> Path:
        """Render the frame seen from ``true_pose`` and write it with ``exif`` metadata."""
        pixels = render_frame(self._ortho, self.camera, true_pose)
        if self.nuisances:
            self._exposure_gain = float(
                np.clip(self._exposure_gain * math.exp(self._rng.normal(0.0, 0.03)), 0.85, 1.15)
            )
            pixels = apply_nuisances(pixels, self._rng, exposure_gain=self._exposure_gain)
        path = self.out_dir / f"IMG_{len(self.frames) + 1:04d}.JPG"
        write_jpeg(pixels, path, self.camera, exif, quality=self.quality)
        self.frames.append(path)
        self._record(path, true_pose, exif)
        return path

    def _record(self, path: Path, true_pose: Pose, exif: FrameExif) -> None:
        easting, northing = self._to_crs.transform(exif.lon_deg, exif.lat_deg)
        self._poses.writerow(
            (
                len(self.frames),
                path.name,
                _local_time(exif.captured_at).isoformat(),
                f"{true_pose.easting_m:.3f}",
                f"{true_pose.northing_m:.3f}",
                f"{true_pose.altitude_agl_m:.3f}",
                f"{true_pose.yaw_deg:.3f}",
                f"{exif.lon_deg:.9f}",
                f"{exif.lat_deg:.9f}",
                f"{easting:.3f}",
                f"{northing:.3f}",
                f"{exif.relative_altitude_m:.3f}",
                f"{exif.gimbal_yaw_deg:.3f}",
                f"{math.hypot(easting - true_pose.easting_m, northing - true_pose.northing_m):.3f}",
            )
        )
        self._poses_file.flush()

    def close(self) -> None:
        self._poses_file.close()
        self._ortho.close()

    def __enter__(self) -> FlightCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
