"""Sending inspectors their new flags: an email per commune (SMTP) and an optional webhook
(a JSON POST), each flag once per channel.

A ledger in the workspace (SQLite, table ``sent``: flag_id, channel, target, sent_at)
records what was delivered, and a rerun sends only the flags not in it. A send is retried
with doubling backoff on transient errors (connection, timeout, SMTP 4xx, HTTP 429 / 5xx);
if it still fails it is reported and left out of the ledger, so the next run tries again.
Delivery is at least once: a crash between a send and its ledger entry sends it again.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import socket
import sqlite3
import ssl
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import geopandas as gpd
import pandas as pd

from core.errors import InputError
from core.settings import NotifySettings
from gis.record_api import RETRY_STATUSES
from gis.worklists import file_stem, work_list_csv, work_list_html, work_list_title

log = logging.getLogger(__name__)

EMAIL = "email"
WEBHOOK = "webhook"
LEDGER_TABLE = "sent"
WEBHOOK_FIELDS = (
    "flag_id", "commune", "rank", "status", "severity", "reason", "parcel_id", "permit_id",
    "explanation", "record_url", "captured_on",
)  # fmt: skip


@dataclass(frozen=True)
class Delivery:
    """One send: the channel, whom it was for, the flags it carried and, when it failed,
    why (its flags are then not recorded as sent)."""

    channel: str
    commune: str
    target: str
    flag_ids: tuple[str, ...]
    error: str = ""

    @property
    def sent(self) -> bool:
        return not self.error

    def __str__(self) -> str:
        what = f"{self.channel} to {self.target or 'nobody'}"
        where = f" ({self.commune})" if self.commune else ""
        if self.sent:
            return f"{what}{where}: {len(self.flag_ids)} flag(s) sent"
        return f"{what}{where}: {len(self.flag_ids)} flag(s) not sent, {self.error}"


# -- the ledger of what was sent -----------------------------------------------------------


def _connect(ledger: Path) -> sqlite3.Connection:
    ledger.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(ledger, timeout=30)
    try:
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (flag_id TEXT NOT NULL, "
            "channel TEXT NOT NULL, target TEXT, sent_at TEXT, PRIMARY KEY (flag_id, channel))"
        )
    except sqlite3.DatabaseError as exc:
        connection.close()
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise
        raise InputError(
            ledger, f"not a notification ledger ({exc}); move it away to start a new one "
            "(every open flag is then sent again)",
        ) from exc  # fmt: skip
    return connection


def sent_flag_ids(ledger: Path, channel: str) -> set[str]:
    """The flags already delivered on ``channel``."""
    with closing(_connect(ledger)) as connection:
        rows = connection.execute(
            f"SELECT flag_id FROM {LEDGER_TABLE} WHERE channel = ?", (channel,)
        ).fetchall()
    return {row[0] for row in rows}


def record_sent(ledger: Path, delivery: Delivery) -> None:
    """Add a successful ``delivery``'s flags to the ledger (one transaction)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with closing(_connect(ledger)) as connection, connection:
        connection.executemany(
            f"INSERT OR REPLACE INTO {LEDGER_TABLE} VALUES (?, ?, ?, ?)",
            [(fid, delivery.channel, delivery.target, now) for fid in delivery.flag_ids],
        )


# -- retries ---------------------------------------------------------------------------------


def _transient(exc: OSError) -> bool:
    """Whether trying again later may succeed."""
    if isinstance(exc, HTTPError):
        return exc.code in RETRY_STATUSES
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    reason = exc.reason if isinstance(exc, URLError) else exc
    return isinstance(reason, ConnectionError | TimeoutError | socket.gaierror)


def _describe(exc: OSError) -> str:
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, smtplib.SMTPResponseException):
        message = exc.smtp_error
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        return f"SMTP {exc.smtp_code} {text}"
    if isinstance(exc, URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _with_retries(send: Callable[[], None], what: str, settings: NotifySettings) -> str:
    """Run ``send``, retrying transient failures; '' when done, else the last error."""
    attempt = 0
    while True:
        try:
            send()
            return ""
        except OSError as exc:  # smtplib, urllib and socket errors all are
            problem, transient = _describe(exc), _transient(exc)
            if not transient or attempt == settings.retries:
                tries = f" after {attempt + 1} attempt(s)" if transient else ""
                return f"{problem}{tries}; tried again on the next run"
            delay_s = settings.backoff_s * 2**attempt
            log.warning("%s: %s; retrying in %.1f s", what, problem, delay_s)
            time.sleep(delay_s)
            attempt += 1


# -- email ---------------------------------------------------------------------------------


def recipients_of(commune: str, settings: NotifySettings) -> list[str]:
    """The addresses of ``commune``'s inspectors (else the default ones)."""
    return list(settings.recipients.get(commune) or settings.default_recipients)


def _plain_text(flags: pd.DataFrame, title: str) -> str:
    lines = [title, ""]
    for flag in flags.itertuples():
        lines.append(f"{flag.rank}. [{flag.severity:.2f}] {flag.explanation}")
        lines.append(f"   flag {flag.flag_id}; record: {flag.record_url or 'none'}")
    lines += ["", "The attached CSV is the list as a spreadsheet: fill in status and note."]
    return "\n".join(lines) + "\n"


def commune_email(
    flags: pd.DataFrame,
    commune: str,
    map_png: Path | None,
    recipients: list[str],
    sender: str,
) -> EmailMessage:
    """The email of one commune's new flags: a plain-text and an HTML body (the map and the
    evidence chips inline), the flags as a CSV attachment."""
    title = work_list_title(commune, flags)
    message = EmailMessage()
    message["Subject"] = f"Raqib: {len(flags)} flagged parcel(s) to inspect in {commune}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain="raqib.local")
    message.set_content(_plain_text(flags, title))
    chips = [Path(e) for e in flags["evidence"] if isinstance(e, str) and e]
    images = [p for p in dict.fromkeys([map_png, *chips]) if p is not None and p.is_file()]
    cids = {str(path): make_msgid(domain="raqib.local")[1:-1] for path in images}
    message.add_alternative(
        work_list_html(
            flags,
            commune=commune,
            title=title,
            map_src=f"cid:{cids[str(map_png)]}" if str(map_png) in cids else "",
            refer=lambda path: f"cid:{cids[path]}" if path in cids else "",
        ),
        subtype="html",
    )
    html_part = message.get_payload()[1]
    for path in images:
        html_part.add_related(
            path.read_bytes(), "image", "png", cid=f"<{cids[str(path)]}>", filename=path.name
        )
    message.add_attachment(
        work_list_csv(flags, refer=lambda path: Path(path).name),
        maintype="text",
        subtype="csv",
        filename=f"{file_stem(commune, set())}.csv",
    )
    return message


def _smtp_send(message: EmailMessage, recipients: list[str], settings: NotifySettings) -> None:
    assert settings.smtp_host is not None
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout_s) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            smtp.login(settings.smtp_user, os.environ.get(settings.smtp_password_env, ""))
        smtp.send_message(message, to_addrs=recipients)


