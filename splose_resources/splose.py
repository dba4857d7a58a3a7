"""Splose API clients, one class per layer, and the Dagster resource that hands them out.

Two layers, kept apart (``splose-api.md``):

- :class:`SploseV1Client`, the published v1 API, read side only: locations, practitioners, services,
  patients, contacts, appointments and availabilities of one workspace, for the mapping step and for
  verification.
- :class:`SploseImportClient`, this project's import API: the import request queue, the Cliniko key of
  a request, idempotent bulk upserts keyed by external id, removal by external id of what the source
  deleted, the crosswalk, streamed file uploads, undo.

Both speak with the one platform token, acting for a workspace through the ``X-Splose-Workspace``
header. The code location gives it as ``dg.EnvVar("SPLOSE_PLATFORM_TOKEN")`` (read at run time; the UI
shows the variable's name, never the token); the resource keeps it out of its repr, holds it in a
:class:`Secret` while calling, sends it to the configured host only (redirects are never followed), and
it never appears in a log line or an error. Every call goes through the shared retry policy and waits for a slot in
the token's budget, kept across processes by :class:`SlidingWindowLimiter` (Splose counts in a sliding
window, so no 60 s span anywhere gets more than the limit): the import API's budget
(600/min by default) for every call, plus the v1 budget (60/min per key) for v1 calls, since Splose
counts the platform token's v1 calls against its own budget too.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urljoin, urlsplit

import dagster as dg
import orjson
import requests
from pydantic import Field
from requests_toolbelt import MultipartEncoder

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
from splose_resources.ratelimit import RateLimiter, Stopped, pause
from splose_resources.shared_limits import Budget, shared_state_field
from splose_resources.storage import Opener

T = TypeVar("T")

PRODUCTION_URL = "https://api.splose.com/v1"
TOKEN_VARIABLE = "SPLOSE_PLATFORM_TOKEN"
MAX_BATCH = 500
# The most JSON one upsert request carries: 500 long progress notes would otherwise make a body past what
# Splose takes in one request (the sandbox: 32 MB), and the whole batch would be refused.
MAX_BATCH_BYTES = 8 * 1024 * 1024
MAX_FILE_BATCH = 100
MAX_AVAILABILITY_DAYS = 100
MAX_MESSAGE_CHARS = 400
V1_ENTITIES = ("locations", "practitioners", "services", "patients", "contacts", "appointments")
IMPORT_ENTITIES = (
    "services",
    "contacts",
    "clients",
    "appointments",
    "availability",
    "providerNumbers",
    "progressNoteTemplates",
    "progressNotes",
)
CROSSWALK_ENTITIES = (*IMPORT_ENTITIES, "files")


class SploseError(Exception):
    """Base of every error the clients raise; messages name workspace, import and entity, never a token."""


class SploseAuthError(SploseError):
    pass


class SploseNotFound(SploseError):
    pass


class SploseConflict(SploseError):
    pass


class SploseRequestError(SploseError):
    pass


class SploseFileTooLarge(SploseRequestError):
    pass


class SploseUnavailable(SploseError):
    pass


class UpsertedRecord(NamedTuple):
    external_id: str
    id: int
    action: str  # created | updated | unchanged (an upsert); removed (a removal)


class CrosswalkEntry(NamedTuple):
    """What Splose holds for one external id: its Splose id, and the content hash last written with it."""

    id: int
    content_hash: str | None


class RejectedRecord(NamedTuple):
    external_id: str | None
    message: str


@dataclass
class UpsertResult:
    """Everything Splose answered for one entity's records, over every batch."""

    entity: str
    records: list[UpsertedRecord] = field(default_factory=list)
    errors: list[RejectedRecord] = field(default_factory=list)
    batches: int = 0

    @property
    def counts(self) -> dict[str, int]:
        """Records by action (``created``, ``updated``, ``unchanged``), plus ``rejected``."""
        counts = Counter(record.action for record in self.records)
        if self.errors:
            counts["rejected"] = len(self.errors)
        return dict(counts)

    @property
    def ids(self) -> dict[str, int]:
        return {record.external_id: record.id for record in self.records}


