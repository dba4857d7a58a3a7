"""The Splose sandbox application: settings, authentication, rate limits, errors, and the route table.

Both API layers live under ``/v1``: the public v1 API (``v1.py``, as the published spec defines it)
and this project's import API (``imports.py``). Sandbox-only administration is under ``/_sandbox``
(``admin.py``). Everything shared by the layers (who is calling, their budget, JSON errors, paging
links) is here.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import math
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.splose.jsonvalues import JsonBodyError, parse_json, plain_problem, strict_int
from sandbox.splose.store import Page, Store

DEV_PLATFORM_TOKEN = "splose-sandbox-dev-platform-token"
V1_PAGE_SIZE = 50
IMPORT_PAGE_SIZE = 500
MAX_JSON_BYTES = 32 * 1024 * 1024
STATS_WINDOWS_KEPT = 100


@dataclass(frozen=True)
class Settings:
    db_path: Path
    platform_token: str
    v1_rate_limit: int = 60
    import_rate_limit: int = 600
    rate_window: float = 60.0
    latency_ms: float = 0.0
    file_size_cap_mb: float = 100.0
    record_v1: Path | None = None
    delete_window_hours: float = 48.0

    @property
    def file_size_cap(self) -> int:
        return int(self.file_size_cap_mb * 1024 * 1024)


class ApiError(Exception):
    """An error answer: ``{"message": ..., "errors": {field: message}}`` with its status."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"message": self.message}
        if self.errors:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status, headers=self.headers)


@dataclass(frozen=True)
class Caller:
    """Who is calling: ``label`` names the key in stats and limits (never the key text itself)."""

    label: str
    workspace_id: str | None
    platform: bool


@dataclass
class _WindowCount:
    start: float
    requests: int = 0
    throttled: int = 0


@dataclass
class _KeyBudget:
    """One key's sliding log (monotonic times of the calls admitted in the last window) and its stats."""

    admitted: deque[float] = field(default_factory=deque)
    peak: int = 0
    windows: list[_WindowCount] = field(default_factory=list)


@dataclass
class RateLimiter:
    """A sliding window per key label: at most ``limit`` calls admitted in any span of ``window`` seconds.

    A fixed window would let twice the limit through around each boundary (a full window's worth just
    before it and again just after); the sliding log admits a call only while fewer than ``limit``
    calls were admitted in the ``window`` seconds before it. Refused calls are not counted. Per fixed
    window counts (wall clock) and the peak in any sliding span are kept for ``/_sandbox/stats``.
    """

    window: float
    _keys: dict[str, _KeyBudget] = field(default_factory=lambda: defaultdict(_KeyBudget))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, label: str, limit: int) -> float | None:
        """Count one call; return None if admitted, else the seconds until one more call fits."""
        now = time.monotonic()
        with self._lock:
            budget = self._keys[label]
            while budget.admitted and budget.admitted[0] <= now - self.window:
                budget.admitted.popleft()
            stats = self._stats_window(budget)
            if len(budget.admitted) >= limit:
                stats.throttled += 1
                return budget.admitted[0] + self.window - now
            budget.admitted.append(now)
            budget.peak = max(budget.peak, len(budget.admitted))
            stats.requests += 1
            return None

    def _stats_window(self, budget: _KeyBudget) -> _WindowCount:
        start = math.floor(time.time() / self.window) * self.window
        if not budget.windows or budget.windows[-1].start != start:
            budget.windows.append(_WindowCount(start))
            del budget.windows[:-STATS_WINDOWS_KEPT]
        return budget.windows[-1]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                label: {
                    "requests": sum(w.requests for w in budget.windows),
                    "throttled": sum(w.throttled for w in budget.windows),
                    "windowSeconds": self.window,
                    "peakInAnyWindow": budget.peak,
                    "windows": [
                        {"start": iso_seconds(w.start), "requests": w.requests, "throttled": w.throttled}
                        for w in budget.windows
                    ],
                }
                for label, budget in self._keys.items()
            }


