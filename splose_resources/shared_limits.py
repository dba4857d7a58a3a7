"""Request budgets kept in Postgres, so that every process on every node spends one budget per key.

The file limiters of :mod:`splose_resources.ratelimit` share a budget between the processes of one host.
Past one machine, two runs on two nodes would each believe they own the Splose platform token's budget
(one token, shared by every clinic's import); these limiters keep the same two ways of counting in the
database every node already reaches (``SHARED_STATE_POSTGRES_URL``):

- :class:`PostgresFixedWindowLimiter` (Cliniko's fixed windows, aligned as the server says);
- :class:`PostgresSlidingWindowLimiter` (Splose's sliding window).

Every send is a row of ``rate_limit_sends`` (budget, tenant, time); a send is granted inside one
transaction that holds the budget's row (``SELECT ... FOR UPDATE``), so no two processes anywhere take
the same slot. Times come from the database's clock, so nodes with skewed clocks still count alike.
Budgets are named by a hash of the scope and the key, never the key.

**Fair share.** Tenants that wait for one budget share it: while ``n`` tenants are asking, a tenant may
go past ``ceil(limit / n)`` sends in the counting span only with slots the others below their share do
not need (a tenant that asked within the last second, or is sleeping until a slot frees, is asking). A
tenant alone uses the whole budget; a greedy tenant cannot starve a modest one.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from pydantic import Field

from splose_resources.ratelimit import (
    FixedWindowLimiter,
    RateLimiter,
    SlidingWindowLimiter,
    WindowLimiter,
    pause,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_limit_budgets (
    budget text PRIMARY KEY,
    phase double precision NOT NULL DEFAULT 0,
    spent_until double precision NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rate_limit_sends (
    budget text NOT NULL,
    tenant text NOT NULL,
    sent_at double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_limit_sends_by_budget ON rate_limit_sends (budget, sent_at);
CREATE TABLE IF NOT EXISTS rate_limit_claimants (
    budget text NOT NULL,
    tenant text NOT NULL,
    active_until double precision NOT NULL,
    PRIMARY KEY (budget, tenant)
);
"""
SHARED_STATE_VARIABLE = "SHARED_STATE_POSTGRES_URL"


def shared_state_field():
    """The resources' config field for it: secret (the URL may carry a password), shown by variable name."""
    return Field(
        default=None,
        repr=False,
        json_schema_extra={"dagster__is_secret": True},
        description=f"Postgres URL of the state every node shares (rate limits, emails sent); the code location "
        f"reads {SHARED_STATE_VARIABLE}. Unset: kept on this host only.",
    )


SCHEMA_LOCK = 0x5E1057A7E  # advisory lock: two nodes creating the tables at once
NOW = "extract(epoch from clock_timestamp())::double precision"


class SharedStateError(RuntimeError):
    """The shared store cannot be reached or used; the message never carries the URL (it may hold a password)."""


class SharedStore:
    """One connection per process to the shared Postgres, used by one thread at a time."""

    _stores: dict[tuple[int, str], SharedStore] = {}
    _stores_lock = threading.Lock()

    def __init__(self, url: str) -> None:
        self._url = url
        self._lock = threading.Lock()
        self._connection = None
        self._ready: set[str] = set()

    @classmethod
    def for_url(cls, url: str) -> SharedStore:
        """The process's store for ``url`` (a forked child gets its own connection)."""
        with cls._stores_lock:
            return cls._stores.setdefault((os.getpid(), url), cls(url))

    @contextmanager
    def transaction(self) -> Iterator:
        """A cursor in one transaction, committed on success and rolled back on error."""
        with self._lock:
            connection = self._connect()
            try:
                with connection, connection.cursor() as cursor:
                    yield cursor
            except psycopg2.OperationalError:
                self._connection = None
                raise SharedStateError(
                    "The shared state database (SHARED_STATE_POSTGRES_URL) stopped answering, so the request "
                    "waiting for it was not sent. Check that every node can reach the database, then re-run."
                ) from None

    def ensure_schema(self, name: str, ddl: str) -> None:
        """Create tables once per process, serialized across nodes by an advisory lock."""
        if name in self._ready:
            return
        with self.transaction() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            cursor.execute(ddl)
        self._ready.add(name)

    def _connect(self):
        if self._connection is None or self._connection.closed:
            try:
                self._connection = psycopg2.connect(self._url, connect_timeout=10)
            except psycopg2.Error:
                raise SharedStateError(
                    "Cannot connect to the shared state database given by SHARED_STATE_POSTGRES_URL: check the "
                    "URL, the credentials and that this node can reach the server."
                ) from None
        return self._connection


