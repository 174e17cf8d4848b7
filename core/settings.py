"""Typed settings: defaults, then ``raqib.toml`` in the working folder, then ``RAQIB_*`` env.

Every threshold a stage uses has a name and a default here, so an operator can see and
change it without reading code.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import available_timezones

import pyproj
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.errors import InputError

TOML_FILE = "raqib.toml"


class NotifySettings(BaseModel):
    """Where inspectors' work lists are sent: SMTP email per commune, an optional webhook.

    Nothing set (no ``smtp_host``, no ``webhook_url``): work lists are written, not sent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    smtp_host: str | None = Field(None, description="SMTP server; unset: no email is sent.")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port (587 with STARTTLS).")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_user: str | None = Field(None, description="SMTP login; unset: no login.")
    smtp_password_env: str = Field(
        "RAQIB_SMTP_PASSWORD",
        description="Environment variable holding the SMTP password (never in raqib.toml).",
    )
    sender: str = Field("raqib@localhost", description="From address of the emails.")
    recipients: dict[str, list[str]] = Field(
        default_factory=dict, description="Email addresses by commune (as in the parcels)."
    )
    default_recipients: list[str] = Field(
        default_factory=list, description="Addresses of communes not in recipients."
    )
    webhook_url: str | None = Field(
        None, description="URL receiving the new flags as a JSON POST; unset: no webhook."
    )
    timeout_s: float = Field(20.0, gt=0, description="Timeout of one SMTP or webhook call.")
    retries: int = Field(
        3, ge=0, description="Retries of a send on connection errors, SMTP 4xx and HTTP 5xx."
    )
    backoff_s: float = Field(2.0, ge=0, description="First wait between retries (then doubled).")

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value


POSTGIS_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


class PublishSettings(BaseModel):
    """Optional outputs beside each epoch's GeoPackage (docs/layers.md, "PostGIS")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    postgis_url: str | None = Field(
        None,
        description="PostgreSQL + PostGIS database receiving each epoch's layers in a schema "
        "of its own (postgresql://user@host:5432/dbname); unset: GeoPackage only. Leave the "
        "password out: libpq reads PGPASSWORD or ~/.pgpass.",
    )
    postgis_schema_prefix: str = Field(
        "raqib_",
        pattern=r"^[a-z_][a-z0-9_]*$",
        max_length=30,
        description="Prefix of the epochs' schemas (epoch 2026-07-10: raqib_2026_07_10).",
    )

    @field_validator("postgis_url")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in POSTGIS_SCHEMES:
            raise ValueError(
                f"{without_password(value)!r} is not a postgresql://user@host:port/dbname URL"
            )
        if parts.path.strip("/") == "":
            raise ValueError(f"{without_password(value)!r} names no database (…/dbname)")
        return value


def without_password(url: str) -> str:
    """``url`` with its password (if any) masked, fit for an error message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


