"""Notifications against real servers on loopback: aiosmtpd receives the emails, an
http.server the webhook; each flag is sent once, a failed send is retried on the next run."""

from __future__ import annotations

import email
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from PIL import Image
from shapely.geometry import box

from core.errors import InputError
from core.settings import NotifySettings
from gis.notify import EMAIL, WEBHOOK, send_notifications, sent_flag_ids
from gis.worklists import work_list, write_work_lists

CRS = "EPSG:32630"
DAY = date(2026, 7, 10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Inbox:
    """An aiosmtpd handler keeping what it receives; answers 451 to the first ``refuse``."""

    refuse: int = 0
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd)
        if self.refuse > 0:
            self.refuse -= 1
            return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"


@dataclass
class SmtpServer:
    inbox: Inbox
    port: int


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    inbox, port = Inbox(), _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(inbox, port)
    finally:
        controller.stop()


@dataclass
class Webhook:
    """A loopback HTTP server keeping the JSON posted to it; answers ``statuses`` first."""

    url: str
    received: list[dict] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = hook.statuses.pop(0) if hook.statuses else 200
            if status == 200:
                assert self.headers.get_content_type() == "application/json"
                hook.received.append(json.loads(body.decode("utf-8")))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_port}/raqib/flags"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


def _parcels() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"parcel_id": ["B-1", "B-2", "S-1"], "commune": ["Berkane", "Berkane", "Saïdia"]},
        geometry=[box(600000 + 50 * i, 3860000, 600040 + 50 * i, 3860040) for i in range(3)],
        crs=CRS,
    )


def _work(folder: Path, parcel_ids: tuple[str, ...] = ("B-1", "B-2", "S-1")):
    """A work list of a no_permit flag on each of ``parcel_ids``, with chips and maps."""
    parcels = _parcels().set_index("parcel_id")
    chips = folder / "evidence"
    chips.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, pid in enumerate(parcel_ids):
        chip = chips / f"{pid}_no_permit.png"
        Image.fromarray(np.full((8, 16, 3), 40 * i, np.uint8)).save(chip)
        rows.append({
            "flag_id": f"{DAY}:no_permit:{pid}", "parcel_id": pid,
            "commune": parcels.at[pid, "commune"], "reason": "no_permit",
            "severity": 0.9 - 0.1 * i, "explanation": f"New structure on parcel {pid} <no permit>.",
            "permit_id": None, "record_url": f"https://cadastre.example/parcels/{pid}",
            "captured_on": DAY, "status": "new", "evidence": str(chip),
            "geometry": parcels.geometry[pid],
        })  # fmt: skip
    work = work_list(gpd.GeoDataFrame(rows, crs=CRS), _parcels())
    lists = write_work_lists(work, _parcels(), folder / "work_lists")
    return work, {commune: wl.map_png for commune, wl in lists.items()}


def _settings(**values: object) -> NotifySettings:
    return NotifySettings(**({"retries": 2, "backoff_s": 0.0, "timeout_s": 5.0} | values))


def _mail(port: int, **values: object) -> NotifySettings:
    return _settings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        sender="raqib@berkane.example",
        recipients={"Berkane": ["inspecteur.berkane@example.ma"]},
        default_recipients=["urbanisme@example.ma"],
        **values,
    )


def _filenames(message: EmailMessage) -> set[str]:
    return {part.get_filename() for part in message.walk() if part.get_filename()}


