"""Cliniko API client and the Dagster resource that hands one out per tenant.

The key is held in memory only: it is sent as Basic auth to the Cliniko host and nowhere else
(redirects are never followed with it), and it never appears in a repr, a log line or an error.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import partial
from urllib.parse import urlencode, urljoin

import dagster as dg
import requests
from pydantic import Field, PrivateAttr

from splose_resources.deployment import check_run, setting
from splose_resources.http import (
    RetriesExhausted,
    RetryPolicy,
    Secret,
    TransientError,
    classify_response,
    json_body,
    send,
    session,
)
from splose_resources.listing import InvalidJSON, MalformedPage, decode_page
from splose_resources.ratelimit import Stopped, WindowLimiter, pause
from splose_resources.shared_limits import Budget, shared_state_field
from splose_resources.storage import Opener

DEFAULT_SHARD = "au1"
SHARD_PATTERN = re.compile(r"^[a-z]{2}\d{1,2}\Z")
PRODUCTION_URL = "https://api.{shard}.cliniko.com/v1"


def shard_from_key(api_key: str) -> str:
    """The shard a key belongs to: the text after its last '-', when it looks like one; else au1."""
    _, sep, suffix = api_key.strip().rpartition("-")
    suffix = suffix.lower()  # Cliniko's docs match the shard case-insensitively (/\w{2}\d{1,2}/i); hosts are lower case
    return suffix if sep and SHARD_PATTERN.match(suffix) else DEFAULT_SHARD


class ClinikoError(Exception):
    """Base of every error the client raises; messages carry tenant, resource and remedy, no key."""


class ClinikoAuthError(ClinikoError):
    pass


class ClinikoNotFound(ClinikoError):
    pass


class ClinikoRequestError(ClinikoError):
    """Cliniko refused the request; ``status`` is its HTTP status, when it answered one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ClinikoUnavailable(ClinikoError):
    pass


