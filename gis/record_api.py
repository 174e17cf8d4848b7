"""JSON pages over HTTP(S) (a permit system like Rokhas): timeout, retries, pagination.

Pages are followed to the end: a partial list of permits would turn every missing permit
into a false "no permit" flag, so a loop, too many pages or a page that keeps failing is an
:class:`InputError` naming the URL, never a silent truncation.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import TypeVar
from urllib.error import HTTPError, URLError
from urllib.parse import urljoin
from urllib.request import Request, urlopen

from core.errors import InputError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0
T = TypeVar("T")


@dataclass(frozen=True)
class HttpOptions:
    """How patiently to ask: per-request timeout, retries with exponential backoff."""

    timeout_s: float = 20.0
    retries: int = 3
    backoff_s: float = 1.0
    max_pages: int = 1000
    headers: Mapping[str, str] = field(default_factory=dict)


def fetch_pages(
    url: str, parse_page: Callable[[str, object], tuple[list[T], str | None]], http: HttpOptions
) -> list[T]:
    """The items of every page from ``url`` on; ``parse_page(page url, JSON document)``
    gives a page's items and its next link (relative links are resolved), None at the end."""
    items: list[T] = []
    seen: set[str] = set()
    page: str | None = url
    while page is not None:
        if page in seen:
            raise InputError(url, f"pagination loops: {page} was already read")
        if len(seen) == http.max_pages:
            raise InputError(
                url, f"more than {http.max_pages} pages; raise max_pages if this is expected"
            )
        seen.add(page)
        found, following = parse_page(page, get_json(page, http))
        items.extend(found)
        page = urljoin(page, following) if following else None
    return items


def get_json(url: str, http: HttpOptions) -> object:
    """The JSON document at ``url``; retries connection errors, 429 and 5xx."""
    request = Request(url, headers={"Accept": "application/json", **http.headers})
    for attempt in range(http.retries + 1):
        last = attempt == http.retries
        try:
            with urlopen(request, timeout=http.timeout_s) as response:
                body, content_type = response.read(), response.headers.get_content_type()
            break
        except HTTPError as exc:
            if exc.code not in RETRY_STATUSES or last:
                raise InputError(url, _http_problem(exc, attempt)) from exc
            _wait(url, f"HTTP {exc.code}", _retry_after_s(exc.headers) or _backoff(http, attempt))
        except (URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            if last:
                raise InputError(
                    url, f"unreachable after {attempt + 1} attempt(s): {reason}"
                ) from exc
            _wait(url, str(reason), _backoff(http, attempt))
    try:
        return json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        start = body[:60].decode("utf-8", "replace")
        raise InputError(
            url, f"answer is not JSON (Content-Type {content_type}; starts {start!r})"
        ) from exc


def _http_problem(exc: HTTPError, attempt: int) -> str:
    if exc.code in RETRY_STATUSES:
        return f"HTTP {exc.code} {exc.reason} after {attempt + 1} attempt(s); try again later"
    hint = {
        401: "the API needs credentials (an Authorization header)",
        403: "the credentials given may not read these records",
        404: "check the address of the records API",
    }.get(exc.code, "the API refused the request")
    return f"HTTP {exc.code} {exc.reason}: {hint}"


def _backoff(http: HttpOptions, attempt: int) -> float:
    return http.backoff_s * 2**attempt


def _retry_after_s(headers: Message | None) -> float | None:
    value = headers.get("Retry-After") if headers else None
    try:
        return min(float(value), MAX_RETRY_AFTER_S) if value else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


def _wait(url: str, why: str, delay_s: float) -> None:
    log.warning("%s: %s; retrying in %.1f s", url, why, delay_s)
    time.sleep(delay_s)