@dataclass
class RemoveResult:
    """Everything Splose answered for one entity's removals, over every batch: what it removed, the external
    ids it held no record for (already gone), and what it kept (still referred to, or sent twice)."""

    entity: str
    removed: list[UpsertedRecord] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    errors: list[RejectedRecord] = field(default_factory=list)
    batches: int = 0


@dataclass(frozen=True)
class FileUpload:
    """One file of a batch upload: how to read its bytes (a staging reader), and the fields of a single
    upload."""

    external_id: str
    client_external_id: str
    content: Opener
    filename: str | None = None
    content_type: str | None = None
    description: str | None = None
    created_at: str | None = None
    sha256: str | None = None
    content_hash: str | None = None

    def manifest_entry(self, part: str) -> dict[str, str]:
        fields = {
            "externalId": self.external_id,
            "clientExternalId": self.client_external_id,
            "filename": self.filename or self.external_id,
            "contentType": self.content_type,
            "description": self.description,
            "createdAt": self.created_at,
            "sha256": self.sha256,
            "contentHash": self.content_hash,
            "part": part,
        }
        return {key: value for key, value in fields.items() if value is not None}


@dataclass
class FileBatchResult:
    """Splose's answer to a file batch: ``{id, action, size, sha256}`` or a message, per external id."""

    answers: dict[str, dict]
    errors: dict[str, str]


@dataclass(frozen=True)
class _Call:
    """One logical API call: the words used for it in errors, and the budgets it spends."""

    description: str
    limiters: tuple[RateLimiter, ...]