class ClinikoFileUnavailable(ClinikoError):
    """One attachment's bytes cannot be had; ``reason`` is short and stable (it is counted by)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


FILE_MISSING = "file missing on Cliniko's file host (404)"
FILE_REFUSED = "Cliniko's file host refused the file (403)"


@dataclass
class Page:
    """One page of a collection. ``records`` are :class:`~splose_resources.listing.ListedRecord` (a list
    item that is not an object, as it is). ``total_entries`` is Cliniko's count, a hint only: None when
    missing or unusable; it may still be wrong. ``has_next`` is whether the envelope links a next page."""

    records: list
    total_entries: int | None
    has_next: bool
    server_time: str | None


@dataclass
class Download:
    sha256: str
    size: int
    content_type: str | None


class ClinikoClient:
    """Talks to one Cliniko account for one tenant, within that key's request budget."""

    def __init__(
        self,
        *,
        tenant: str,
        api_key: Secret,
        base_url: str,
        user_agent: str,
        limiter: WindowLimiter,
        retry: RetryPolicy,
        timeout: tuple[float, float],
        pool_size: int,
    ) -> None:
        self.tenant = tenant
        self.shard = shard_from_key(api_key.reveal())
        self.base_url = base_url.rstrip("/")
        self._limiter = limiter
        self._retry = retry
        self._timeout = timeout
        self._session = session(pool_size)
        self._session.headers.update(
            {
                "Authorization": "Basic " + base64.b64encode(f"{api_key.reveal()}:".encode()).decode(),
                "Accept": "application/json",
                "User-Agent": user_agent,
            }
        )
        # Redirect targets (signed file URLs) get no credentials at all.
        self._anonymous = session(pool_size)
        self._anonymous.headers.update({"User-Agent": user_agent})
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        # Told of every page and file fetched (the run's progress lines); called from worker threads.
        self.on_page: Callable[[str, list[tuple[str, str]], Page], None] | None = None
        self.on_file: Callable[[str, int], None] | None = None
        self._stopping = threading.Event()

    def stop(self) -> None:
        """The run is stopping (interrupted, cancelled): every request waiting for the budget or for its next
        attempt, on any thread, gives up at once with :class:`ClinikoError`, and no new one is sent."""
        self._stopping.set()

    def close(self) -> None:
        self._session.close()
        self._anonymous.close()

    def requests_made(self, resource: str | None = None) -> int:
        with self._counts_lock:
            return self._counts[resource] if resource else sum(self._counts.values())

    def url(self, path: str, params: list[tuple[str, str]] | None = None) -> str:
        url = f"{self.base_url}/{path.lstrip('/')}"
        return f"{url}?{urlencode(params)}" if params else url

    def get_page(self, path: str, params: list[tuple[str, str]], *, resource: str, list_key: str) -> Page:
        """GET one page of a collection: ``path`` with exactly the query given (the request is never
        rebuilt from the envelope's links, which may not carry the query)."""
        url = self.url(path, params)

        def attempt() -> Page:
            response = self._api_get(url, resource=resource)
            try:
                body = decode_page(response.content, list_key)
            except InvalidJSON:
                raise TransientError("truncated or invalid JSON") from None
            except MalformedPage:
                raise TransientError("malformed collection body") from None
            links = body.envelope.get("links") if isinstance(body.envelope.get("links"), dict) else {}
            return Page(
                records=body.records,
                total_entries=total_entries(body.envelope),
                has_next=bool(links.get("next")),
                server_time=_http_date(response.headers.get("Date")),
            )

        page = self._run(attempt, resource)
        if self.on_page is not None:
            self.on_page(resource, params, page)
        return page

    def get_json(self, path_or_url: str, *, resource: str) -> dict:
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)

        def attempt() -> dict:
            return json_body(self._api_get(url, resource=resource))

        return self._run(attempt, resource)

    def download(self, content_url: str, destination: Opener, *, resource: str, attachment: str) -> Download:
        """Fetch attachment ``attachment``: the API answers a redirect to a signed URL, fetched without auth.

        Bytes stream into the writer ``destination`` opens (a staging writer: what it writes appears only
        when complete), with their sha256 computed on the way.
        """

        refusals = 0

        def attempt() -> Download:
            nonlocal refusals
            response = self._api_get(content_url, resource=resource, expect_redirect=True)
            if response.is_redirect:
                location = urljoin(content_url, response.headers["Location"])
                response.close()
                response = send(self._anonymous, "GET", location, stream=True, timeout=self._timeout)
                classify_response(response)
                status = response.status_code
                if status in (401, 403):
                    response.close()
                    refusals += 1
                    if refusals == 1:  # an expired signature: the next attempt asks Cliniko for a fresh URL
                        raise TransientError("signed URL refused")
                    raise self._file_unavailable(FILE_REFUSED, attachment)
                if status in (404, 410):
                    response.close()
                    raise self._file_unavailable(FILE_MISSING, attachment)
            if response.status_code != 200:
                response.close()
                raise ClinikoRequestError(
                    f"Cliniko answered {response.status_code} for attachment {attachment} of tenant '{self.tenant}'."
                )
            return _stream_to_file(response, destination)

        download = self._run(attempt, resource)
        if self.on_file is not None:
            self.on_file(resource, download.size)
        return download

    def _api_get(self, url: str, *, resource: str, expect_redirect: bool = False) -> requests.Response:
        if self._stopping.is_set():
            raise Stopped
        self._limiter.acquire(self._stopping)
        with self._counts_lock:
            self._counts[resource] += 1
        response = send(self._session, "GET", url, timeout=self._timeout, stream=expect_redirect)
        if response.status_code == 429 and response.headers.get("X-RateLimit-Reset", "").isdigit():
            # The server's own window: align to it, so the next window's budget is spent in the right place.
            self._limiter.observe_reset(float(response.headers["X-RateLimit-Reset"]))
        classify_response(response)
        status = response.status_code
        if status in (401, 403):
            raise ClinikoAuthError(self._auth_message(status, resource))
        if status == 404:
            raise ClinikoNotFound(f"Cliniko has no such record for tenant '{self.tenant}' ({resource}).")
        if response.is_redirect and not expect_redirect:
            # A moved API host: follow it, but never hand the key to a host we did not choose.
            raise ClinikoRequestError(
                f"Cliniko redirected a {resource} request of tenant '{self.tenant}' elsewhere; set "
                f"CLINIKO_API_URL to the account's shard host (key shard: {self.shard})."
            )
        if status >= 400:
            raise ClinikoRequestError(
                f"Cliniko refused a {resource} request of tenant '{self.tenant}' with {status}: "
                f"{_safe_message(response)}",
                status,
            )
        return response

    def _file_unavailable(self, reason: str, attachment_id: str) -> ClinikoFileUnavailable:
        return ClinikoFileUnavailable(
            reason,
            f"Attachment {attachment_id} of tenant '{self.tenant}': {reason}. It is skipped and counted; "
            "the clinic can upload it again in Cliniko, and the next sync brings it across.",
        )

    def _run(self, attempt, resource: str):
        try:
            return self._retry.run(
                attempt,
                what=f"the Cliniko {resource} request of tenant '{self.tenant}'",
                sleep=partial(pause, stop=self._stopping),
            )
        except Stopped:
            raise ClinikoError(f"the run of tenant '{self.tenant}' is stopping: Cliniko is not asked again") from None
        except RetriesExhausted as exc:
            raise ClinikoUnavailable(
                f"Cliniko kept failing while reading {resource} for tenant '{self.tenant}' ({exc}). "
                "Nothing was lost: re-run the tenant's extraction and it resumes where it stopped."
            ) from None

    def _auth_message(self, status: int, resource: str) -> str:
        if status == 401:
            return (
                f"Cliniko rejected the API key of tenant '{self.tenant}' (HTTP 401), for every resource. "
                f"The key is for shard '{self.shard}' ({self.base_url}); it may be "
                "revoked, mistyped, missing its '-<shard>' suffix or for another shard. Ask the clinic for a "
                "new key (Cliniko: My Info > Manage API keys) and submit it again. Not retried."
            )
        return (
            f"Cliniko refused {resource} to the API key of tenant '{self.tenant}' (HTTP 403): the key's user "
            "lacks the permission, or the request was blocked. Ask the clinic for a key of a user with the "
            "Administrator role and submit it again. Not retried."
        )