def iso_seconds(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Sandbox:
    """State shared by every handler: settings, store, rate limiter and the v1 response recorder."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.db_path)
        self.limiter = RateLimiter(settings.rate_window)
        self._record_lock = threading.Lock()
        self.route_counts: Counter[str] = Counter()  # API calls by "METHOD /path/{template}", for /_sandbox/stats

    def count_route(self, request: Request) -> None:
        route = request.scope.get("route")
        with self._record_lock:
            self.route_counts[f"{request.method} {getattr(route, 'path', request.url.path)}"] += 1

    def route_stats(self) -> dict[str, int]:
        with self._record_lock:
            return dict(self.route_counts)

    def authenticate(self, request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "No valid API key provided: send Authorization: Bearer <key>")
        if hmac.compare_digest(token.encode(), self.settings.platform_token.encode()):
            workspace_id = request.headers.get("x-splose-workspace")
            if workspace_id is not None and self.store.workspace(workspace_id) is None:
                raise ApiError(404, f"Workspace {workspace_id!r} not found")
            return Caller("platform", workspace_id, platform=True)
        row = self.store.workspace_by_key(token)
        if row is None:
            raise ApiError(401, "No valid API key provided: the key is not recognised")
        return Caller(f"workspace:{row['id']}", row["id"], platform=False)

    def v1_caller(self, request: Request) -> Caller:
        """A v1 call: a workspace key, or the platform token acting for ``X-Splose-Workspace``.

        The platform token's v1 calls count against its own budget (the import API's) and, per workspace it
        acts for, against v1's published limit of a key ("60 calls per minute per key"): the docs do not
        exempt the token from it, so the sandbox does not either.
        """
        caller = self.authenticate(request)
        if caller.platform and caller.workspace_id is None:
            raise ApiError(400, "The platform token needs an X-Splose-Workspace header on v1 endpoints")
        self._admit(caller, retry_after=False)
        if caller.platform:
            as_key = Caller(f"{caller.label} on v1 for {caller.workspace_id}", caller.workspace_id, platform=False)
            self._admit(as_key, retry_after=False)
        return caller

    def import_caller(self, request: Request, *, workspace_key_allowed: bool = False) -> Caller:
        caller = self.authenticate(request)
        if not caller.platform and not workspace_key_allowed:
            raise ApiError(403, "The import API needs the platform token; a workspace key cannot call it")
        self._admit(caller, retry_after=True)
        return caller

    def _admit(self, caller: Caller, *, retry_after: bool) -> None:
        limit = self.settings.import_rate_limit if caller.platform else self.settings.v1_rate_limit
        wait = self.limiter.admit(caller.label, limit)
        if wait is not None:
            headers = {"Retry-After": str(max(1, math.ceil(wait)))} if retry_after else None
            raise ApiError(429, "Too many requests: rate limit exceeded", headers=headers)

    def record_v1(self, method: str, path_template: str, response: Response) -> None:
        if self.settings.record_v1 is None:
            return
        body = json.loads(bytes(response.body)) if response.body else None
        line = json.dumps(
            {"method": method, "path_template": path_template, "status": response.status_code, "body": body}
        )
        with self._record_lock, open(self.settings.record_v1, "a", encoding="utf-8") as out:
            out.write(line + "\n")


Handler = Callable[[Request], Awaitable[Response]] | Callable[[Request], Response]


def endpoint(
    sandbox: Sandbox, handler: Handler, *, v1_template: str | None = None, api: bool = True
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: simulated latency (API calls only), ``ApiError`` as JSON, v1 responses recorded.

    A plain (non-async) handler runs in the thread pool, so its database work never blocks the loop.
    """

    async def wrapped(request: Request) -> Response:
        if api:
            sandbox.count_route(request)
        if api and sandbox.settings.latency_ms:
            await asyncio.sleep(sandbox.settings.latency_ms / 1000)
        try:
            if inspect.iscoroutinefunction(handler):
                response = await handler(request)
            else:
                response = await run_in_threadpool(handler, request)
        except ApiError as error:
            response = error.response()
        if v1_template is not None:
            sandbox.record_v1(request.method, v1_template, response)
        return response

    return wrapped


def check_query(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise ApiError(400, f"Unknown query parameter(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return strict_int(value)
    except ValueError as error:
        raise ApiError(400, f"{name}: {error}", {name: "must be a 64-bit integer"}) from error


def page_links(request: Request, page: Page) -> dict[str, str]:
    """``nextPage``/``previousPage`` links keeping the other query parameters.

    As in the spec's examples (``/v1/${object_type}?id_gt=200``), a link is the path and query alone, no
    scheme or host: a client resolves it against the API's address. A link that does not exist is left
    out: the spec types both as (non-nullable) strings.
    """
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("id_gt", "id_lt")]
    base = request.url.path
    links: dict[str, str] = {}
    if page.rows and page.has_after:
        links["nextPage"] = f"{base}?{urlencode([*kept, ('id_gt', page.rows[-1].id)])}"
    if page.rows and page.has_before:
        links["previousPage"] = f"{base}?{urlencode([*kept, ('id_lt', page.rows[0].id)])}"
    return links


async def json_body(request: Request, *, plain: bool = True) -> dict[str, Any]:
    """The body as a JSON object; a body that is not one is a 400 (413 over :data:`MAX_JSON_BYTES`).

    With ``plain`` every value in it must be storable (see ``jsonvalues``); a bulk upsert checks each
    record on its own instead, so one bad record does not refuse the batch.
    """
    try:
        body = parse_json(await _read_capped(request, MAX_JSON_BYTES))
    except JsonBodyError as error:
        raise ApiError(400, f"The request body is refused: {error}") from error
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object")
    problem = plain_problem(body) if plain else None
    if problem:
        raise ApiError(400, f"The request body is refused: {problem}", {problem.split(":", 1)[0]: problem})
    return body


async def _read_capped(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise ApiError(413, f"The request body is {declared} bytes; at most {cap} bytes are accepted")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > cap:
            raise ApiError(413, f"The request body is over {cap} bytes; at most {cap} bytes are accepted")
    return bytes(chunks)


def build_app(settings: Settings, seeds: list[dict[str, Any]] | None = None) -> Starlette:
    from sandbox.splose import admin, imports, v1

    sandbox = Sandbox(settings)
    for seed in seeds or []:
        admin.seed_workspace(sandbox.store, seed)
    routes: list[Route] = [*v1.routes(sandbox), *imports.routes(sandbox), *admin.routes(sandbox)]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"message": exc.detail}, status_code=exc.status_code)

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.sandbox = sandbox
    return app
