"""The one retry policy shared by the Cliniko and Splose clients.

Transient failures (429, 5xx, timeouts, dropped connections, truncated bodies) are retried with
bounded, jittered backoff; a 429 waits until the server says the window resets. Everything else is
returned to the caller, which turns it into an error that says what to do.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

import requests
from requests.adapters import HTTPAdapter

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})


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
    max_attempts: int = 8
    max_rate_limited: int = 30
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_wait: float = 180.0

    def backoff(self, attempt: int) -> float:
        return random.uniform(0.5, 1.0) * min(self.backoff_cap, self.backoff_base * 2**attempt)

    def run(self, attempt_fn: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
        """Call ``attempt_fn`` until it returns, retrying :class:`TransientError` within the bounds."""
        failures = rate_limited = 0
        while True:
            try:
                return attempt_fn()
            except TransientError as exc:
                if exc.reason == "429":
                    rate_limited += 1
                    if rate_limited > self.max_rate_limited:
                        raise RetriesExhausted(exc.reason, failures + rate_limited) from None
                    delay = exc.wait if exc.wait is not None else self.backoff(rate_limited)
                else:
                    failures += 1
                    if failures >= self.max_attempts:
                        raise RetriesExhausted(exc.reason, failures + rate_limited) from None
                    delay = self.backoff(failures)
                sleep(min(self.max_wait, max(0.0, delay)))


def classify_response(response: requests.Response) -> None:
    """Raise :class:`TransientError` for responses worth another try."""
    if response.status_code == 429:
        raise TransientError("429", rate_limit_wait(response))
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
    try:
        return session.request(method, url, allow_redirects=False, **kwargs)
    except requests.Timeout:
        raise TransientError("timeout") from None
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
        raise TransientError("connection dropped") from None


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
        return json.loads(response.content)
    except ValueError:
        raise TransientError("truncated or invalid JSON") from None
