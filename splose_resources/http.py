"""The one retry policy shared by the Cliniko and Splose clients, built on ``tenacity``.

Transient failures (429, 5xx, timeouts, dropped connections, truncated bodies) are retried with
bounded, jittered backoff; a 429 waits until the server says the window resets (``X-RateLimit-Reset``,
then ``Retry-After``, then backoff). Every retry is logged with what was asked, the attempt, the failure
and the wait: never a URL, a header or a body, so no key, token or patient data. Everything else is
returned to the caller, which turns it into an error that says what to do.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TypeVar

import dagster as dg
import orjson
import requests
import tenacity
from requests.adapters import HTTPAdapter

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
RATE_LIMITED = "429"


def retry_log() -> logging.Logger:
    """Inside a run this logger writes to the run's event log; elsewhere it is a plain Python logger."""
    return dg.get_dagster_logger("retry")


class TransientError(Exception):
    """Raised by an attempt to ask for another try; ``wait`` overrides the backoff when known."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


class RetriesExhausted(Exception):
    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(f"gave up after {attempts} attempts; last failure: {reason}")
        self.reason = reason
        self.attempts = attempts


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds: ``max_attempts`` failures other than 429, ``max_rate_limited`` 429s, no wait over ``max_wait``.

    ``log`` receives the retry lines: a run's ``context.log``, so lines from worker threads reach the run's
    log whenever they are written; by default :func:`retry_log`.
    """

    max_attempts: int = 8
    max_rate_limited: int = 30
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_wait: float = 180.0
    log: logging.Logger | None = field(default=None, compare=False)

    def backoff(self, attempt: int) -> float:
        return random.uniform(0.5, 1.0) * min(self.backoff_cap, self.backoff_base * 2**attempt)

    def run(self, attempt_fn: Callable[[], T], *, what: str, sleep: Callable[[float], None] = time.sleep) -> T:
        """Call ``attempt_fn`` until it returns, retrying :class:`TransientError` within the bounds.

        ``what`` names the request for the retry log (kind, resource or entity, tenant): never a URL or a value.
        """
        tally = _Tally(self, what)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientError),
            after=tally.count,
            stop=tally.exhausted,
            wait=tally.wait,
            before_sleep=tally.log,
            sleep=sleep,
            reraise=True,
        )
        try:
            return retrying(attempt_fn)
        except TransientError as exc:
            raise RetriesExhausted(exc.reason, tally.failures + tally.rate_limited) from None


@dataclass
class _Tally:
    """The state of one call's retries: failures and 429s are counted against separate bounds."""

    policy: RetryPolicy
    what: str
    failures: int = 0
    rate_limited: int = 0
    last: TransientError = field(default_factory=lambda: TransientError("none"))

    def count(self, state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None
        error = state.outcome.exception()
        assert isinstance(error, TransientError)
        self.last = error
        if error.reason == RATE_LIMITED:
            self.rate_limited += 1
        else:
            self.failures += 1

    def exhausted(self, state: tenacity.RetryCallState) -> bool:
        if self.last.reason == RATE_LIMITED:
            return self.rate_limited > self.policy.max_rate_limited
        return self.failures >= self.policy.max_attempts

    def wait(self, state: tenacity.RetryCallState) -> float:
        if self.last.reason == RATE_LIMITED:
            delay = self.last.wait if self.last.wait is not None else self.policy.backoff(self.rate_limited)
        else:
            delay = self.policy.backoff(self.failures)
        return min(self.policy.max_wait, max(0.0, delay))

    def log(self, state: tenacity.RetryCallState) -> None:
        reason = self.last.reason
        failure = f"HTTP {reason}" + (" rate limited" if reason == RATE_LIMITED else "") if reason.isdigit() else reason
        (self.policy.log or retry_log()).warning(
            f"Retrying {self.what}: attempt {state.attempt_number} failed ({failure}); "
            f"waiting {state.upcoming_sleep:.1f} s before attempt {state.attempt_number + 1}"
        )


def classify_response(response: requests.Response) -> None:
    """Raise :class:`TransientError` for responses worth another try."""
    if response.status_code == 429:
        raise TransientError(RATE_LIMITED, rate_limit_wait(response))
    if response.status_code in RETRYABLE_STATUS:
        raise TransientError(str(response.status_code))


def rate_limit_wait(response: requests.Response, now: float | None = None) -> float | None:
    """Seconds until the server's window resets: ``X-RateLimit-Reset`` (epoch), else ``Retry-After``."""
    now = time.time() if now is None else now
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - now) + random.uniform(0.05, 0.3)
        except ValueError:
            pass
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(retry_after).timestamp() - now)
            except (TypeError, ValueError):
                pass
    return None


def send(session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
    """One HTTP attempt; network failures become :class:`TransientError` (no URL or header in it)."""
    if kwargs.get("json") is not None:
        kwargs = _json_encoded(kwargs)
    try:
        return session.request(method, url, allow_redirects=False, **kwargs)
    except requests.Timeout:
        raise TransientError("timeout") from None
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
        raise TransientError("connection dropped") from None


def _json_encoded(kwargs: dict) -> dict:
    """A JSON body encoded by orjson (a batch of 500 records costs a tenth of the standard encoder's time)."""
    body = kwargs.pop("json")
    try:
        data = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # a lone surrogate in free text: the standard encoder escapes it
        data = json.dumps(body, allow_nan=False).encode()
    headers = {**(kwargs.pop("headers", None) or {}), "Content-Type": "application/json"}
    return {**kwargs, "data": data, "headers": headers}


class Secret:
    """A value that refuses to show itself in reprs, logs and tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__


def session(pool_size: int) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies or netrc credentials from the environment
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def json_body(response: requests.Response):
    try:
        return orjson.loads(response.content)
    except ValueError:
        raise TransientError("truncated or invalid JSON") from None