def test_each_commune_is_mailed_its_flags_with_links_and_attachments(
    smtp_server: SmtpServer, tmp_path: Path
) -> None:
    work, maps = _work(tmp_path)

    deliveries = send_notifications(work, maps, _mail(smtp_server.port), tmp_path / "n.sqlite")

    assert [(d.commune, d.sent) for d in deliveries] == [("Berkane", True), ("Saïdia", True)]
    mails = {tuple(to): message for to, message in smtp_server.inbox.messages}
    assert set(mails) == {("inspecteur.berkane@example.ma",), ("urbanisme@example.ma",)}
    berkane = mails["inspecteur.berkane@example.ma",]
    assert berkane["Subject"] == "Raqib: 2 flagged parcel(s) to inspect in Berkane"
    html = berkane.get_body(("html",)).get_content()
    for pid in ("B-1", "B-2"):
        assert f'href="https://cadastre.example/parcels/{pid}"' in html
        assert f"New structure on parcel {pid} &lt;no permit&gt;." in html
    assert "S-1" not in html
    assert _filenames(berkane) == {
        "B-1_no_permit.png", "B-2_no_permit.png", "Berkane.png", "Berkane.csv",
    }  # fmt: skip
    cids = {f"cid:{part['Content-ID'].strip('<>')}" for part in berkane.walk()
            if part["Content-ID"]}  # fmt: skip
    assert len(cids) == 3 and all(cid in html for cid in cids)
    sheet = next(p for p in berkane.walk() if p.get_filename() == "Berkane.csv")
    text = sheet.get_payload(decode=True).decode("utf-8-sig")
    assert text.splitlines()[0].startswith("rank,flag_id,status,note")
    assert "2026-07-10:no_permit:B-1" in text and "B-1_no_permit.png" in text
    saidia = mails["urbanisme@example.ma",]
    assert "Saïdia" in saidia["Subject"] and _filenames(saidia) >= {"S-1_no_permit.png"}


def test_a_rerun_sends_nothing_and_a_new_flag_alone(
    smtp_server: SmtpServer, tmp_path: Path
) -> None:
    settings, ledger = _mail(smtp_server.port), tmp_path / "notifications.sqlite"
    work, maps = _work(tmp_path, ("B-1", "S-1"))
    send_notifications(work, maps, settings, ledger)
    assert len(smtp_server.inbox.messages) == 2

    assert send_notifications(work, maps, settings, ledger) == ()
    assert len(smtp_server.inbox.messages) == 2

    work, maps = _work(tmp_path, ("B-1", "B-2", "S-1"))
    (delivery,) = send_notifications(work, maps, settings, ledger)
    assert delivery.flag_ids == ("2026-07-10:no_permit:B-2",)
    _, message = smtp_server.inbox.messages[-1]
    html = message.get_body(("html",)).get_content()
    assert "B-2" in html and "parcels/B-1" not in html


def test_a_server_down_is_reported_not_recorded_and_sent_next_time(tmp_path: Path) -> None:
    work, maps = _work(tmp_path)
    port, ledger = _free_port(), tmp_path / "notifications.sqlite"

    deliveries = send_notifications(work, maps, _mail(port), ledger)

    assert [d.sent for d in deliveries] == [False, False]
    assert "after 3 attempt(s)" in deliveries[0].error and "refused" in deliveries[0].error
    assert sent_flag_ids(ledger, EMAIL) == set()

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        deliveries = send_notifications(work, maps, _mail(port), ledger)
    finally:
        controller.stop()
    assert [d.sent for d in deliveries] == [True, True] and len(inbox.messages) == 2
    assert sent_flag_ids(ledger, EMAIL) == set(work["flag_id"])


def test_a_temporary_smtp_refusal_is_retried(smtp_server: SmtpServer, tmp_path: Path) -> None:
    smtp_server.inbox.refuse = 1
    work, maps = _work(tmp_path, ("S-1",))
    (delivery,) = send_notifications(work, maps, _mail(smtp_server.port), tmp_path / "n.sqlite")
    assert delivery.sent and len(smtp_server.inbox.messages) == 1


def test_a_commune_without_recipients_is_reported_and_kept_for_later(
    smtp_server: SmtpServer, tmp_path: Path
) -> None:
    work, maps = _work(tmp_path)
    settings = _mail(smtp_server.port).model_copy(update={"default_recipients": []})

    deliveries = send_notifications(work, maps, settings, tmp_path / "n.sqlite")

    saidia = next(d for d in deliveries if d.commune == "Saïdia")
    assert not saidia.sent and "notify.recipients.'Saïdia'" in saidia.error
    assert sent_flag_ids(tmp_path / "n.sqlite", EMAIL) == {
        "2026-07-10:no_permit:B-1", "2026-07-10:no_permit:B-2",
    }  # fmt: skip


