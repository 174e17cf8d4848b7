"""Settings come from defaults, raqib.toml, then RAQIB_* environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InputError
from core.settings import load_settings


def test_defaults_target_berkane_utm_zone() -> None:
    settings = load_settings()
    assert settings.crs == "EPSG:32630"
    assert "{permit_id}" in settings.permit_url_template


def test_toml_then_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "raqib.toml").write_text('workspace = "/data/raqib"\nfootprint_tolerance = 0.3\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings().footprint_tolerance == 0.3
    monkeypatch.setenv("RAQIB_FOOTPRINT_TOLERANCE", "0.05")
    settings = load_settings()
    assert settings.footprint_tolerance == 0.05
    assert settings.workspace == Path("/data/raqib")


def test_unknown_or_invalid_settings_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raqib.toml").write_text("footprint_tolerence = 0.3\n")
    with pytest.raises(InputError, match="footprint_tolerence"):
        load_settings()
    (tmp_path / "raqib.toml").write_text("footprint_tolerance = -1\n")
    with pytest.raises(InputError, match="RAQIB_FOOTPRINT_TOLERANCE"):
        load_settings()
    (tmp_path / "raqib.toml").write_text("footprint_tolerance = \n")
    with pytest.raises(InputError, match="raqib.toml: not valid TOML"):
        load_settings()


def test_working_crs_must_be_projected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAQIB_CRS", "EPSG:4326")
    with pytest.raises(InputError, match="not a projected CRS"):
        load_settings()
    monkeypatch.setenv("RAQIB_CRS", "EPSG:26191")  # Merchich / Nord Maroc, the cadastre's
    assert load_settings().crs == "EPSG:26191"


def test_ingest_settings_default_to_berkane_and_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings()
    assert settings.timezone == "Africa/Casablanca"
    assert settings.max_off_nadir_deg == 15.0 and settings.ground_elevation_m is None
    monkeypatch.setenv("RAQIB_GROUND_ELEVATION_M", "12.5")
    assert load_settings().ground_elevation_m == 12.5
    for zone in ("Morocco/Berkane", "America", "UTC+1", "../etc/passwd"):
        monkeypatch.setenv("RAQIB_TIMEZONE", zone)
        with pytest.raises(InputError, match="RAQIB_TIMEZONE.*unknown time zone"):
            load_settings()
    monkeypatch.setenv("RAQIB_TIMEZONE", "Europe/Madrid")
    assert load_settings().timezone == "Europe/Madrid"
    monkeypatch.setenv("RAQIB_MAX_OFF_NADIR_DEG", "95")
    with pytest.raises(InputError, match="RAQIB_MAX_OFF_NADIR_DEG"):
        load_settings()


NOTIFY_TOML = """
[notify]
smtp_host = "smtp.berkane.example"
smtp_port = 587
smtp_starttls = true
smtp_user = "raqib"
sender = "raqib@berkane.example"
default_recipients = ["urbanisme@berkane.example"]
webhook_url = "https://inspections.berkane.example/hooks/raqib"

[notify.recipients]
"Berkane" = ["inspecteur.berkane@berkane.example"]
"السعيدية" = ["inspecteur.saidia@berkane.example"]
"""


def test_the_notify_table_reads_recipients_by_commune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().notify.smtp_host is None  # nothing configured: nothing sent
    (tmp_path / "raqib.toml").write_text(NOTIFY_TOML, encoding="utf-8")
    notify = load_settings().notify
    assert notify.smtp_port == 587 and notify.smtp_starttls
    assert notify.recipients["السعيدية"] == ["inspecteur.saidia@berkane.example"]
    assert notify.smtp_password_env == "RAQIB_SMTP_PASSWORD"
    (tmp_path / "raqib.toml").write_text(
        NOTIFY_TOML.replace("smtp_port", "smtp_prot").replace("https://", "ftp://"),
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"notify\.smtp_prot") as refused:
        load_settings()
    assert "notify.webhook_url" in str(refused.value) and "ftp://" in str(refused.value)
