"""Frozen value types that every stage speaks.

Stages pass these (and GeoDataFrames in a projected CRS) to one another; none of them
does I/O. Units are in the names (``_m``, ``_mm``, ``_deg``, ``_s``, ``_cm``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from affine import Affine


@dataclass(frozen=True)
class Camera:
    """A frame camera: pinhole model with a rectangular sensor."""

    name: str
    make: str
    model: str
    sensor_width_mm: float
    sensor_height_mm: float
    image_width_px: int
    image_height_px: int
    focal_length_mm: float
    min_trigger_interval_s: float = 1.0
    bands: tuple[str, ...] = ("red", "green", "blue")
    photo_mb: float | None = None
    """Size of one capture on the card (all bands), from the maker's sample files."""
    endurance_s: float | None = None
    """Rated flight time of the drone this camera is built into or usually flown on."""

    @property
    def pixel_pitch_mm(self) -> float:
        return self.sensor_width_mm / self.image_width_px

    @property
    def focal_length_px(self) -> float:
        return self.focal_length_mm / self.pixel_pitch_mm

    def gsd_cm(self, altitude_m: float) -> float:
        """Ground sampling distance at nadir, in cm per pixel, at ``altitude_m`` AGL."""
        return 100.0 * altitude_m / self.focal_length_px

    def altitude_for_gsd_m(self, gsd_cm: float) -> float:
        """Height above ground (m) that gives ``gsd_cm`` at nadir."""
        return gsd_cm / 100.0 * self.focal_length_px

    def footprint_m(self, altitude_m: float) -> tuple[float, float]:
        """Ground footprint (across-track width, along-track height) in metres at nadir."""
        gsd_m = self.gsd_cm(altitude_m) / 100.0
        return self.image_width_px * gsd_m, self.image_height_px * gsd_m


@dataclass(frozen=True)
class SurveySpec:
    """What an operator asks of a survey: resolution, overlaps, speed."""

    camera: Camera
    gsd_cm: float
    front_overlap: float = 0.75
    side_overlap: float = 0.65
    speed_m_s: float = 8.0
    grid_angle_deg: float = 0.0
    turnaround_m: float = 10.0
    crosshatch: bool = False
    """Fly the grid a second time at ``grid_angle_deg + 90`` (better 3D / facades)."""
    entry_corner: str = "nearest"
    """Where the grid starts: ``nearest`` to home, or a corner of the rotated grid."""

    @property
    def altitude_m(self) -> float:
        return self.camera.altitude_for_gsd_m(self.gsd_cm)

    @property
    def trigger_distance_m(self) -> float:
        """Distance between photos along a line (the image height is along-track)."""
        _, along_m = self.camera.footprint_m(self.altitude_m)
        return along_m * (1.0 - self.front_overlap)

    @property
    def line_spacing_m(self) -> float:
        across_m, _ = self.camera.footprint_m(self.altitude_m)
        return across_m * (1.0 - self.side_overlap)


@dataclass(frozen=True)
class Waypoint:
    """A mission waypoint in WGS84, altitude relative to home (m)."""

    lat_deg: float
    lon_deg: float
    altitude_m: float
    photos: bool = True
    """The camera fires (by distance) on the leg from this waypoint to the next."""


@dataclass(frozen=True)
class FenceZone:
    """A geofence zone: a lon/lat polygon ring or a circle, to stay inside or outside of."""

    inclusion: bool
    polygon_lonlat: tuple[tuple[float, float], ...] = ()
    centre_lonlat: tuple[float, float] | None = None
    radius_m: float = 0.0


@dataclass(frozen=True)
class Mission:
    """A planned survey: lawnmower lines as waypoints, camera triggered by distance."""

    name: str
    spec: SurveySpec
    home: Waypoint
    waypoints: tuple[Waypoint, ...]
    distance_m: float
    estimated_time_s: float
    photo_count: int
    aoi_wkt_lonlat: str = ""
    fence: tuple[FenceZone, ...] = ()
    rally_points: tuple[Waypoint, ...] = ()
    warnings: tuple[str, ...] = ()
    """Things the operator must know before flying (no DEM, wind near the limit, ...)."""

    @property
    def altitude_m(self) -> float:
        return self.spec.altitude_m

    @property
    def trigger_distance_m(self) -> float:
        return self.spec.trigger_distance_m