class Settings(BaseSettings):
    """Raqib configuration. Environment variables are ``RAQIB_<FIELD>`` (upper case)."""

    model_config = SettingsConfigDict(
        env_prefix="RAQIB_", toml_file=TOML_FILE, extra="forbid", frozen=True
    )

    workspace: Path = Field(Path("workspace"), description="Folder where flows write outputs.")
    crs: str = Field("EPSG:32630", description="Working projected CRS (UTM 30N for Berkane).")
    mosaic_resolution_m: float = Field(
        0.0, ge=0.0, description="Mosaic pixel size; 0 means the survey GSD."
    )
    permit_url_template: str = Field(
        "https://rokhas.example/permits/{permit_id}",
        description="Link to a permit record; {permit_id} and {parcel_id} are filled in.",
    )
    parcel_url_template: str = Field(
        "https://cadastre.example/parcels/{parcel_id}",
        description="Link to a parcel record, used when a flag has no permit.",
    )
    project_url_template: str = Field(
        "https://projects.example/projects/{project_id}",
        description="Link to a public project record.",
    )
    project_stall_days: int = Field(
        90,
        ge=1,
        description="A public project is stalled when its progress has not risen by "
        "project_min_change for this many days.",
    )
    project_min_change: float = Field(
        0.05, gt=0, le=1, description="Smallest progress rise (share of completion) that counts."
    )
    project_schedule_tolerance: float = Field(
        0.25,
        ge=0,
        le=1,
        description="A project is far behind schedule when it trails a linear schedule from "
        "start to planned end by more than this share.",
    )
    permits: dict[str, Any] | None = Field(
        None,
        description="Permit records when a run gives no permits file: a [permits] table with "
        "source (CSV, GeoPackage, .json or an https:// JSON API), fields (ours = theirs), "
        "date_formats... (docs/architecture.md).",
    )
    projects: dict[str, Any] | None = Field(
        None, description="Public project records, as permits (a [projects] table)."
    )
    records_timeout_s: float = Field(20.0, gt=0, description="Timeout of one records API call.")
    records_retries: int = Field(
        3, ge=0, description="Retries of a records API call on connection errors, 429 and 5xx."
    )
    min_building_area_m2: float = Field(
        12.0, gt=0, description="Detected built-up blobs smaller than this are dropped."
    )
    min_building_solidity: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Built-up blobs whose area is below this share of their convex hull "
        "(ragged bare earth, not a roof) are dropped.",
    )
    building_score_threshold: float = Field(
        0.5, ge=0, le=1, description="Pixel probability above which a pixel is built-up."
    )
    new_building_overlap: float = Field(
        0.3,
        ge=0,
        le=1,
        description="A structure whose footprint was built-up before (earlier polygons, "
        "then earlier pixels) for less than this share is new.",
    )
    footprint_tolerance: float = Field(
        0.15, ge=0, description="Built area may exceed the permitted footprint by this share."
    )
    zoning: Path | None = Field(
        None,
        description="Zoning plan (GPKG, shapefile...): polygons with a zone code and a yes/no "
        "buildable column; turns on the outside_buildable_zone flag (docs/flags.md).",
    )
    zoning_zone_column: str = Field("zone", description="Column of zoning holding the zone code.")
    zoning_buildable_column: str = Field(
        "buildable", description="Column of zoning saying yes / no (oui / non) to building."
    )
    zoning_tolerance: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of a new structure's footprint that may lie outside buildable zones.",
    )
    feedback: Path | None = Field(
        None,
        description="Inspectors' decisions as a CSV (flag_id, status, note) to carry to the "
        "next publication; those edited in the published GeoPackages are read anyway.",
    )
    notify: NotifySettings = Field(
        default_factory=NotifySettings,
        description="Sending inspectors' work lists: a [notify] table (docs/notifications.md).",
    )
    publish: PublishSettings = Field(
        default_factory=PublishSettings,
        description="Optional outputs of each epoch: a [publish] table (postgis_url...).",
    )
    health_index: str = Field(
        "gli",
        description="Vegetation index of the per-parcel statistics, zones and history "
        "(e.g. gli, vari, ngrdi for RGB mosaics; ndvi, ndre with a NIR band).",
    )
    multispectral_index: str = Field(
        "ndvi",
        description="Vegetation index of multispectral flights (band files with NIR): "
        "statistics, zones and history as health_index for RGB ones.",
    )
    health_labels: Path | None = Field(
        None,
        description="Agronomist's labelled polygons (GPKG, shapefile...) over the surveyed "
        "fields; each epoch's health classifier is then trained on its own mosaic with them.",
    )
    health_class_column: str = Field(
        "health", description="Column of health_labels holding healthy / stressed / bare."
    )
    health_without_labels: Literal["synthetic", "unsupervised"] = Field(
        "synthetic",
        description="Health classifier when health_labels is unset: the one trained on a "
        "synthetic world, or k-means clusters of the index (marked unsupervised: accuracy "
        "unknown).",
    )
    management_zones: int = Field(
        3, ge=3, le=5, description="Zones per agricultural parcel (variable-rate classes)."
    )
    zone_mmu_ha: float = Field(
        0.05, gt=0, description="Smallest management zone polygon (ha); smaller are merged."
    )
    decline_drop: float = Field(
        0.05,
        gt=0,
        description="A parcel is 'declining' when its mean index drops by more than this "
        "since the previous epoch, beyond the median change of parcels of the same crop.",
    )
    camera_file: Path | None = Field(
        None, description="A TOML file of extra cameras (same fields as flights/cameras.toml)."
    )
    no_fly_zones: Path | None = Field(
        None, description="Extra no-fly zones (GeoPackage/GeoJSON polygons with a name)."
    )
    battery_reserve: float = Field(
        0.25, ge=0, lt=1, description="Share of rated flight time kept in reserve on landing."
    )
    max_wind_m_s: float = Field(
        12.0, gt=0, description="Wind above which a mission is refused (the drone's rating)."
    )
    geofence_margin_m: float = Field(
        50.0, ge=0, description="The exported geofence surrounds the flight by this margin."
    )
    vehicle_timeout_s: float = Field(30.0, gt=0, description="Timeout for any vehicle step.")
    vehicle_retries: int = Field(
        2,
        ge=0,
        description="Retries of connecting to the vehicle and of the mission upload when the "
        "link fails (no vehicle, silence, a timeout); a refused mission is not retried.",
    )
    vehicle_backoff_s: float = Field(
        2.0, ge=0, description="First wait between vehicle link retries (then doubled)."
    )
    dask_cluster: str | None = Field(
        None,
        description="Address of a dask.distributed scheduler (tcp://host:8786) whose workers "
        "render the mosaic tiles; unset: threads on this machine.",
    )
    sim_speedup: float = Field(
        20.0, gt=0, description="Simulated flight runs this many times faster than real time."
    )
    timezone: str = Field(
        "Africa/Casablanca",
        description="IANA time zone of camera clocks that record neither a UTC offset nor "
        "GPS time (how ingest reads their capture time).",
    )
    max_off_nadir_deg: float = Field(
        15.0,
        ge=0,
        le=90,
        description="Ingest skips a photo whose camera axis is further than this from "
        "straight down (oblique).",
    )
    ground_elevation_m: float | None = Field(
        None,
        description="Ground height above sea level under the flight (m), for cameras that "
        "record only GPS altitude (no DJI RelativeAltitude).",
    )

    @field_validator("crs")
    @classmethod
    def _projected(cls, value: str) -> str:
        """Areas (m²) and resolutions (m) need a projected CRS, not lon/lat degrees."""
        try:
            crs = pyproj.CRS.from_user_input(value)
        except pyproj.exceptions.CRSError as exc:
            raise ValueError(f"unknown CRS {value!r}") from exc
        if not crs.is_projected:
            raise ValueError(f"{value} is not a projected CRS (metres are needed)")
        return value

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        """Capture times are read in this zone: a typo must not shift them silently."""
        if value not in available_timezones():
            raise ValueError(f"unknown time zone {value!r} (an IANA name like Africa/Casablanca)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(**overrides: object) -> Settings:
    """Settings from defaults, ``raqib.toml`` and ``RAQIB_*`` env, with explicit overrides.

    InputError (naming ``raqib.toml`` / the ``RAQIB_*`` variable) for a bad or unknown value.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except tomllib.TOMLDecodeError as exc:
        raise InputError(TOML_FILE, f"not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))} (RAQIB_{str(e['loc'][0]).upper()}): {e['msg']}"
            for e in exc.errors()
        )
        raise InputError(f"{TOML_FILE} or environment", problems) from exc