def test_nothing_configured_sends_nothing(tmp_path: Path) -> None:
    work, maps = _work(tmp_path)
    assert send_notifications(work, maps, NotifySettings(), tmp_path / "n.sqlite") == ()
    assert not (tmp_path / "n.sqlite").exists()


def test_the_webhook_receives_the_new_flags_as_json_once(webhook: Webhook, tmp_path: Path) -> None:
    settings, ledger = _settings(webhook_url=webhook.url), tmp_path / "n.sqlite"
    work, maps = _work(tmp_path)
    webhook.statuses = [503]  # retried

    (delivery,) = send_notifications(work, maps, settings, ledger)
    assert delivery.sent and len(webhook.received) == 1
    (document,) = webhook.received
    assert document["count"] == 3
    first = document["flags"][0]
    assert first["flag_id"] == "2026-07-10:no_permit:B-1" and first["commune"] == "Berkane"
    assert first["rank"] == 1 and first["severity"] == pytest.approx(0.9)
    assert first["record_url"] == "https://cadastre.example/parcels/B-1"
    assert first["evidence"] == "B-1_no_permit.png" and first["captured_on"] == "2026-07-10"
    assert -2.5 < first["lon"] < -1.5 and 34 < first["lat"] < 35  # Berkane, in WGS 84

    assert send_notifications(work, maps, settings, ledger) == ()
    assert len(webhook.received) == 1


def test_a_refused_webhook_is_not_retried_and_a_dead_one_waits(
    webhook: Webhook, tmp_path: Path
) -> None:
    work, maps = _work(tmp_path)
    ledger = tmp_path / "n.sqlite"
    webhook.statuses = [400, 200]

    (refused,) = send_notifications(work, maps, _settings(webhook_url=webhook.url), ledger)
    assert not refused.sent and refused.error.startswith("HTTP 400")
    assert webhook.statuses == [200]  # asked once

    dead = f"http://127.0.0.1:{_free_port()}/hook"
    (down,) = send_notifications(work, maps, _settings(webhook_url=dead), ledger)
    assert not down.sent and sent_flag_ids(ledger, WEBHOOK) == set()

    (later,) = send_notifications(work, maps, _settings(webhook_url=webhook.url), ledger)
    assert later.sent and len(webhook.received) == 1


def test_a_ledger_that_is_not_sqlite_is_named(smtp_server: SmtpServer, tmp_path: Path) -> None:
    ledger = tmp_path / "notifications.sqlite"
    ledger.write_text("not a database, not at all" * 100)
    work, maps = _work(tmp_path)
    with pytest.raises(InputError, match="notifications.sqlite: not a notification ledger"):
        send_notifications(work, maps, _mail(smtp_server.port), ledger)


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_starttls_and_login_with_the_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret")

    inbox, port = Inbox(), _free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=context,
        require_starttls=True, authenticator=authenticator, auth_required=True,
    )  # fmt: skip
    controller.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test certificate
    work, maps = _work(tmp_path, ("S-1",))
    settings = _mail(port, smtp_starttls=True, smtp_user="raqib", smtp_password_env="TEST_PW")
    try:
        (no_password,) = send_notifications(work, maps, settings, tmp_path / "n.sqlite")
        monkeypatch.setenv("TEST_PW", "s3cret")
        (sent,) = send_notifications(work, maps, settings, tmp_path / "n.sqlite")
    finally:
        controller.stop()
    assert not no_password.sent and "TEST_PW" in no_password.error
    assert sent.sent and logins == [(b"raqib", b"s3cret")] and len(inbox.messages) == 1