class ClinikoResource(dg.ConfigurableResource):
    """Hands out a :class:`ClinikoClient` per tenant, sharing the key's budget across processes."""

    api_url: str | None = Field(
        default=None,
        description=f"The Cliniko API, '{{shard}}' standing for the key's shard; CLINIKO_API_URL, else "
        f"{PRODUCTION_URL}. The deployment's setting: a run's config cannot set it.",
    )
    user_agent: str = "Splose Cliniko importer (integrations@splose.com)"
    requests_per_window: int = 200
    window_seconds: float = 60.0
    rate_limit_state_dir: str | None = None
    shared_state_postgres_url: str | None = shared_state_field()
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 40.0
    max_attempts: int = 8
    concurrency: int = 6
    page_size: int = Field(default=100, ge=1, le=100, description="Records per list request (Cliniko allows 1-100).")

    _keys: dict[str, Secret] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        check_run(context)

    def base_url_for(self, shard: str) -> str:
        return (setting("cliniko", self, "api_url") or PRODUCTION_URL).replace("{shard}", shard)

    @contextmanager
    def client(self, tenant: str, api_key: Secret, log: logging.Logger | None = None) -> Iterator[ClinikoClient]:
        """A client for ``tenant``; ``log`` (the run's ``context.log``) receives its retry lines."""
        key = api_key
        limiter = Budget(
            scope="cliniko",
            secret=key.reveal(),
            tenant=tenant,
            limit=self.requests_per_window,
            window_seconds=self.window_seconds,
            shared_url=setting("cliniko", self, "shared_state_postgres_url"),
            state_dir=self.rate_limit_state_dir,
        ).fixed_window()
        client = ClinikoClient(
            tenant=tenant,
            api_key=key,
            base_url=self.base_url_for(shard_from_key(key.reveal())),
            user_agent=self.user_agent,
            limiter=limiter,
            retry=RetryPolicy(max_attempts=self.max_attempts, log=log),
            timeout=(self.connect_timeout_seconds, self.read_timeout_seconds),
            pool_size=self.concurrency + 2,
        )
        try:
            yield client
        finally:
            client.close()


def _stream_to_file(response: requests.Response, destination: Opener) -> Download:
    """Stream into ``destination``, which keeps the bytes only when every one of them arrived."""
    digest = hashlib.sha256()
    size = 0
    expected = _as_int(response.headers.get("Content-Length"))
    try:
        with destination() as out:
            for chunk in response.iter_content(chunk_size=1 << 20):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            if expected is not None and size != expected:
                raise TransientError("download truncated")
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
        raise TransientError("download interrupted") from None
    finally:
        response.close()
    return Download(sha256=digest.hexdigest(), size=size, content_type=response.headers.get("Content-Type"))


def total_entries(body: dict) -> int | None:
    """The count of a list envelope as Cliniko sends it: an integer, sometimes a string of one, sometimes
    under the misspelt key ``total_entires`` (both in Cliniko's own documented examples). None when
    missing, negative or not a whole number."""
    value = next((body[k] for k in ("total_entries", "total_entires") if body.get(k) is not None), None)
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        return None
    count = _as_int(value)
    return count if count is not None and count >= 0 else None


def _as_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _http_date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return None


def _safe_message(response: requests.Response) -> str:
    """Cliniko's own error text for 4xx answers, bounded; these bodies carry no record data."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        errors = body.get("errors")
        return f"{body.get('message', '')} {json.dumps(errors) if errors else ''}".strip()[:300]
    return str(body)[:200]
