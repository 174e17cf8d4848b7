"""Permits and projects from an HTTP JSON API: a real server on loopback, pages, failures."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.errors import InputError
from gis.record_api import HttpOptions
from gis.records import RecordSource, load_permits, load_projects

FAST = HttpOptions(timeout_s=2.0, retries=3, backoff_s=0.01)
FIELDS = {
    "permit_id": "numero",
    "parcel_id": "parcelle.reference",
    "status": "etat",
    "issued": "date_delivrance",
    "expires": "date_expiration",
    "permitted_footprint_m2": "surface_m2",
}


def _permit(number: str, parcel: str = "BRK-1", status: str = "مرخص") -> dict:
    return {
        "numero": number,
        "parcelle": {"reference": parcel, "commune": "بركان"},
        "etat": status,
        "date_delivrance": "15/01/2024",
        "date_expiration": "15/01/2026",
        "surface_m2": 180.5,
    }


class Api:
    """Routes of a loopback server: path -> answers (status, body, content type), served in
    order, the last one repeated. ``hits`` counts requests per path."""

    def __init__(self) -> None:
        self.routes: dict[str, list[tuple[int, bytes, str, dict[str, str]]]] = {}
        self.hits: dict[str, int] = {}
        self.delay_s = 0.0
        self.url = ""

    def answer(self, path: str, *answers: object, status: int = 200, **headers: str) -> None:
        self.routes[path] = [
            (status, json.dumps(a, ensure_ascii=False).encode(), "application/json", headers)
            for a in answers
        ]

    def fail(self, path: str, status: int, times: int, then: object = None, **headers) -> None:
        failures = [(status, b"busy", "text/plain", headers)] * times
        done = [(200, json.dumps(then).encode(), "application/json", {})] if then else []
        self.routes[path] = failures + done


def _handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            hit = api.hits[self.path] = api.hits.get(self.path, 0) + 1
            time.sleep(api.delay_s)
            answers = api.routes.get(self.path, [(404, b"no such page", "text/plain", {})])
            status, body, content_type, headers = answers[min(hit, len(answers)) - 1]
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def api() -> Iterator[Api]:
    routes = Api()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(routes))
    routes.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield routes
    server.shutdown()
    server.server_close()


def _source(url: str, **kwargs) -> RecordSource:
    options = {"records_key": "data.items", "next_key": "links.next", "http": FAST, **kwargs}
    return RecordSource(
        url,
        fields=FIELDS,
        date_formats=("%d/%m/%Y",),
        status_values={"مرخص": "approved"},
        **options,
    )


def test_pages_are_followed_by_their_next_links_and_arabic_text_survives(api):
    api.answer(
        "/permits?page=1",
        {"data": {"items": [_permit("P-1", "بركان-12")]}, "links": {"next": "/permits?page=2"}},
    )
    api.answer(
        "/permits?page=2",
        {"data": {"items": [_permit("P-2"), _permit("P-3")]}, "links": {"next": None}},
    )

    result = load_permits(_source(api.url + "/permits?page=1"))

    assert result.problems == ()
    assert result.valid["permit_id"].tolist() == ["P-1", "P-2", "P-3"]
    first = result.valid.iloc[0]
    assert (first["parcel_id"], first["status"]) == ("بركان-12", "approved")
    assert (first["issued"], first["expires"]) == (date(2024, 1, 15), date(2026, 1, 15))
    assert first["permitted_footprint_m2"] == 180.5
    assert result.valid["line"].tolist() == [1, 1, 2]  # position in its page


def test_bad_records_name_their_page_position_and_field(api):
    page1, page2 = api.url + "/p?page=1", api.url + "/p?page=2"
    bad_date = {**_permit("P-3"), "date_delivrance": "2024-01-15"}
    api.answer("/p?page=1", {"data": {"items": [_permit("P-1")]}, "links": {"next": page2}})
    api.answer(
        "/p?page=2",
        {"data": {"items": [_permit(""), _permit("P-1"), bad_date, _permit("P-4", "BRK-404")]}},
    )

    result = load_permits(_source(page1), parcel_ids=["BRK-1"])

    assert result.valid["permit_id"].tolist() == ["P-1"]
    assert [(p.source, p.line, p.field, p.problem) for p in result.problems] == [
        (page2, 1, "numero", "missing"),
        (page2, 2, "numero", f"duplicate of {page1} line 1"),
        (page2, 3, "date_delivrance", "'2024-01-15' is not a date written %d/%m/%Y"),
        (page2, 4, "parcelle.reference", "unknown parcel 'BRK-404': not in the cadastre given"),
    ]


def test_a_server_that_fails_twice_with_503_is_retried_until_it_answers(api):
    api.fail("/permits", 503, times=2, then={"data": {"items": [_permit("P-1")]}})

    result = load_permits(_source(api.url + "/permits"))

    assert result.valid["permit_id"].tolist() == ["P-1"]
    assert api.hits["/permits"] == 3


def test_429_is_retried_after_the_delay_the_server_asks(api):
    api.fail("/permits", 429, times=1, then=[_permit("P-1")], Retry_After="0")
    result = load_permits(_source(api.url + "/permits", records_key=None))
    assert result.valid["permit_id"].tolist() == ["P-1"]
    assert api.hits["/permits"] == 2


def test_a_server_that_keeps_failing_is_an_input_error_after_the_retries(api):
    api.fail("/permits", 503, times=10)
    http = HttpOptions(timeout_s=2.0, retries=2, backoff_s=0.01)
    with pytest.raises(InputError, match=r"HTTP 503 .* after 3 attempt") as error:
        load_permits(_source(api.url + "/permits", http=http))
    assert error.value.source == api.url + "/permits"
    assert api.hits["/permits"] == 3


def test_404_is_an_input_error_naming_the_url_and_not_retried(api):
    with pytest.raises(InputError, match="HTTP 404 .*check the address") as error:
        load_permits(_source(api.url + "/permis"))
    assert error.value.source == api.url + "/permis"
    assert api.hits["/permis"] == 1


def test_an_answer_that_is_not_json_is_an_input_error_naming_the_url(api):
    api.routes["/permits"] = [(200, b"<html>Maintenance</html>", "text/html", {})]
    with pytest.raises(InputError, match=r"not JSON \(Content-Type text/html; starts '<html>"):
        load_permits(_source(api.url + "/permits"))


def test_an_object_answer_without_the_records_key_lists_its_keys(api):
    api.answer("/permits", {"total": 1, "resultats": [_permit("P-1")]})
    with pytest.raises(InputError, match="keys total, resultats; set records_key"):
        load_permits(_source(api.url + "/permits", records_key=None))


def test_pagination_that_loops_is_refused_rather_than_truncated(api):
    api.answer("/a", {"data": {"items": [_permit("P-1")]}, "links": {"next": "/b"}})
    api.answer("/b", {"data": {"items": [_permit("P-2")]}, "links": {"next": "/a"}})
    with pytest.raises(InputError, match=r"pagination loops: .*/a was already read"):
        load_permits(_source(api.url + "/a"))


def test_pages_beyond_the_cap_are_refused(api):
    for page in range(10):
        items, following = [_permit(f"P-{page}")], f"{page + 1}"  # relative: /p/1, /p/2, ...
        api.answer(f"/p/{page}", {"data": {"items": items}, "links": {"next": following}})
    http = HttpOptions(timeout_s=2.0, backoff_s=0.01, max_pages=4)
    with pytest.raises(InputError, match="more than 4 pages"):
        load_permits(_source(api.url + "/p/0", http=http))
    assert sum(api.hits.values()) == 4


def test_a_server_too_slow_times_out_and_is_reported_unreachable(api):
    api.answer("/permits", [_permit("P-1")])
    api.delay_s = 0.5
    http = HttpOptions(timeout_s=0.1, retries=1, backoff_s=0.01)
    with pytest.raises(InputError, match=r"unreachable after 2 attempt\(s\)"):
        load_permits(_source(api.url + "/permits", records_key=None, http=http))


def test_a_closed_port_is_reported_unreachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    http = HttpOptions(timeout_s=1.0, retries=1, backoff_s=0.01)
    with pytest.raises(InputError, match=r"unreachable after 2 attempt\(s\)"):
        load_permits(_source(f"http://127.0.0.1:{port}/permits", http=http))


def test_projects_come_from_a_geojson_feature_collection_in_lon_lat(api):
    square = [[-2.30, 34.92], [-2.29, 34.92], [-2.29, 34.93], [-2.30, 34.93], [-2.30, 34.92]]
    feature = {
        "type": "Feature",
        "properties": {"ref": "PR-1", "intitule": "مدرسة بركان", "debut": "01/03/2024",
                       "fin_prevue": "30/09/2025", "maitre_ouvrage": "Commune"},
        "geometry": {"type": "Polygon", "coordinates": [square]},
    }  # fmt: skip
    api.answer("/projects", {"type": "FeatureCollection", "features": [feature]})
    source = RecordSource(
        api.url + "/projects",
        fields={"project_id": "ref", "name": "intitule", "start": "debut",
                "planned_end": "fin_prevue"},
        date_formats=("%d/%m/%Y",),
        http=FAST,
    )  # fmt: skip

    result = load_projects(source, crs="EPSG:32630")

    assert result.problems == ()
    row = result.valid.iloc[0]
    assert (row["project_id"], row["name"], row["maitre_ouvrage"]) == (
        "PR-1", "مدرسة بركان", "Commune"
    )  # fmt: skip
    assert row["planned_end"] == date(2025, 9, 30)
    assert result.valid.crs.to_epsg() == 32630
    assert 800_000 < row.geometry.area < 1_100_000  # ~0.01° x 0.01° at 35° N, in m²