def budget_name(scope: str, secret: str) -> str:
    """The budget's name in the database: a hash of scope and key, never the key."""
    return f"{scope}-" + hashlib.sha256(f"{scope}\0{secret}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Span:
    """Where the counting span starts, the wait once it is full, and a wait forced by the window's edges."""

    start: float
    wait_when_full: float
    edge_wait: float = 0.0


class _PostgresBudget:
    """What both limiters share: the grant transaction and the fair share between tenants."""

    def __init__(
        self,
        *,
        url: str,
        scope: str,
        secret: str,
        tenant: str,
        limit: int,
        window_seconds: float,
        margin_seconds: float | None = None,
    ) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("a rate limit needs limit >= 1 and window_seconds > 0")
        self.limit = limit
        self.window = window_seconds
        # Wider than the file limiters' margin: a grant reaches the wire after a commit over the network.
        self.margin = min(0.25, window_seconds * 0.05) if margin_seconds is None else margin_seconds
        self.grace = min(1.0, window_seconds * 0.1)
        self.tenant = tenant
        self.budget = budget_name(scope, secret)
        self._store = SharedStore.for_url(url)
        self._store.ensure_schema("rate_limits", SCHEMA)
        with self._store.transaction() as cursor:
            cursor.execute("INSERT INTO rate_limit_budgets (budget) VALUES (%s) ON CONFLICT DO NOTHING", (self.budget,))

    def acquire(self, stop: threading.Event | None = None) -> float:
        """Take one slot, sleeping while the budget is spent or others wait for their share (:class:`Stopped` once
        ``stop`` is set); the seconds waited."""
        waited = 0.0
        while True:
            wait = self._try_take()
            if wait <= 0:
                return waited
            pause(wait, stop)
            waited += wait

    def _span(self, phase: float, spent_until: float, now: float, sends: list[float]) -> Span:
        raise NotImplementedError

    def _try_take(self) -> float:
        with self._store.transaction() as cursor:
            cursor.execute(
                "SELECT phase, spent_until FROM rate_limit_budgets WHERE budget = %s FOR UPDATE", (self.budget,)
            )
            phase, spent_until = cursor.fetchone()
            cursor.execute(f"SELECT {NOW}")  # read once the budget is ours, not while waiting for it
            (now,) = cursor.fetchone()
            cursor.execute(
                "SELECT tenant, sent_at FROM rate_limit_sends WHERE budget = %s AND sent_at > %s",
                (self.budget, now - self.window - 2 * self.margin),
            )
            recent = cursor.fetchall()
            span = self._span(phase, spent_until, now, sorted(t for _, t in recent))
            counted = Counter(tenant for tenant, sent_at in recent if sent_at >= span.start)
            cursor.execute(
                "SELECT tenant FROM rate_limit_claimants WHERE budget = %s AND active_until > %s AND tenant <> %s",
                (self.budget, now, self.tenant),
            )
            others = [row[0] for row in cursor.fetchall()]
            wait = span.edge_wait or self._fair_wait(counted, others, span)
            cursor.execute(
                "INSERT INTO rate_limit_claimants (budget, tenant, active_until) VALUES (%s, %s, %s) "
                "ON CONFLICT (budget, tenant) DO UPDATE SET active_until = EXCLUDED.active_until",
                (self.budget, self.tenant, now + max(wait, 0.0) + self.grace),
            )
            if wait <= 0:
                cursor.execute(
                    "INSERT INTO rate_limit_sends (budget, tenant, sent_at) VALUES (%s, %s, %s)",
                    (self.budget, self.tenant, now),
                )
                cursor.execute(
                    "DELETE FROM rate_limit_sends WHERE budget = %s AND sent_at < %s",
                    (self.budget, now - 2 * self.window - 2 * self.margin),
                )
            return wait

    def _fair_wait(self, counted: Counter, others: list[str], span: Span) -> float:
        """0 to send now; else how long to wait (the span is full, or others need their share first)."""
        used = sum(counted.values())
        if used >= self.limit:
            return span.wait_when_full
        share = math.ceil(self.limit / (len(others) + 1))
        reserved = sum(max(0, share - counted[other]) for other in others)
        if counted[self.tenant] < share or self.limit - used > reserved:
            return 0.0
        return self.grace / 4


class PostgresSlidingWindowLimiter(_PostgresBudget):
    """At most ``limit`` sends in any span of ``window_seconds`` (plus the margin), across every node."""

    def _span(self, phase: float, spent_until: float, now: float, sends: list[float]) -> Span:
        start = now - self.window - self.margin
        inside = [t for t in sends if t >= start]
        full = inside[-self.limit] + self.window + self.margin - now if len(inside) >= self.limit else 0.0
        return Span(start=start, wait_when_full=max(full, 0.01))


class PostgresFixedWindowLimiter(_PostgresBudget):
    """At most ``limit`` sends in each of the server's fixed windows, across every node."""

    def observe_reset(self, reset_epoch: float) -> None:
        """The server said its window ends at ``reset_epoch``: align to it and treat this window as spent."""
        with self._store.transaction() as cursor:
            cursor.execute(
                "UPDATE rate_limit_budgets SET phase = %s, spent_until = GREATEST(spent_until, %s) WHERE budget = %s",
                (reset_epoch % self.window, reset_epoch, self.budget),
            )

    def _span(self, phase: float, spent_until: float, now: float, sends: list[float]) -> Span:
        start = phase + math.floor((now - phase) / self.window) * self.window
        next_start = start + self.window + self.margin
        if now < spent_until or now > start + self.window - self.margin:
            edge = max(spent_until, start + self.window) + self.margin - now
        elif now < start + self.margin:
            edge = start + self.margin - now
        else:
            edge = 0.0
        return Span(start=start, wait_when_full=next_start - now, edge_wait=edge)


@dataclass(frozen=True)
class Budget:
    """One key's budget as a resource configures it: in Postgres when ``shared_url`` is set, else on the host."""

    scope: str
    secret: str
    tenant: str
    limit: int
    window_seconds: float
    shared_url: str | None = None
    state_dir: str | None = None

    def _settings(self) -> dict:
        return {"scope": self.scope, "secret": self.secret, "limit": self.limit, "window_seconds": self.window_seconds}

    def fixed_window(self) -> WindowLimiter:
        if self.shared_url:
            return PostgresFixedWindowLimiter(url=self.shared_url, tenant=self.tenant, **self._settings())
        return FixedWindowLimiter(state_dir=self._dir(), **self._settings())

    def sliding_window(self) -> RateLimiter:
        if self.shared_url:
            return PostgresSlidingWindowLimiter(url=self.shared_url, tenant=self.tenant, **self._settings())
        return SlidingWindowLimiter(state_dir=self._dir(), **self._settings())

    def _dir(self) -> Path | None:
        return Path(self.state_dir) if self.state_dir else None