def _missing_password(settings: NotifySettings) -> str:
    if settings.smtp_user and not os.environ.get(settings.smtp_password_env):
        return (
            f"notify.smtp_user is set but the environment variable "
            f"{settings.smtp_password_env} (the SMTP password) is empty"
        )
    return ""


def email_commune(
    commune: str, flags: pd.DataFrame, map_png: Path | None, settings: NotifySettings
) -> Delivery:
    """Send one commune's new ``flags`` to its inspectors."""
    recipients = recipients_of(commune, settings)
    target = ", ".join(recipients)
    error = _missing_password(settings) or (
        "" if recipients else f"no recipient: add notify.recipients.{commune!r} or "
        "notify.default_recipients"
    )  # fmt: skip
    if not error:
        message = commune_email(flags, commune, map_png, recipients, settings.sender)
        error = _with_retries(
            lambda: _smtp_send(message, recipients, settings), f"email to {target}", settings
        )
    return Delivery(EMAIL, commune, target, tuple(flags["flag_id"]), error)


def email_communes(
    work: pd.DataFrame, maps: Mapping[str, Path], settings: NotifySettings, ledger: Path
) -> list[Delivery]:
    """Email each commune's flags not yet emailed; successful sends go into the ledger."""
    done = sent_flag_ids(ledger, EMAIL)
    deliveries = []
    for commune, flags in work.groupby("commune", sort=True):
        new = flags[~flags["flag_id"].isin(done)]
        if new.empty:
            continue
        delivery = email_commune(str(commune), new, maps.get(str(commune)), settings)
        if delivery.sent:
            record_sent(ledger, delivery)
        deliveries.append(delivery)
    return deliveries


# -- webhook -------------------------------------------------------------------------------


def _json_value(value: object) -> object:
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def webhook_payload(flags: gpd.GeoDataFrame) -> dict[str, object]:
    """The flags as JSON: their fields, the evidence file name and a lon/lat point on the
    parcel (WGS 84) to place them on any map."""
    points = flags.geometry.representative_point().to_crs("EPSG:4326")
    items = []
    for (_, flag), point in zip(flags.iterrows(), points, strict=True):
        item = {field: _json_value(flag.get(field)) for field in WEBHOOK_FIELDS}
        evidence = _json_value(flag.get("evidence"))
        item["evidence"] = Path(str(evidence)).name if evidence else None
        item["lon"], item["lat"] = round(point.x, 7), round(point.y, 7)
        items.append(item)
    return {"source": "raqib", "count": len(items), "flags": items}


def _post_json(url: str, document: dict[str, object], timeout_s: float) -> None:
    body = json.dumps(document, ensure_ascii=False).encode("utf-8")
    request = Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "raqib"},
    )
    with urlopen(request, timeout=timeout_s) as response:
        response.read()


def post_webhook(work: gpd.GeoDataFrame, settings: NotifySettings, ledger: Path) -> list[Delivery]:
    """POST the flags not yet posted to ``settings.webhook_url``, all in one document."""
    assert settings.webhook_url is not None
    new = work[~work["flag_id"].isin(sent_flag_ids(ledger, WEBHOOK))]
    if new.empty:
        return []
    url, payload = settings.webhook_url, webhook_payload(new)
    error = _with_retries(
        lambda: _post_json(url, payload, settings.timeout_s), f"webhook {url}", settings
    )
    delivery = Delivery(WEBHOOK, "", url, tuple(new["flag_id"]), error)
    if delivery.sent:
        record_sent(ledger, delivery)
    return [delivery]


def send_notifications(
    work: gpd.GeoDataFrame, maps: Mapping[str, Path], settings: NotifySettings, ledger: Path
) -> tuple[Delivery, ...]:
    """Send the flags of ``work`` (a work list, :func:`gis.worklists.work_list`) not sent
    before: an email per commune (with its map from ``maps``) when ``settings.smtp_host``
    is set, a webhook POST when ``settings.webhook_url`` is. Nothing configured, nothing
    sent. Failures are returned (and logged), never raised."""
    deliveries: list[Delivery] = []
    if settings.smtp_host and not work.empty:
        deliveries += email_communes(work, maps, settings, ledger)
    if settings.webhook_url and not work.empty:
        deliveries += post_webhook(work, settings, ledger)
    for delivery in deliveries:
        (log.info if delivery.sent else log.warning)("%s", delivery)
    return tuple(deliveries)
