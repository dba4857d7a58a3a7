"""One request budget per API key, shared by every thread and process on the host that uses the key.

Two ways of counting, each as its server counts:

- :class:`FixedWindowLimiter` (Cliniko: "200 per minute", a 429 carrying the epoch second the window
  resets). Window ``k`` covers ``[phase + k*W, phase + (k+1)*W)`` and holds at most ``limit`` sends, so a
  client can spend a whole window's budget the moment it opens instead of trickling it out, and never
  puts more than ``limit`` into one of the server's windows. The phase starts at 0 (windows aligned to
  the epoch, as the server's are when it says nothing else) and is learned from the first
  ``X-RateLimit-Reset`` the server sends (:meth:`FixedWindowLimiter.observe_reset`). Sends stay
  ``margin`` seconds inside each window on both sides, so clock skew and network delay cannot carry a
  request into the neighbouring window.
- :class:`SlidingWindowLimiter` (Splose: a sliding window). No span of ``W`` seconds, anywhere, holds more
  than ``limit`` sends: a send waits until the ``limit``-th most recent one is ``W + margin`` old, the
  margin covering the network delay between a send and its arrival.

The state (a small file per key, named by a hash of the key, never the key, and private to the user)
lives under ``flock``: every thread and process on the host shares one budget. Every extraction of a
tenant runs in one process and the run queue allows one run per tenant, so a key's traffic comes from one
process: the fixed-window limiter takes, in one locked write, a slot for every thread of the process then
waiting (the extraction's workers wait together as a window opens), instead of a write per request.
Past one host the same budgets live in Postgres (:mod:`splose_resources.shared_limits`).
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import struct
import tempfile
import threading
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from splose_resources.staging import private_dir

_STATE = struct.Struct("<ddd")  # phase, window index, sends in that window


def default_state_dir() -> Path:
    configured = os.environ.get("RATE_LIMIT_STATE_DIR")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / f"rate-limits-{os.getuid()}"


class Stopped(Exception):
    """A wait given up because the run it was for is stopping (its ``stop`` event was set)."""


def pause(seconds: float, stop: threading.Event | None = None) -> None:
    """Sleep ``seconds``, or raise :class:`Stopped` as soon as ``stop`` is set."""
    if stop is None:
        time.sleep(seconds)
    elif stop.wait(seconds):
        raise Stopped


class RateLimiter(Protocol):
    def acquire(self, stop: threading.Event | None = None) -> float: ...


class WindowLimiter(RateLimiter, Protocol):
    """A limiter that learns the server's windows from its reset times (Cliniko's ``X-RateLimit-Reset``)."""

    def observe_reset(self, reset_epoch: float) -> None: ...


class _SharedBudget:
    """What both limiters share: the key's state file, locked across threads and processes."""

    suffix = "budget"

    def __init__(
        self,
        *,
        scope: str,
        secret: str,
        limit: int,
        window_seconds: float,
        state_dir: Path | None = None,
        margin_seconds: float | None = None,
    ) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("a rate limit needs limit >= 1 and window_seconds > 0")
        self.limit = limit
        self.window = window_seconds
        self.margin = min(0.25, window_seconds * 0.01) if margin_seconds is None else margin_seconds
        digest = hashlib.sha256(f"{scope}\0{secret}".encode()).hexdigest()[:24]
        directory = private_dir(state_dir or default_state_dir())
        self.path = directory / f"{scope}-{digest}.{self.suffix}"
        self._lock = threading.Lock()

    def acquire(self, stop: threading.Event | None = None) -> float:
        """Take one slot, sleeping while the budget is spent (:class:`Stopped` once ``stop`` is set); returns the
        seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                wait = self._try_take()
            if wait <= 0:
                return waited
            pause(wait, stop)
            waited += wait

    def _try_take(self) -> float:
        raise NotImplementedError

    @contextmanager
    def _raw_state(self) -> Iterator[bytearray]:
        """The key's state bytes, locked against every other thread and process; written back if changed."""
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            state = bytearray(handle.read())
            original = bytes(state)
            yield state
            # Rewritten in place, cut only when it shrank: most writes keep its size, and a truncate on every
            # one cost a metadata update per slot taken.
            if bytes(state) != original:
                handle.seek(0)
                handle.write(state)
                if len(state) < len(original):
                    handle.truncate()


class SlidingWindowLimiter(_SharedBudget):
    """At most ``limit`` sends in any span of ``window_seconds`` (plus the margin), wherever the span starts."""

    suffix = "sliding"

    def _try_take(self) -> float:
        with self._raw_state() as state:
            sends = array("d", bytes(state))
            now = time.time()
            recent = sorted(t for t in sends if t > now - self.window - self.margin)
            if len(recent) >= self.limit:
                return recent[-self.limit] + self.window + self.margin - now
            recent.append(now)
            state[:] = array("d", recent[-self.limit :]).tobytes()
            return 0.0


class FixedWindowLimiter(_SharedBudget):
    """Blocks in :meth:`acquire` until one more request fits in the key's budget of the current window.

    Slots taken for threads of this process are held in memory until the window closes: a thread that
    finds one sends without touching the file.
    """

    suffix = "window"

    def __init__(self, **settings) -> None:
        super().__init__(**settings)
        self._held = 0  # slots of the current window taken for this process's waiting threads
        self._held_until = 0.0
        self._waiting = 0
        self._waiting_lock = threading.Lock()

    def acquire(self, stop: threading.Event | None = None) -> float:
        with self._waiting_lock:
            self._waiting += 1
        try:
            return super().acquire(stop)
        finally:
            with self._waiting_lock:
                self._waiting -= 1

    def observe_reset(self, reset_epoch: float) -> None:
        """The server said its window ends at ``reset_epoch``: align to it and treat this window as spent."""
        with self._lock, self._state() as state:
            state[0] = reset_epoch % self.window
            now = time.time()
            state[1] = math.floor((now - state[0]) / self.window)
            state[2] = self.limit
            self._held = 0

    def _try_take(self) -> float:
        """One slot: held already, or taken from the file with one more for each other waiting thread."""
        if self._held and time.time() < self._held_until:
            self._held -= 1
            return 0.0
        with self._state() as state:
            phase, window, sends = state
            now = time.time()
            current = math.floor((now - phase) / self.window)
            start = phase + current * self.window
            if current != window:
                window, sends = current, 0
            if sends >= self.limit or now > start + self.window - self.margin:
                return start + self.window + self.margin - now
            if now < start + self.margin:
                return start + self.margin - now
            taken = int(min(self.limit - sends, max(1, self._waiting)))
            state[:] = [phase, window, sends + taken]
            self._held, self._held_until = taken - 1, start + self.window - self.margin
            return 0.0

    @contextmanager
    def _state(self) -> Iterator[list[float]]:
        """Phase, window index and sends in it; written back if changed."""
        with self._raw_state() as raw:
            values = list(_STATE.unpack(raw[: _STATE.size])) if len(raw) >= _STATE.size else [0.0, -1.0, 0.0]
            original = list(values)
            yield values
            if values != original:
                raw[:] = _STATE.pack(*values)
