"""One request budget per API key, shared by every thread and process on the host that uses the key.

The budget is kept as a sliding log of send times in a small file per key (named by a hash of the
key, never the key), guarded by ``flock``. Every extraction of a tenant runs in one process and the
run queue allows one run per tenant, so in a deployment the key's traffic also comes from one host;
the file lock makes the guarantee hold even when a second process on that host (a manual re-run, a
key shared by two tenants) uses the same key at the same time.

A sliding log is stricter than the fixed windows APIs count in: if no span of ``window`` seconds
holds more than ``limit`` sends, no fixed window can either. ``margin`` widens the span a little so
that differences in network delay between two requests cannot push 201 arrivals into one window.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
import time
from array import array
from pathlib import Path

_STAMP = array("d").itemsize


def default_state_dir() -> Path:
    return Path(os.environ.get("RATE_LIMIT_STATE_DIR") or Path(tempfile.gettempdir()) / f"rate-limits-{os.getuid()}")


class SlidingWindowLimiter:
    """Blocks in :meth:`acquire` until one more request fits in the key's budget."""

    def __init__(
        self,
        *,
        scope: str,
        secret: str,
        limit: int,
        window_seconds: float,
        state_dir: Path | None = None,
        margin_fraction: float = 0.005,
        margin_seconds: float = 0.05,
    ) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("a rate limit needs limit >= 1 and window_seconds > 0")
        self.limit = limit
        self.span = window_seconds * (1 + margin_fraction) + margin_seconds
        digest = hashlib.sha256(f"{scope}\0{secret}".encode()).hexdigest()[:24]
        directory = state_dir or default_state_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = directory / f"{scope}-{digest}.log"
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one slot, sleeping while the budget is spent; returns the seconds waited."""
        waited = 0.0
        while True:
            wait = self._try_take()
            if wait <= 0:
                return waited
            time.sleep(wait)
            waited += wait

    def _try_take(self) -> float:
        with self._lock, open(self.path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            raw = handle.read()
            stamps = array("d")
            stamps.frombytes(raw[: len(raw) - len(raw) % _STAMP])
            now = time.time()
            recent = [t for t in stamps if t > now - self.span][-self.limit :]
            if len(recent) >= self.limit:
                return recent[0] + self.span - now
            recent.append(now)
            handle.seek(0)
            handle.truncate()
            handle.write(array("d", recent).tobytes())
            return 0.0
