"""The Cliniko sandbox server: API routes per shard, the file host, and the ``/_sandbox`` admin routes.

Every ``/v1`` request goes through the same gate, in Cliniko's order as far as it is known: Basic auth
(key and shard), then the request counts against the key's budget and the stats, then the rate limit,
then injected faults, then the User-Agent / Accept checks and the role's permissions, then the route.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import random
import re
import secrets
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from sandbox.cliniko.accounts import SHARD, Account, open_account, validate
from sandbox.cliniko.api import AccountApi, forbidden_for, list_routes, route_template
from sandbox.cliniko.content import attachment_chunks, attachment_sha256, sign_token, verify_token
from sandbox.cliniko.envelopes import quirks_by_route
from sandbox.cliniko.mutate import MutationError, mutate, set_churn, truth
from sandbox.cliniko.queries import render
from sandbox.cliniko.schema import RESOURCES, UNLISTED
from sandbox.cliniko.settings import patch_settings, settings_body

API_PATH = re.compile(r"^(?:/(?P<shard>[a-z]{2}\d{1,2}))?/v1(?:/(?P<rest>.*))?\Z")
WRONG_TOTAL = re.compile(r'(?P<key>"total_ent(?:ries|ires)"): "?(?P<n>\d+)"?')
USER_AGENT = re.compile(r"^.+ \([^()\s]+@[^()\s]+\)\Z")
DENIED = "HTTP Basic: Access denied."
S3_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
    "<RequestId>{request_id}</RequestId></Error>"
)


@dataclass
class Faults:
    error_rate: float = 0.0
    storm_429: dict | None = None  # {"every": N, "length": M, "reset_seconds": S}
    drop_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 40.0
    truncate_rate: float = 0.0
    wrong_total_rate: float = 0.0  # a list's count replaced by an 18-digit number, as practitioners.md shows
    # Attachment id -> what the file host answers for it: "missing" (404 NoSuchKey), "forbidden" (403
    # AccessDenied) or "garbage" (200 with an error page instead of the bytes), as a broken bucket does.
    file_host: dict | None = None


@dataclass
class Config:
    shard: str = "au1"
    latency_ms: float = 150.0
    jitter_ms: float = 50.0
    rate_limit: int = 200
    rate_window: float = 60.0
    retry_after: bool = False
    signed_url_ttl: float = 60.0
    require_user_agent: bool = True
    fault_seed: int = 0
    faults: Faults = field(default_factory=Faults)


def _new_key_stats() -> dict[str, Any]:
    return {
        "total": 0,
        "rate_limited": 0,
        "injected": {"429": 0, "5xx": 0, "drop": 0, "slow": 0, "truncated": 0, "wrong_total": 0},
        "windows": defaultdict(int),
        "minutes": defaultdict(int),
        "paths": defaultdict(int),
    }


class Sandbox:
    def __init__(self, config: Config, data_dir: Path, cache_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.accounts: dict[str, Account] = {}
        self.keys: dict[str, tuple[Account, str]] = {}  # bare key -> (account, role)
        self.secret = secrets.token_bytes(32)
        self.lock = threading.Lock()
        self.reset_stats()
        self.fault_rng = random.Random(config.fault_seed)

    def add_account(
        self,
        name: str,
        seed: int,
        scale: str,
        shard: str,
        legacy_filters: bool = False,
        envelopes: str = "realistic",
        *,
        documented_filters: bool = False,
        no_older_routes: bool = False,
        nested_reference_numbers: bool = False,
        individual_attendees: bool = True,
    ) -> Account:
        validate(name, scale, shard, envelopes)
        account = open_account(
            name,
            seed,
            scale,
            shard,
            self.data_dir,
            self.cache_dir,
            legacy_filters=legacy_filters,
            documented_filters=documented_filters,
            no_older_routes=no_older_routes,
            nested_reference_numbers=nested_reference_numbers,
            individual_attendees=individual_attendees,
            envelopes=envelopes,
        )
        with self.lock:
            self.accounts[name] = account
            for role in account.users:
                self.keys[account.key(role)] = (account, role)
        return account

    def reset_stats(self) -> None:
        with self.lock:
            self.stats: dict[str, dict[str, Any]] = defaultdict(_new_key_stats)
            self.windows: dict[str, tuple[float, int]] = {}
            self.storm_counts: dict[str, int] = defaultdict(int)

    # -- the /v1 gate ------------------------------------------------------------------------------
    def authenticate(self, request: Request, shard: str) -> tuple[Account, str] | None:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user = base64.b64decode(encoded, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return None
        bare, dash, suffix = user.rpartition("-")
        if not (dash and SHARD.match(suffix)):
            bare, suffix = user, ""
        found = self.keys.get(bare)
        if found is None or (suffix and suffix != shard) or found[0].shard != shard:
            return None
        return found

    def count(self, label: str, path: str) -> tuple[bool, int]:
        """Count a request against its key; (over the limit?, epoch second the window resets)."""
        now = time.time()
        window = self.config.rate_window
        start = math.floor(now / window) * window
        with self.lock:
            stats = self.stats[label]
            stats["total"] += 1
            stats["windows"][str(int(start))] += 1
            stats["minutes"][str(int(now // 60 * 60))] += 1
            stats["paths"][path] += 1
            current, n = self.windows.get(label, (start, 0))
            n = n + 1 if current == start else 1
            self.windows[label] = (start, n)
            over = n > self.config.rate_limit
            if over:
                stats["rate_limited"] += 1
        return over, math.ceil(start + window)

    def draw_fault(self, label: str) -> tuple[str | None, float]:
        """Which injected fault (if any) this request gets; draws a fixed number of random values
        per request so the sequence depends only on the fault seed and the request order."""
        faults = self.config.faults
        with self.lock:
            draws = [self.fault_rng.random() for _ in range(6)]
            position = self.storm_counts[label]  # requests before this one since the faults were set
            self.storm_counts[label] += 1
            storm = faults.storm_429
            kind: str | None = None
            extra = 0.0
            if (
                storm
                and storm.get("every")
                and position % int(storm["every"]) >= int(storm["every"]) - int(storm.get("length", 1))
            ):
                kind, extra = "429", float(storm.get("reset_seconds", 1))
            elif draws[0] < faults.error_rate:
                kind, extra = "5xx", draws[4]
            elif draws[1] < faults.drop_rate:
                kind = "drop"
            elif draws[2] < faults.slow_rate:
                kind = "slow"
            elif draws[3] < faults.truncate_rate:
                kind = "truncated"
            elif draws[5] < faults.wrong_total_rate:
                kind = "wrong_total"
            if kind:
                self.stats[label]["injected"][kind] += 1
        return kind, extra

    async def latency(self) -> None:
        delay = self.config.latency_ms + random.uniform(-self.config.jitter_ms, self.config.jitter_ms)
        if delay > 0:
            await asyncio.sleep(delay / 1000)

    async def api(self, request: Request) -> Response:
        match = API_PATH.match(request.url.path)
        if match is None:
            return JSONResponse({"message": "Not found"}, status_code=404)
        response = await self.gate(request, match)
        if response is not None:
            await self.latency()
        return response if response is not None else await self.drop(request)

    async def gate(self, request: Request, match: re.Match) -> Response | None:
        shard = match["shard"] or self.config.shard
        prefix = f"/{match['shard']}/v1" if match["shard"] else "/v1"
        segments = [s for s in (match["rest"] or "").split("/") if s]
        found = self.authenticate(request, shard)
        if found is None:
            return PlainTextResponse(DENIED, status_code=401, headers={"WWW-Authenticate": 'Basic realm="Application"'})
        account, role = found
        label = f"{account.name}/{role}"
        over, reset = self.count(label, route_template(segments))
        if over:
            return self.too_many(reset)
        fault, extra = self.draw_fault(label)
        if fault == "429":
            return self.too_many(math.ceil(time.time() + extra))
        if fault == "5xx":
            status = (500, 502, 503, 504)[int(extra * 4) % 4]
            return PlainTextResponse(f"{status} injected by the sandbox", status_code=status)
        if fault == "drop":
            return None
        if fault == "slow":
            await asyncio.sleep(self.config.faults.slow_seconds)
        if self.config.require_user_agent and not USER_AGENT.match(request.headers.get("user-agent", "")):
            message = "A User-Agent of the form 'APP_VENDOR_NAME (APP_VENDOR_EMAIL)' is required"
            return JSONResponse({"message": message}, status_code=403)
        accept = request.headers.get("accept", "*/*")
        if not any(t.split(";")[0].strip() in ("application/json", "*/*", "application/*") for t in accept.split(",")):
            return JSONResponse({"message": "Only application/json is supported"}, status_code=406)
        if forbidden_for(role, segments):
            return JSONResponse({"message": "You do not have permission to access this resource"}, status_code=403)
        if not segments:
            return JSONResponse({"message": "Not found"}, status_code=404)
        base = f"{request.url.scheme}://{request.url.netloc}{prefix}"
        url = f"{base}/{'/'.join(segments)}"
        params = list(request.query_params.multi_items())
        handler = AccountApi(account, role, base, url, params, route_template(segments))
        if request.method == "GET":
            answer = await run_in_threadpool(handler.get, segments)
        else:
            payload = await self._json_body(request)
            answer = await run_in_threadpool(handler.write, request.method, segments, payload)
        if answer.status == 302:
            token = sign_token(
                self.secret, account.name, int(answer.headers["x-attachment-id"]), self.config.signed_url_ttl
            )
            port = request.url.port or 80
            return RedirectResponse(f"http://localhost:{port}/_files/{token}", status_code=302)
        body = answer.body
        if fault == "truncated" and answer.status == 200:
            body = body[: len(body) // 2]
        if fault == "wrong_total" and answer.status == 200:
            body = WRONG_TOTAL.sub(lambda m: f'{m["key"]}: "{514810972972521916 + int(m["n"])}"', body, count=1)
        return Response(body, status_code=answer.status, media_type=answer.media_type if body else None)

    @staticmethod
    async def _json_body(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return None

    def too_many(self, reset: int) -> Response:
        headers = {"X-RateLimit-Reset": str(reset)}
        if self.config.retry_after:
            headers["Retry-After"] = str(max(1, math.ceil(reset - time.time())))
        return JSONResponse({"message": "Too many requests"}, status_code=429, headers=headers)

    @staticmethod
    async def drop(request: Request) -> Response:
        """Close the connection without answering, as a failing load balancer does."""
        transport = request.scope.get("sandbox.transport")
        if transport is not None:
            transport.close()
            await asyncio.sleep(0.05)  # let the server notice the disconnect so it sends nothing
        return Response(status_code=500)

    # -- the file host -----------------------------------------------------------------------------
    async def files(self, request: Request) -> Response:
        request_id = secrets.token_hex(8).upper()

        def refuse(code: str, message: str) -> Response:
            body = S3_ERROR.format(code=code, message=message, request_id=request_id)
            return Response(body, status_code=403, media_type="application/xml")

        if "authorization" in request.headers:
            return refuse(
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
                "string parameter or the Authorization header should be specified",
            )
        try:
            found = verify_token(self.secret, request.path_params["token"])
        except (ValueError, KeyError, binascii.Error):
            found = None
        if found is None:
            return refuse("AccessDenied", "Request has expired or the signature does not match")
        account_name, rid = found
        account = self.accounts[account_name]
        row = await run_in_threadpool(
            lambda: account.db().execute("SELECT body FROM patient_attachments WHERE id = ?", (rid,)).fetchone()
        )
        broken = (self.config.faults.file_host or {}).get(str(rid))
        if row is None or broken == "missing":
            body = S3_ERROR.format(code="NoSuchKey", message="The specified key does not exist.", request_id=request_id)
            return Response(body, status_code=404 if broken else 403, media_type="application/xml")
        if broken == "forbidden":
            return refuse("AccessDenied", "Access Denied")
        if broken == "garbage":
            return Response("<html><body>502 Bad Gateway</body></html>", media_type="text/html")
        body = json.loads(row[0])
        if body.get("processing_completed") is False or body.get("size") is None:  # no file to serve yet
            body = S3_ERROR.format(code="NoSuchKey", message="The specified key does not exist.", request_id=request_id)
            return Response(body, status_code=404, media_type="application/xml")
        headers = {
            "Content-Length": str(body["size"]),
            "Content-Disposition": f'attachment; filename="{body["filename"]}"',
        }
        chunks = attachment_chunks(account.seed, rid, body["content_type"], body["size"])
        return StreamingResponse(chunks, media_type=body["content_type"], headers=headers)

    # -- admin -------------------------------------------------------------------------------------
    def account_or_404(self, request: Request) -> Account | Response:
        account = self.accounts.get(request.path_params["name"])
        return account if account else JSONResponse({"message": "No such account"}, status_code=404)

    async def list_accounts(self, request: Request) -> Response:
        return JSONResponse({"accounts": [a.describe() for a in self.accounts.values()]})

    async def get_account(self, request: Request) -> Response:
        account = self.account_or_404(request)
        if isinstance(account, Response):
            return account
        quirks = quirks_by_route(account.seed, account.envelopes, list_routes())
        return JSONResponse({**account.describe(), "envelope_quirks": quirks})

    async def create_account(self, request: Request) -> Response:
        spec = await request.json()
        name = spec.get("name", "")
        if name in self.accounts:
            return JSONResponse({"message": f"account {name!r} exists"}, status_code=409)
        try:
            account = await run_in_threadpool(
                self.add_account,
                name,
                int(spec.get("seed", 1)),
                spec.get("scale", "tiny"),
                spec.get("shard", "au1"),
                bool(spec.get("legacy_filters", False)),
                spec.get("envelopes", "realistic"),
                documented_filters=bool(spec.get("documented_filters", False)),
                no_older_routes=bool(spec.get("no_older_routes", False)),
                nested_reference_numbers=bool(spec.get("nested_reference_numbers", False)),
                individual_attendees=bool(spec.get("individual_attendees", True)),
            )
        except ValueError as exc:
            return JSONResponse({"message": str(exc)}, status_code=400)
        return JSONResponse(account.describe(), status_code=201)

    async def truth(self, request: Request) -> Response:
        account = self.account_or_404(request)
        if isinstance(account, Response):
            return account
        return JSONResponse(await run_in_threadpool(truth, account))

    async def export(self, request: Request) -> Response:
        account = self.account_or_404(request)
        if isinstance(account, Response):
            return account
        resource = request.path_params["resource"]
        if resource not in RESOURCES:
            return JSONResponse({"message": f"unknown resource {resource!r}"}, status_code=404)
        base = f"{request.url.scheme}://{request.url.netloc}/v1"
        return StreamingResponse(export_lines(account, resource, base), media_type="application/x-ndjson")

    async def mutate(self, request: Request) -> Response:
        account = self.account_or_404(request)
        if isinstance(account, Response):
            return account
        try:
            return JSONResponse(await run_in_threadpool(mutate, account, await request.json()))
        except (MutationError, ValueError, TypeError) as exc:
            return JSONResponse({"message": str(exc)}, status_code=400)

    async def churn(self, request: Request) -> Response:
        account = self.account_or_404(request)
        if isinstance(account, Response):
            return account
        if request.method == "GET":
            rule = account.churn
            return JSONResponse({"churn": asdict(rule) if rule else None})
        try:
            return JSONResponse(set_churn(account, await request.json()))
        except (MutationError, ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"message": str(exc)}, status_code=400)

    async def patch_settings(self, request: Request) -> Response:
        account = self.account_or_404(request)
        if isinstance(account, Response):
            return account
        patch = await request.json()
        if not isinstance(patch, dict):
            return JSONResponse({"message": "expected an object"}, status_code=400)

        def write() -> dict:
            with account.write_lock:
                return patch_settings(account.db(), patch)

        return JSONResponse(await run_in_threadpool(write))

    async def get_settings(self, request: Request) -> Response:
        """The account's settings as ``GET /settings`` serves its administrator, for setting up a scenario:
        not a request of the key (nothing counted against its budget)."""
        account = self.account_or_404(request)
        if isinstance(account, Response):
            return account
        base = f"{request.url.scheme}://{request.url.netloc}/{account.shard}/v1"
        body = await run_in_threadpool(settings_body, account.db(), base, False)
        if body is None:
            return JSONResponse({"message": "Not found"}, status_code=404)
        return Response(body, media_type="application/json")

    async def get_stats(self, request: Request) -> Response:
        with self.lock:
            body = {
                "window_seconds": self.config.rate_window,
                "limit": self.config.rate_limit,
                "keys": json.loads(json.dumps(self.stats)),
            }
        return JSONResponse(body)

    async def post_stats_reset(self, request: Request) -> Response:
        self.reset_stats()
        return JSONResponse({"reset": True})

    def config_body(self) -> dict:
        c = self.config
        return {
            "latency_ms": c.latency_ms,
            "jitter_ms": c.jitter_ms,
            "rate_limit": c.rate_limit,
            "rate_window": c.rate_window,
            "retry_after": c.retry_after,
            "fault_seed": c.fault_seed,
            "faults": asdict(c.faults),
        }

    async def get_config(self, request: Request) -> Response:
        return JSONResponse(self.config_body())

    async def post_config(self, request: Request) -> Response:
        update = await request.json()
        c = self.config
        try:
            with self.lock:
                for name in ("latency_ms", "jitter_ms", "rate_window"):
                    if name in update:
                        setattr(c, name, float(update[name]))
                if "rate_limit" in update:
                    c.rate_limit = int(update["rate_limit"])
                if "retry_after" in update:
                    c.retry_after = bool(update["retry_after"])
                if "faults" in update:
                    faults = dict(update["faults"])
                    if "fault_seed" in faults:  # accepted inside "faults" too
                        update = {**update, "fault_seed": faults.pop("fault_seed")}
                    known = Faults.__dataclass_fields__
                    unknown = set(faults) - set(known)
                    if unknown:
                        raise ValueError(f"unknown faults {sorted(unknown)}")
                    for name, value in faults.items():
                        setattr(c.faults, name, value if name in ("storm_429", "file_host") else float(value))
                    self.storm_counts.clear()
                if "fault_seed" in update:
                    c.fault_seed = int(update["fault_seed"])
                    self.fault_rng = random.Random(c.fault_seed)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"message": str(exc)}, status_code=400)
        return JSONResponse(self.config_body())


def export_lines(account: Account, resource: str, base: str):
    """One NDJSON line per record, archived/deleted/cancelled included (and, after them, what a hard delete
    removed from every route, with its ``deleted_at``), read in batches by id."""
    conn = account.connect()
    try:
        for source, condition, state in ((resource, "", "state"), ("_removed", "resource = ? AND ", "NULL")):
            args = (resource,) if condition else ()
            last = -(2**63)
            while True:
                rows = conn.execute(
                    f"SELECT id, body, {state} FROM {source} WHERE {condition}id > ? ORDER BY id LIMIT 500",
                    (*args, last),
                ).fetchall()
                if not rows:
                    break
                yield "".join(_export_line(account, resource, row, base) for row in rows).encode()
                last = rows[-1][0]
    finally:
        conn.close()


def _export_line(account: Account, resource: str, row: tuple, base: str) -> str:
    rid, body, state = row
    text = render(body, base)
    if resource == "patient_attachments" or state == UNLISTED:
        record = json.loads(text)
        if state == UNLISTED:
            record["_unlisted"] = True  # no list route returns it; GET by id does
        if resource == "patient_attachments":  # none while Cliniko processes the file
            processed = record["size"] is not None
            record["_sha256"] = (
                attachment_sha256(account.seed, rid, record["content_type"], record["size"]) if processed else None
            )
            record["_bytes"] = record["size"]
        text = json.dumps(record, ensure_ascii=False)
    return text + "\n"


def build_app(sandbox: Sandbox) -> Any:
    routes = [
        Route("/_sandbox/accounts", sandbox.list_accounts, methods=["GET"]),
        Route("/_sandbox/accounts", sandbox.create_account, methods=["POST"]),
        Route("/_sandbox/accounts/{name}", sandbox.get_account, methods=["GET"]),
        Route("/_sandbox/accounts/{name}/truth", sandbox.truth, methods=["GET"]),
        Route("/_sandbox/accounts/{name}/export/{resource}", sandbox.export, methods=["GET"]),
        Route("/_sandbox/accounts/{name}/mutate", sandbox.mutate, methods=["POST"]),
        Route("/_sandbox/accounts/{name}/churn", sandbox.churn, methods=["GET", "POST"]),
        Route("/_sandbox/accounts/{name}/settings", sandbox.patch_settings, methods=["POST"]),
        Route("/_sandbox/accounts/{name}/settings", sandbox.get_settings, methods=["GET"]),
        Route("/_sandbox/stats", sandbox.get_stats, methods=["GET"]),
        Route("/_sandbox/stats/reset", sandbox.post_stats_reset, methods=["POST"]),
        Route("/_sandbox/config", sandbox.get_config, methods=["GET"]),
        Route("/_sandbox/config", sandbox.post_config, methods=["POST"]),
        Route("/_files/{token}", sandbox.files, methods=["GET"]),
        Route("/{path:path}", sandbox.api, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    app = Starlette(routes=routes)

    async def with_transport(scope, receive, send):
        # uvicorn's receive is a bound method of the connection's request cycle, which owns the transport:
        # the only handle that lets the "drop" fault close a connection without answering.
        if scope["type"] == "http":
            scope["sandbox.transport"] = getattr(getattr(receive, "__self__", None), "transport", None)
        await app(scope, receive, send)

    return with_transport
