"""Progress lines for long steps: what is done, of how many, at what rate, and about how long is left.

Written to the run's log (``context.log``) at a steady cadence (every :data:`EVERY_SECONDS`), so a data
engineer watching a run in the UI (or ``make demo``) sees it move instead of minutes of silence.
Counts only, never a record.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from splose_resources.cliniko import Page

Log = logging.Logger | dg.DagsterLogManager

EVERY_SECONDS = 15.0
# Query parameters that place a page inside a listing rather than say which listing it is.
POSITION = ("sort", "per_page", "page")


def duration(seconds: float) -> str:
    """``1h 05m``, ``3m 20s`` or ``12s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def eta(remaining: float, rate: float) -> str:
    return duration(remaining / rate) if rate > 0 and remaining > 0 else "-"


class LoadProgress:
    """One load's records as they are sent to Splose, logged at most every ``every`` seconds."""

    def __init__(
        self,
        log: Log,
        what: str,
        total: int | None,
        *,
        every: float = EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.what = what
        self.total = total
        self.every = every
        self.clock = clock
        self.done = 0
        self.started = clock()
        self.logged = self.started

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = self.clock()
        if now - self.logged >= self.every:
            self.logged = now
            self.log.info(self.line(now))

    def line(self, now: float) -> str:
        rate = self.done / max(now - self.started, 1e-9)
        if not self.total:
            return f"{self.what}: {self.done:,} records, {rate:,.0f} records/s"
        share = min(100, math.floor(100 * self.done / self.total))
        left = eta(self.total - self.done, rate)
        return f"{self.what}: {self.done:,} of {self.total:,} records ({share}%), {rate:,.0f} records/s, {left} left"


@dataclass
class _Counts:
    pages: int = 0
    records: int = 0
    files: int = 0
    file_bytes: int = 0
    expected: dict[tuple, int] = field(default_factory=dict)  # listing -> records Cliniko counts in it
    per_page: dict[tuple, int] = field(default_factory=dict)


class ExtractionProgress:
    """A tenant's extraction, told by the Cliniko client of every page and file (from its worker threads).

    The extraction calls :meth:`tick` from the step's own thread at least every few seconds, also while
    every worker waits for Cliniko's budget; a line is logged every ``every`` seconds. "Of how many" is the
    sum of the counts Cliniko gives on the first page of each listing (a hint: it grows as later listings
    start); the time left is for the pages and file downloads still to request, at the key's request budget
    (spent as each window opens).
    """

    def __init__(
        self,
        log: Log,
        subject: str,
        requests_made: Callable[[], int],
        budget: tuple[int, float],
        *,
        file_resources: frozenset[str] = frozenset(),
        every: float = EVERY_SECONDS,
    ) -> None:
        self.log = log
        self.subject = subject  # e.g. "cliniko/patients of tenant 'clinic-a'"
        self.requests_made = requests_made
        self.per_window, self.window = budget  # Cliniko's: requests per fixed window, the window in seconds
        self.file_resources = file_resources  # each of their records is a download, one request more
        self.every = every
        self.counts = _Counts()
        self.lock = threading.Lock()
        self.started = self.logged = time.monotonic()

    def __enter__(self) -> ExtractionProgress:
        return self

    def __exit__(self, *_: object) -> None:
        self.log.info(self.line(time.monotonic(), final=True))

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.logged >= self.every:
            self.logged = now
            self.log.info(self.line(now))

    def page(self, resource: str, params: list[tuple[str, str]], page: Page) -> None:
        query = dict(params)
        per_page = int(query.get("per_page") or 0)
        if per_page <= 1:
            return  # a count probe, not a page of records
        listing = (resource, *sorted(p for p in params if p[0] not in POSITION and not _id_bound(p)))
        with self.lock:
            self.counts.pages += 1
            self.counts.records += len(page.records)
            first = not any(_id_bound(p) for p in params) and query.get("page", "1") == "1"
            if first and page.total_entries is not None:
                self.counts.expected[listing] = page.total_entries
                self.counts.per_page[listing] = per_page

    def file(self, resource: str, size: int) -> None:
        with self.lock:
            self.counts.files += 1
            self.counts.file_bytes += size

    def line(self, now: float, final: bool = False) -> str:
        with self.lock:
            counts = self.counts
            expected = sum(counts.expected.values())
            pages_expected = sum(-(-n // counts.per_page[key]) for key, n in counts.expected.items())
            files_expected = sum(n for key, n in counts.expected.items() if key[0] in self.file_resources)
            records, pages, files, size = counts.records, counts.pages, counts.files, counts.file_bytes
        remaining = max(0, pages_expected - pages) + max(0, files_expected - files)
        elapsed = max(now - self.started, 1e-9)
        requests = self.requests_made()
        head = f"Extraction of {self.subject}" + (" done" if final else "")
        if expected:
            share = min(100, math.floor(100 * records / expected))
            done = (
                f"{records:,} of ~{expected:,} records ({share}%), {pages:,} of ~{max(pages, pages_expected):,} pages"
            )
        else:
            done = f"{records:,} records, {pages:,} pages"
        files_part = f", {files:,} files ({size / 1e6:,.1f} MB)" if files else ""
        left = "" if final else f", about {self.time_left(requests, remaining, elapsed)} left at the request budget"
        return (
            f"{head}: {done}{files_part}; {requests:,} requests in {duration(elapsed)} "
            f"({60 * requests / elapsed:,.0f}/min), {records / elapsed:,.0f} records/s{left}"
        )

    def time_left(self, requests: int, remaining: int, elapsed: float) -> str:
        """When the last request can be sent: a window's budget is spent as soon as it opens, so the time left
        is to the opening of the window that holds the last one (or, within this window, at the rate so far)."""
        if remaining <= 0:
            return "-"
        windows = math.ceil((requests + remaining) / self.per_window) if self.per_window > 0 else 1
        waiting = (windows - 1) * self.window - elapsed
        return duration(waiting) if waiting > 0 else eta(remaining, requests / elapsed)


def _id_bound(param: tuple[str, str]) -> bool:
    return param[0] == "q[]" and param[1].startswith(("id:>", "id:<"))