@dataclass(frozen=True)
class Grid:
    """An output pixel grid (shape + affine + CRS), shared by every epoch of an AOI.

    Like odc-geo's ``GeoBox``: immutable, and built snapped to whole multiples of the
    resolution so that two epochs of the same AOI align pixel to pixel.
    """

    crs: str
    transform: Affine
    width: int
    height: int

    @classmethod
    def from_bounds(
        cls, bounds: tuple[float, float, float, float], resolution_m: float, crs: str
    ) -> Grid:
        left, bottom, right, top = bounds
        left = math.floor(left / resolution_m) * resolution_m
        bottom = math.floor(bottom / resolution_m) * resolution_m
        right = math.ceil(right / resolution_m) * resolution_m
        top = math.ceil(top / resolution_m) * resolution_m
        width = round((right - left) / resolution_m)
        height = round((top - bottom) / resolution_m)
        transform = Affine(resolution_m, 0.0, left, 0.0, -resolution_m, top)
        return cls(crs=crs, transform=transform, width=width, height=height)

    @property
    def resolution_m(self) -> float:
        return self.transform.a

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform.c, self.transform.f
        return (
            left,
            top + self.height * self.transform.e,
            left + self.width * self.transform.a,
            top,
        )

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width


@dataclass(frozen=True)
class ImageRecord:
    """One ingested photo: where, when and how it was taken."""

    path: Path
    sha256: str
    captured_at: datetime
    lon_deg: float
    lat_deg: float
    altitude_m: float
    camera: Camera
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    width_px: int = 0
    height_px: int = 0
    bands: tuple[str, ...] = ("red", "green", "blue")
    capture_id: str = ""
    """Shared by the band files of one trigger (MicaSense, Sequoia, DJI multispectral)."""
    wavelengths_nm: tuple[float, ...] = ()
    """Central wavelength of each band, when the camera writes it."""
    irradiance_w_m2_nm: tuple[float, ...] = ()
    """Sun-sensor (DLS) spectral irradiance for each band, when the camera writes it."""
    flight_yaw_deg: float | None = None
    flight_pitch_deg: float | None = None
    flight_roll_deg: float | None = None
    """Attitude of the aircraft body; ``yaw/pitch/roll_deg`` above are the camera's."""
    absolute_altitude_m: float | None = None
    """Camera altitude above sea level (DJI ``AbsoluteAltitude``, else EXIF GPSAltitude)."""
    time_source: str = ""
    """Where ``captured_at``'s time zone came from (EXIF offset, GPS time, assumed zone)."""


@dataclass(frozen=True)
class Capture:
    """One trigger of the camera: an RGB photo, or the band files of a multi-camera sensor."""

    capture_id: str
    images: tuple[ImageRecord, ...]

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(band for image in self.images for band in image.bands)

    @property
    def wavelengths_nm(self) -> tuple[float, ...]:
        return tuple(nm for image in self.images for nm in image.wavelengths_nm)

    def band(self, name: str) -> ImageRecord:
        """The image holding band ``name`` (e.g. ``"nir"``); KeyError if the capture lacks it."""
        for image in self.images:
            if name in image.bands:
                return image
        raise KeyError(f"capture {self.capture_id} has no band {name!r} (has {self.bands})")


@dataclass(frozen=True)
class SkippedInput:
    """An input left out of a stage, and why (for the stage's report)."""

    path: Path
    reason: str
    kind: str = ""
    """A short category of the reason (``duplicate``, ``no GPS``...) to count skips by."""


@dataclass(frozen=True)
class IngestResult:
    """Photos accepted by ingest, and those skipped with their reasons."""

    images: tuple[ImageRecord, ...]
    skipped: tuple[SkippedInput, ...] = ()

    @property
    def captures(self) -> tuple[Capture, ...]:
        """The images grouped by ``capture_id`` (one per RGB photo), in order of first image."""
        groups: dict[str, list[ImageRecord]] = {}
        for image in self.images:
            groups.setdefault(image.capture_id or str(image.path), []).append(image)
        return tuple(Capture(key, tuple(images)) for key, images in groups.items())


@dataclass(frozen=True)
class Raster:
    """A reference to a raster on disk (never its pixels)."""

    path: Path
    crs: str
    transform: Affine
    width: int
    height: int
    count: int
    nodata: float | None = None

    @property
    def grid(self) -> Grid:
        return Grid(crs=self.crs, transform=self.transform, width=self.width, height=self.height)


@dataclass(frozen=True)
class Accuracy:
    """Binary or per-class accuracy measured against truth not used in training."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int
    kappa: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of_matches(
        cls, name: str, matched: int, predicted: int, actual: int, **extra: float
    ) -> Accuracy:
        """Scores of ``matched`` one-to-one matches among ``predicted`` detections of
        ``actual`` true objects, with the counts (and ``extra``) in ``extra``."""
        precision = matched / predicted if predicted else 0.0
        recall = matched / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if matched else 0.0
        counts = {
            "true_positives": float(matched),
            "false_positives": float(predicted - matched),
            "false_negatives": float(actual - matched),
        }
        return cls(name, precision, recall, f1, support=actual, extra=counts | extra)


@dataclass(frozen=True)
class Flag:
    """A parcel an inspector should look at, with its evidence and record link."""

    parcel_id: str
    reason: str
    severity: float
    explanation: str
    commune: str = ""
    permit_id: str | None = None
    record_url: str = ""
    evidence: tuple[Path, ...] = ()