class _Transport:
    """The HTTP side both layers share: one session, the retry policy, errors that say what to do."""

    def __init__(
        self,
        *,
        layer: str,
        token: Secret,
        base_url: str,
        workspace_id: str | None,
        user_agent: str,
        retry: RetryPolicy,
        timeout: tuple[float, float],
    ) -> None:
        self.layer = layer
        self.base_url = base_url.rstrip("/")
        self.workspace_id = workspace_id
        self._origin = urlsplit(self.base_url)[:2]
        self._retry = retry
        self._timeout = timeout
        self._session = session(pool_size=4)
        self._stopping = threading.Event()
        self._session.headers.update(
            {"Authorization": f"Bearer {token.reveal()}", "Accept": "application/json", "User-Agent": user_agent}
        )
        if workspace_id is not None:
            self._session.headers["X-Splose-Workspace"] = workspace_id

    def close(self) -> None:
        self._session.close()

    def stop(self) -> None:
        """The step is interrupted: every call waiting for a budget or a retry's backoff, on any thread, gives up
        at once with :class:`SploseError`, and no new one is sent."""
        self._stopping.set()

    def where(self) -> str:
        return f"workspace '{self.workspace_id}'" if self.workspace_id else "the platform (no workspace)"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def json(self, call: _Call, method: str, url: str, **kwargs: Any) -> dict:
        """One JSON call, retried; ``url`` is absolute (from :meth:`url` or a ``links`` URL)."""
        self._check_host(url, call)
        return self.run(call, lambda: self.attempt(call, method, url, **kwargs))

    def pages(self, call: _Call, path: str, params: dict[str, str]) -> Iterator[dict]:
        """Every record of a ``{data, links}`` collection, following ``links.nextPage``."""
        url: str | None = self.url(path)
        kwargs: dict[str, Any] = {"params": params}
        seen: set[str] = set()
        while url:
            body = self.json(call, "GET", url, **kwargs)
            data = body.get("data")
            if not isinstance(data, list):
                raise SploseRequestError(f"Splose answered a page without a data list while {call.description}.")
            yield from data
            link = (body.get("links") or {}).get("nextPage") or None
            url = self._next_page(link, call, seen) if link is not None else None
            kwargs = {}  # the next page's URL carries every parameter

    def _next_page(self, link: object, call: _Call, seen: set[str]) -> str:
        """The absolute URL of a ``nextPage`` link. Splose's spec shows links as a path and query alone
        (``/v1/${object_type}?id_gt=200``), resolved here against the API's address; an absolute link is
        taken as it is (and :meth:`json` refuses one to another host). A link already followed in this
        listing would page round in a circle, so it stops the listing instead."""
        if not isinstance(link, str):
            raise SploseRequestError(f"Splose answered a page whose nextPage is not a link while {call.description}.")
        url = urljoin(f"{self.base_url}/", link)
        if url in seen:
            raise SploseRequestError(
                f"Splose's {self.layer} pointed back to a page already read while {call.description}, so the "
                "listing cannot be completed. Re-run; if it recurs, report it to Splose."
            )
        seen.add(url)
        return url

    def attempt(self, call: _Call, method: str, url: str, **kwargs: Any) -> dict:
        if self._stopping.is_set():
            raise Stopped
        for limiter in call.limiters:
            limiter.acquire(self._stopping)
        response = send(self._session, method, url, timeout=self._timeout, **kwargs)
        classify_response(response)
        if response.status_code >= 300:
            raise self._error(response, call)
        body = json_body(response)
        if not isinstance(body, dict):
            raise TransientError("malformed JSON body")
        return body

    def run(self, call: _Call, attempt: Callable[[], T]) -> T:
        try:
            return self._retry.run(attempt, what=call.description, sleep=partial(pause, stop=self._stopping))
        except Stopped:
            raise SploseError(f"the step stopped while {call.description}: Splose is not asked again") from None
        except RetriesExhausted as exc:
            raise SploseUnavailable(
                f"Splose's {self.layer} kept failing while {call.description} ({exc}). Writes are idempotent "
                "(keyed by external id): once Splose answers again, re-run the tenant's import and it carries on "
                "without duplicates."
            ) from None

    def _check_host(self, url: str, call: _Call) -> None:
        if urlsplit(url)[:2] != self._origin:
            raise SploseRequestError(
                f"Splose pointed the {self.layer} elsewhere while {call.description}; the platform token is only "
                f"sent to {self._origin[0]}://{self._origin[1]}. Check SPLOSE_API_URL."
            )

    def _error(self, response: requests.Response, call: _Call) -> SploseError:
        status = response.status_code
        said = _splose_message(response)
        if status == 401:
            return SploseAuthError(
                f"Splose rejected the platform token (HTTP 401) while {call.description}. "
                f"Check that {TOKEN_VARIABLE} holds the current import-scoped platform token for {self.base_url} "
                "(it may be revoked or mistyped) and re-run. Not retried."
            )
        if status == 403:
            return SploseAuthError(
                f"Splose refused the token in {TOKEN_VARIABLE} (HTTP 403) while {call.description}: it is not a "
                "platform token with the import scope (a workspace key cannot call the import API). Set it to the "
                "platform token and re-run. Not retried."
            )
        if status == 404:
            return SploseNotFound(
                f"Splose found nothing (HTTP 404) while {call.description}: {said}. Check the id, and that it "
                "belongs to this workspace."
            )
        if status == 409:
            return SploseConflict(f"Splose refused (HTTP 409) while {call.description}: {said}. Nothing changed.")
        if status == 413:
            return SploseFileTooLarge(
                f"Splose refused the size (HTTP 413) while {call.description}: {said}. Not retried: count the "
                "file as rejected, or ask Splose to raise the per-file cap."
            )
        if response.is_redirect:
            return SploseRequestError(
                f"Splose redirected the {self.layer} while {call.description}; redirects are not followed with "
                "the platform token. Set SPLOSE_API_URL to the API host itself."
            )
        return SploseRequestError(
            f"Splose refused (HTTP {status}) while {call.description}: {said}. Not retried: fix the fields named "
            "above and re-run."
        )


def encoded_batches(records: Iterable[dict], size: int, max_bytes: int) -> Iterator[list[tuple[dict, bytes]]]:
    """``records`` with their JSON text, in batches of at most ``size`` records and, but for a record bigger
    than that alone, ``max_bytes`` of text. Each record is encoded once, by orjson; one orjson cannot encode
    (an integer past 64 bits, a lone surrogate) is encoded as the standard library would, for Splose to
    judge and report on its own."""
    batch: list[tuple[dict, bytes]] = []
    total = 0
    for record in records:
        try:
            text = orjson.dumps(record)
        except (orjson.JSONEncodeError, TypeError):
            text = json.dumps(record).encode()
        if batch and (len(batch) >= size or total + len(text) > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append((record, text))
        total += len(text) + 1
    if batch:
        yield batch


class SploseV1Client:
    """The public v1 API of one workspace, read side: every page of a list, one record, availabilities."""

    def __init__(self, transport: _Transport, limiters: tuple[RateLimiter, ...]) -> None:
        self._http = transport
        self._limiters = limiters
        self.workspace_id = transport.workspace_id

    def close(self) -> None:
        self._http.close()

    def locations(self, include_archived: bool = True, **filters: str | int) -> Iterator[dict]:
        return self._list("locations", include_archived, filters)

    def practitioners(self, include_archived: bool = True, **filters: str | int) -> Iterator[dict]:
        return self._list("practitioners", include_archived, filters)

    def services(self, include_archived: bool = True, **filters: str | int) -> Iterator[dict]:
        return self._list("services", include_archived, filters)

    def patients(self, include_archived: bool = True, **filters: str | int) -> Iterator[dict]:
        """Filters as v1 names them: ``update_gt``, ``email``, ``lastname``, ..."""
        return self._list("patients", include_archived, filters)

    def contacts(self, include_archived: bool = True, **filters: str | int) -> Iterator[dict]:
        return self._list("contacts", include_archived, filters)

    def appointments(self, include_archived: bool = True, **filters: str | int) -> Iterator[dict]:
        """Filters as v1 names them: ``start_gt``, ``practitionerId``, ``patientId``, ``update_gt``, ..."""
        return self._list("appointments", include_archived, filters)

    def get(self, entity: str, record_id: int) -> dict:
        if entity not in V1_ENTITIES:
            raise ValueError(f"unknown v1 entity {entity!r}; expected one of {list(V1_ENTITIES)}")
        call = self._call(f"reading {entity} {record_id}")
        return self._http.json(call, "GET", self._http.url(f"{entity}/{int(record_id)}"))

    def availabilities(
        self, practitioner_id: int, start_date: date, end_date: date, location_id: int | None = None
    ) -> list[dict]:
        """Dated availability rows from ``start_date`` to ``end_date`` inclusive, in spans v1 accepts."""
        if end_date < start_date:
            raise ValueError(f"end_date {end_date} is before start_date {start_date}")
        rows: list[dict] = []
        span_start = start_date
        while span_start <= end_date:
            span_end = min(end_date, span_start + timedelta(days=MAX_AVAILABILITY_DAYS))
            params: dict[str, str] = {"startDate": span_start.isoformat(), "endDate": span_end.isoformat()}
            if location_id is not None:
                params["locationId"] = str(location_id)
            call = self._call(f"reading availabilities of practitioner {practitioner_id} from {span_start}")
            body = self._http.json(call, "GET", self._http.url(f"availabilities/{int(practitioner_id)}"), params=params)
            rows.extend(body.get("data") or [])
            span_start = span_end + timedelta(days=1)
        return rows

    def _list(self, entity: str, include_archived: bool, filters: dict[str, str | int]) -> Iterator[dict]:
        params = {name: str(value) for name, value in filters.items()}
        params["include_archived"] = "true" if include_archived else "false"
        return self._http.pages(self._call(f"listing {entity}"), entity, params)

    def _call(self, action: str) -> _Call:
        return _Call(f"{action} of {self._http.where()} (v1 API)", self._limiters)


class SploseImportClient:
    """The import API: import requests, credentials, bulk upserts, crosswalk, files and undo."""

    def __init__(self, transport: _Transport, limiter: RateLimiter) -> None:
        self._http = transport
        self._limiters = (limiter,)
        self.workspace_id = transport.workspace_id

    def close(self) -> None:
        self._http.close()

    def stop(self) -> None:
        """See :meth:`_Transport.stop`."""
        self._http.stop()

    # -- import requests --------------------------------------------------------------------------

    def create_import(
        self, source: str, cliniko_key: Secret, mapping: dict[str, dict[str, int | str]], include: list[str]
    ) -> dict:
        """Submit an import request for this client's workspace (what the dashboard does; demo and tests).

        Retried like every call, so a connection dropped after Splose accepted it can leave a second request.
        """
        body = {"source": source, "clinikoApiKey": cliniko_key.reveal(), "mapping": mapping, "include": include}
        call = self._call(f"submitting a {source} import request")
        return self._http.json(call, "POST", self._http.url("imports"), json=body)

    def list_imports(self, status: str | None = None) -> Iterator[dict]:
        params = {"status": status} if status else {}
        return self._http.pages(self._call(f"listing {status or 'all'} import requests"), "imports", params)

    def get_import(self, import_id: int) -> dict:
        return self._http.json(self._call("reading", import_id), "GET", self._import_url(import_id))

    def update_import(
        self,
        import_id: int,
        status: str | None = None,
        counts: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> dict:
        """Set the given fields (those left ``None`` are not sent).

        A 409 for a ``status`` the import already has is not a refusal of this update: the answer to an
        earlier PATCH was lost and the retry repeats it, or Splose refuses a status it already holds as a
        move. The rest of the update is then sent without the status."""
        body = {
            name: value
            for name, value in (("status", status), ("counts", counts), ("message", message))
            if value is not None
        }
        call = self._call(f"updating ({', '.join(sorted(body)) or 'nothing'})", import_id)
        try:
            return self._http.json(call, "PATCH", self._import_url(import_id), json=body)
        except SploseConflict:
            if status is None or (current := self.get_import(import_id)).get("status") != status:
                raise
        rest = {name: value for name, value in body.items() if name != "status"}
        return self._http.json(call, "PATCH", self._import_url(import_id), json=rest) if rest else current

    def credentials(self, import_id: int) -> Secret:
        """The clinic's Cliniko key, for this run's memory only."""
        call = self._call("reading the Cliniko key", import_id)
        body = self._http.json(call, "GET", self._import_url(import_id, "credentials"))
        key = body.pop("clinikoApiKey", None)
        if not isinstance(key, str) or not key:
            raise SploseRequestError(f"Splose answered no Cliniko key while {call.description}.")
        return Secret(key)

    def delete_import(self, import_id: int) -> dict:
        """Undo: Splose deletes every record the import created; 409 after the delete window."""
        call = self._call("deleting every record created by", import_id)
        return self._http.json(call, "DELETE", self._import_url(import_id))

    # -- records ----------------------------------------------------------------------------------

    def upsert(self, import_id: int, entity: str, records: Iterable[dict], batch_size: int = MAX_BATCH) -> UpsertResult:
        """Upsert every record in batches of ``batch_size`` (at most 500) and at most :data:`MAX_BATCH_BYTES`
        of JSON; rejections do not stop it. A record too big for Splose to take even alone (HTTP 413) is
        counted as rejected, its message giving the size, and the rest go on."""
        if entity not in IMPORT_ENTITIES:
            raise ValueError(f"unknown import entity {entity!r}; expected one of {list(IMPORT_ENTITIES)}")
        size = max(1, min(batch_size, MAX_BATCH))
        result = UpsertResult(entity)
        url = self._import_url(import_id, f"records/{entity}")
        for batch in encoded_batches(records, size, MAX_BATCH_BYTES):
            call = self._call(f"upserting batch {result.batches + 1} of {len(batch)} {entity}", import_id)
            data = b'{"records":[' + b",".join(text for _, text in batch) + b"]}"
            try:
                body = self._http.json(call, "PUT", url, data=data, headers={"Content-Type": "application/json"})
            except SploseFileTooLarge:
                if len(batch) > 1:
                    raise
                external_id = batch[0][0].get("externalId")
                message = f"too large for Splose to take in one request (HTTP 413): {len(data):,} bytes of JSON"
                result.errors.append(RejectedRecord(None if external_id is None else str(external_id), message))
                result.batches += 1
                continue
            result.records.extend(
                UpsertedRecord(str(item["externalId"]), int(item["id"]), item["action"])
                for item in body.get("results") or []
            )
            result.errors.extend(
                RejectedRecord(item.get("externalId"), str(item.get("message", ""))[:MAX_MESSAGE_CHARS])
                for item in body.get("errors") or []
            )
            result.batches += 1
        return result

    def remove(
        self, import_id: int, entity: str, external_ids: Iterable[str], batch_size: int = MAX_BATCH
    ) -> RemoveResult:
        """Remove this source's ``entity`` records (``files`` too) by external id, in batches of ``batch_size``
        (at most 500), each batch all or nothing on Splose's side. Splose never cascades: a record still
        referred to by one not removed with it (an appointment of a client) is kept and reported in
        ``errors``, so remove the referrers first. A batch retried after its answer was lost reports what
        the lost answer removed as ``absent``."""
        if entity not in CROSSWALK_ENTITIES:
            raise ValueError(f"unknown import entity {entity!r}; expected one of {list(CROSSWALK_ENTITIES)}")
        size = max(1, min(batch_size, MAX_BATCH))
        result = RemoveResult(entity)
        url = self._import_url(import_id, f"records/{entity}/remove")
        pending = list(external_ids)
        for start in range(0, len(pending), size):
            batch = pending[start : start + size]
            call = self._call(f"removing batch {result.batches + 1} of {len(batch)} {entity}", import_id)
            body = self._http.json(call, "POST", url, json={"externalIds": batch})
            for item in body.get("results") or []:
                if item.get("action") == "removed":
                    result.removed.append(UpsertedRecord(str(item["externalId"]), int(item["id"]), "removed"))
                else:
                    result.absent.append(str(item["externalId"]))
            result.errors.extend(
                RejectedRecord(item.get("externalId"), str(item.get("message", ""))[:MAX_MESSAGE_CHARS])
                for item in body.get("errors") or []
            )
            result.batches += 1
        return result

    def crosswalk(self, import_id: int, entity: str) -> dict[str, int]:
        """External id -> Splose id of every ``entity`` record this source imported into the workspace."""
        return {external_id: entry.id for external_id, entry in self.crosswalk_entries(import_id, entity).items()}

    def crosswalk_entries(self, import_id: int, entity: str) -> dict[str, CrosswalkEntry]:
        """External id -> Splose id and content hash of every ``entity`` record this source imported."""
        return {external_id: entry for external_id, entry in self.crosswalk_rows(import_id, entity)}

    def crosswalk_rows(self, import_id: int, entity: str) -> Iterator[tuple[str, CrosswalkEntry]]:
        """The crosswalk's entries a page at a time, as Splose answers them (nothing else held)."""
        if entity not in CROSSWALK_ENTITIES:
            raise ValueError(f"unknown import entity {entity!r}; expected one of {list(CROSSWALK_ENTITIES)}")
        call = self._call(f"reading the {entity} crosswalk", import_id)
        for row in self._http.pages(call, f"imports/{int(import_id)}/records/{entity}", {}):
            yield str(row["externalId"]), CrosswalkEntry(int(row["id"]), row.get("contentHash"))

    def counts(self, import_id: int) -> dict[str, int]:
        """How many records of this source the workspace holds, per entity (one call)."""
        call = self._call("counting the records", import_id)
        body = self._http.json(call, "GET", self._import_url(import_id, "counts"))
        return {str(entity): int(count) for entity, count in (body.get("data") or {}).items()}

    # -- files ------------------------------------------------------------------------------------

    def upload_file(
        self,
        import_id: int,
        *,
        external_id: str,
        client_external_id: str,
        content: Opener,
        filename: str | None = None,
        content_type: str | None = None,
        description: str | None = None,
        created_at: str | None = None,
        sha256: str | None = None,
        content_hash: str | None = None,
    ) -> dict:
        """Stream one file from ``content`` (a staging reader; never held in memory); Splose checks ``sha256``
        when given and keeps ``content_hash`` with the file's crosswalk entry. Without ``filename`` the file
        is named by its external id.

        Answers ``{id, action, size, sha256}``; re-sending the same file is ``unchanged``.
        """
        name = filename or external_id
        fields = {
            "externalId": external_id,
            "clientExternalId": client_external_id,
            "filename": name,
            "contentType": content_type,
            "description": description,
            "createdAt": created_at,
            "sha256": sha256,
            "contentHash": content_hash,
        }
        parts = {key: value for key, value in fields.items() if value is not None}
        call = self._call(f"uploading file {external_id} of client {client_external_id}", import_id)
        url = self._import_url(import_id, "files")

        def attempt() -> dict:
            # Each attempt reopens the file: a retried upload streams from the first byte again.
            with content() as handle:
                encoder = MultipartEncoder(
                    {**parts, "file": (name, handle, content_type or "application/octet-stream")}
                )
                return self._http.attempt(
                    call, "POST", url, data=encoder, headers={"Content-Type": encoder.content_type}
                )

        return self._http.run(call, attempt)

    def upload_files(self, import_id: int, files: list[FileUpload]) -> FileBatchResult:
        """Several files in one request (at most ``MAX_FILE_BATCH``), each streamed from staging; each is stored
        or refused on its own (``errors``), like the records of an upsert batch."""
        if not 0 < len(files) <= MAX_FILE_BATCH:
            raise ValueError(f"a file batch holds 1 to {MAX_FILE_BATCH} files, not {len(files)}")
        manifest = [upload.manifest_entry(f"file{index}") for index, upload in enumerate(files)]
        call = self._call(f"uploading a batch of {len(files)} files", import_id)
        url = self._import_url(import_id, "files/batch")

        def attempt() -> dict:
            # Each attempt reopens the files: a retried batch streams every file from its first byte again.
            with ExitStack() as stack:
                parts: list[tuple[str, Any]] = [("manifest", json.dumps(manifest))]
                for index, upload in enumerate(files):
                    handle = stack.enter_context(upload.content())
                    name = upload.filename or upload.external_id
                    parts.append((f"file{index}", (name, handle, upload.content_type or "application/octet-stream")))
                encoder = MultipartEncoder(parts)
                return self._http.attempt(
                    call, "POST", url, data=encoder, headers={"Content-Type": encoder.content_type}
                )

        body = self._http.run(call, attempt)
        return FileBatchResult(
            answers={str(item["externalId"]): item for item in body.get("results") or []},
            errors={
                str(item.get("externalId")): str(item.get("message", ""))[:MAX_MESSAGE_CHARS]
                for item in body.get("errors") or []
            },
        )

    def _import_url(self, import_id: int, suffix: str = "") -> str:
        return self._http.url(f"imports/{int(import_id)}" + (f"/{suffix}" if suffix else ""))

    def _call(self, action: str, import_id: int | None = None) -> _Call:
        subject = f" import {import_id}" if import_id is not None else ""
        return _Call(f"{action}{subject} of {self._http.where()} (import API)", self._limiters)


@dataclass
class SploseWorkspace:
    """Both layers acting for one workspace."""

    workspace_id: str
    v1: SploseV1Client
    imports: SploseImportClient


class SploseResource(dg.ConfigurableResource):
    """Hands out Splose clients. ``definitions.py`` sets the URL and the token from the environment
    (``dg.EnvVar``, read at run time); the token is never a plain value in code or run config."""

    api_url: str | None = Field(
        default=None,
        description=f"The Splose API: SPLOSE_API_URL, else {PRODUCTION_URL}. The deployment's setting: a run's "
        "config cannot set it.",
    )
    platform_token: str = Field(
        default="",
        repr=False,
        json_schema_extra={"dagster__is_secret": True},  # the UI masks it wherever it would show a value
        description=f"The import-scoped platform token: only ever dg.EnvVar('{TOKEN_VARIABLE}'), so the UI shows "
        "the variable's name and never the token.",
    )
    user_agent: str = "Splose Cliniko importer (integrations@splose.com)"
    import_requests_per_window: int = 600
    # v1 calls made with the platform token count against the token's own budget (as the import API's
    # do) and, per workspace, against v1's published limit of a key: 60 a minute. An import makes a few
    # v1 calls (the mapping's three lists), so keeping to it costs nothing.
    v1_requests_per_window: int = 60
    window_seconds: float = 60.0
    rate_limit_state_dir: str | None = None
    shared_state_postgres_url: str | None = shared_state_field()
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 120.0
    max_attempts: int = 8

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        check_run(context)

    def base_url(self) -> str:
        return setting("splose", self, "api_url") or PRODUCTION_URL

    def token(self) -> Secret:
        value = (setting("splose", self, "platform_token") or "").strip()
        if not value:
            raise SploseAuthError(
                f"No Splose platform token: set the environment variable {TOKEN_VARIABLE} to the import-scoped "
                "platform token (from Splose's platform team; never put it in run config)."
            )
        return Secret(value)

    @contextmanager
    def imports(
        self, log: logging.Logger | None = None, workspace_id: str | None = None
    ) -> Iterator[SploseImportClient]:
        """The import API at platform level (no workspace header: the queue across workspaces), or acting
        for ``workspace_id`` (its imports only). ``log`` (a run's or a sensor's ``context.log``) receives the
        retry lines.
        """
        token = self.token()
        transport = self._transport("import API", token, workspace_id, log)
        client = SploseImportClient(transport, self._import_limiter(token, workspace_id))
        try:
            yield client
        finally:
            client.close()

    @contextmanager
    def workspace(self, workspace_id: str, log: logging.Logger | None = None) -> Iterator[SploseWorkspace]:
        """Both layers acting for ``workspace_id``; ``log`` receives the retry lines."""
        token = self.token()
        import_limiter = self._import_limiter(token, workspace_id)
        v1_limiter = self._limiter(
            "splose-v1", f"{token.reveal()}\0{workspace_id}", workspace_id, self.v1_requests_per_window
        )
        with ExitStack() as stack:
            v1 = SploseV1Client(self._transport("v1 API", token, workspace_id, log), (v1_limiter, import_limiter))
            stack.callback(v1.close)
            imports = SploseImportClient(self._transport("import API", token, workspace_id, log), import_limiter)
            stack.callback(imports.close)
            yield SploseWorkspace(workspace_id, v1, imports)

    def _transport(self, layer: str, token: Secret, workspace_id: str | None, log: logging.Logger | None) -> _Transport:
        return _Transport(
            layer=layer,
            token=token,
            base_url=self.base_url(),
            workspace_id=workspace_id,
            user_agent=self.user_agent,
            retry=RetryPolicy(max_attempts=self.max_attempts, log=log),
            timeout=(self.connect_timeout_seconds, self.read_timeout_seconds),
        )

    def _import_limiter(self, token: Secret, workspace_id: str | None) -> RateLimiter:
        """The platform token's budget, shared fairly by the workspaces acting with it (``platform`` for calls
        across workspaces, such as the import-request sensor's)."""
        tenant = workspace_id or "platform"
        return self._limiter("splose-import", token.reveal(), tenant, self.import_requests_per_window)

    def _limiter(self, scope: str, secret: str, tenant: str, limit: int) -> RateLimiter:
        return Budget(
            scope=scope,
            secret=secret,
            tenant=tenant,
            limit=limit,
            window_seconds=self.window_seconds,
            shared_url=setting("splose", self, "shared_state_postgres_url"),
            state_dir=self.rate_limit_state_dir,
        ).sliding_window()


def _splose_message(response: requests.Response) -> str:
    """Splose's ``message`` and ``errors`` (field names and reasons, not values), bounded."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return f"(no JSON body; HTTP {response.status_code})"
    if not isinstance(body, dict):
        return str(body)[:MAX_MESSAGE_CHARS]
    text = str(body.get("message") or "")
    errors = body.get("errors")
    if errors:
        text += " " + json.dumps(errors, sort_keys=True)
    return text[:MAX_MESSAGE_CHARS]
