"""Extracting a tenant's Cliniko resources into staging: the one paging loop.

Every page of every selected resource goes through one pool of worker threads that share the key's
request budget, so the budget is used whatever the mix of resources. Page 1 of a route gives
``total_entries``; the remaining pages are requested in parallel by number (the documented ``page``
parameter on the first page's own ``links.self``, which keeps ``q[]`` and ``per_page``), and any
``links.next`` past the last expected page is followed, so records added mid-crawl are not missed.

Progress is checkpointed with the parts it produced: a run that dies resumes with only the pages it
had not staged. The cursor handed to the next sync is the newest ``updated_at`` staged, but never
later than the moment this crawl started (by the server's clock), so a record changed during the
crawl is asked for again next time.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pandas as pd

from cliniko_assets.catalog import ClinikoResourceSpec, Stream, record_id
from splose_resources.cliniko import (
    ClinikoAuthError,
    ClinikoClient,
    ClinikoError,
    ClinikoFileUnavailable,
    ClinikoNotFound,
    Download,
)
from splose_resources.staging import CommitStats, StagingBatch, StagingStore

PER_PAGE = 100
CHECKPOINT_EVERY_PAGES = 5
TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"

log = logging.getLogger(__name__)


@dataclass
class FileStats:
    staged: int = 0
    downloaded: int = 0
    bytes_downloaded: int = 0
    waiting_for_processing: int = 0
    failed: int = 0


@dataclass
class ResourceOutcome:
    spec: ClinikoResourceSpec
    mode: str = "full"
    fetched: int = 0
    unreadable: int = 0
    requests: int = 0
    duration_seconds: float = 0.0
    cursor: str | None = None
    stats: CommitStats | None = None
    files: FileStats | None = None
    error: BaseException | None = None
    failed_files: list[str] = field(default_factory=list)


class Extraction:
    """One tenant's extraction of a set of resources, run by :meth:`run`."""

    def __init__(
        self,
        client: ClinikoClient,
        staging: StagingStore,
        tenant: str,
        *,
        workers: int,
        overlap_seconds: int = 120,
        full_refresh: bool = False,
    ) -> None:
        self.client = client
        self.staging = staging
        self.tenant = tenant
        self.workers = workers
        self.overlap = timedelta(seconds=overlap_seconds)
        self.full_refresh = full_refresh
        self._stop = threading.Event()

    def run(self, specs: list[ClinikoResourceSpec], cursors: dict[str, str | None]) -> Iterator[ResourceOutcome]:
        """Extract ``specs`` concurrently, yielding each resource's outcome as soon as it is committed."""
        with (
            ThreadPoolExecutor(self.workers, thread_name_prefix="cliniko") as pages,
            ThreadPoolExecutor(max(1, len(specs)), thread_name_prefix="resource") as coordinators,
        ):
            futures = {coordinators.submit(self._extract, spec, cursors.get(spec.name), pages): spec for spec in specs}
            try:
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            finally:
                self._stop.set()

    def _extract(self, spec: ClinikoResourceSpec, cursor: str | None, pages: ThreadPoolExecutor) -> ResourceOutcome:
        outcome = ResourceOutcome(spec=spec)
        started = time.monotonic()
        requests_before = self.client.requests_made(spec.name)
        try:
            self._extract_into(outcome, spec, cursor, pages)
        except ClinikoError as exc:
            outcome.error = exc
        except Exception as exc:  # reported with the resource's name; the other resources go on
            log.exception("extraction of %s failed", spec.name)
            outcome.error = exc
        outcome.requests = self.client.requests_made(spec.name) - requests_before
        outcome.duration_seconds = round(time.monotonic() - started, 3)
        return outcome

    def _extract_into(
        self, outcome: ResourceOutcome, spec: ClinikoResourceSpec, cursor: str | None, pages: ThreadPoolExecutor
    ) -> None:
        batch = self.staging.batch(self.tenant, spec.name)
        since = None
        if spec.incremental and cursor and not self.full_refresh and self.staging.has_data(self.tenant, spec.name):
            since = _format(_parse(cursor) - self.overlap)
        replace = since is None
        checkpoint = batch.load_checkpoint()
        if checkpoint and checkpoint.get("since") == since and checkpoint.get("replace") == replace:
            outcome.mode = "resumed"
        else:
            batch.discard()
            checkpoint = {"since": since, "replace": replace, "started_at": None, "streams": {}}
            outcome.mode = "full" if replace else "incremental"
        crawl = _Crawl(self, spec, batch, checkpoint, outcome, pages)
        for stream in spec.streams:
            crawl.stream(stream, since)
        crawl.flush()
        outcome.stats = batch.commit(replace=replace)
        newest = outcome.stats.max_updated_at
        started_at = checkpoint.get("started_at")
        outcome.cursor = min(filter(None, (newest, started_at)), default=None) if spec.incremental else newest
        if spec.has_files:
            outcome.files = self._stage_files(spec, pages, outcome)

    def _stage_files(self, spec: ClinikoResourceSpec, pages: ThreadPoolExecutor, outcome: ResourceOutcome) -> FileStats:
        """Download the bytes of every attachment whose staged copy is missing or stale."""
        stats = FileStats()
        manifest = self.staging.read_files_manifest(self.tenant, spec.name).set_index("id", drop=False)
        if self.full_refresh:
            manifest = manifest.iloc[0:0]  # a rebuild fetches the bytes again too
        wanted: list[tuple[str, str | None, Path, int | None]] = []
        current: set[str] = set()
        for records in self.staging.iter_records(self.tenant, spec.name):
            for record in records:
                rid = record_id(record)
                if rid is None or record["_state"] == "deleted":
                    continue
                if record.get("processing_completed") is False:
                    stats.waiting_for_processing += 1
                    continue
                current.add(rid)
                path = self.staging.file_path(self.tenant, spec.name, rid)
                updated = record.get("updated_at") or None
                known = manifest["record_updated_at"].get(rid, "missing") if rid in manifest.index else "missing"
                if known != updated or not path.exists():
                    wanted.append((rid, updated, path, record.get("size")))
        stale = {rid for rid, _, _, _ in wanted}
        rows = manifest[manifest["id"].isin(current - stale)].to_dict("records")
        futures: dict[Future, tuple[str, str | None, int | None]] = {}
        for rid, updated, path, size in wanted:
            url = self.client.url(f"/patient_attachments/{rid}/content")
            futures[pages.submit(self._download, url, path, spec.name)] = (rid, updated, size)
        failures: dict[str, str] = {}
        for future in list(futures):
            rid, updated, size = futures[future]
            try:
                download = _checked(future.result(), size, self.staging.file_path(self.tenant, spec.name, rid))
            except ClinikoAuthError as exc:  # the key itself: nothing else can be downloaded either
                outcome.error = exc
                failures[rid] = "the key was refused"
                continue
            except ClinikoError as exc:  # this file alone: skipped and counted with its reason, the rest go on
                failures[rid] = _file_failure(exc)
                log.warning("attachment %s of tenant %s skipped: %s", rid, self.tenant, failures[rid])
                continue
            stats.downloaded += 1
            stats.bytes_downloaded += download.size
            rows.append(
                {
                    "id": rid,
                    "sha256": download.sha256,
                    "size": download.size,
                    "content_type": download.content_type,
                    "record_updated_at": updated,
                }
            )
        stats.staged = len(rows)
        stats.failed = len(failures)
        outcome.failed_files = [f"{rid}: {reason}" for rid, reason in sorted(failures.items())]
        self.staging.write_files_manifest(self.tenant, spec.name, pd.DataFrame(rows, columns=list(manifest.columns)))
        self.staging.write_file_failures(self.tenant, spec.name, failures)
        return stats

    def _download(self, url: str, path: Path, resource: str):
        if self._stop.is_set():
            raise ClinikoError("extraction stopped")
        return self.client.download(url, path, resource=resource)

    def fetch(self, url: str, spec: ClinikoResourceSpec):
        if self._stop.is_set():
            raise ClinikoError("extraction stopped")
        return self.client.get_page(url, resource=spec.name, list_key=spec.list_key)


class _Crawl:
    """The pages of one resource's routes, buffered into parts with a checkpoint."""

    def __init__(
        self,
        extraction: Extraction,
        spec: ClinikoResourceSpec,
        batch: StagingBatch,
        checkpoint: dict,
        outcome: ResourceOutcome,
        pages: ThreadPoolExecutor,
    ) -> None:
        self.extraction = extraction
        self.spec = spec
        self.batch = batch
        self.checkpoint = checkpoint
        self.outcome = outcome
        self.pages = pages
        self.buffer: list[dict] = []

    def stream(self, stream: Stream, since: str | None) -> None:
        state = self.checkpoint["streams"].setdefault(stream.name, {"done": [], "total_pages": None, "complete": False})
        if state["complete"]:
            return
        client = self.extraction.client
        params: list[tuple[str, str]] = [("q[]", f) for f in stream.filters]
        if since:
            params.append(("q[]", f"{'deleted_at' if stream.deletions else 'updated_at'}:>={since}"))
        params.append(("per_page", str(PER_PAGE)))
        first_url = state.get("first_url") or f"{client.url(stream.path)}?{urlencode(params)}"
        done = set(state["done"])
        last_next: str | None = None
        if 1 not in done:
            page = self.extraction.fetch(_with_page(first_url, 1), self.spec)
            if self.checkpoint.get("started_at") is None:
                self.checkpoint["started_at"] = page.server_time or datetime.now(UTC).strftime(TIMESTAMP)
            state["first_url"] = page.self_url
            total = page.total_entries
            state["total_pages"] = max(1, math.ceil(total / PER_PAGE)) if total is not None else None
            self.take(stream, page.records)
            done.add(1)
            last_next = page.next_url if state["total_pages"] in (None, 1) else None
            self.save(state, done)
        total_pages = state["total_pages"]
        if total_pages is not None:
            numbers = [n for n in range(2, total_pages + 1) if n not in done]
            futures = {
                self.pages.submit(self.extraction.fetch, _with_page(state["first_url"], n), self.spec): n
                for n in numbers
            }
            try:
                for future in _as_completed(futures):
                    page = future.result()
                    number = futures.pop(future)  # drop the page once staged: memory stays bounded
                    self.take(stream, page.records)
                    done.add(number)
                    if number == total_pages:
                        last_next = page.next_url
                    if len(done) % CHECKPOINT_EVERY_PAGES == 0:
                        self.save(state, done)
            finally:
                for future in futures:
                    future.cancel()
        # Records added while the crawl ran push the collection past the last page it expected.
        while last_next:
            page = self.extraction.fetch(last_next, self.spec)
            self.take(stream, page.records)
            last_next = page.next_url
        state["complete"] = True
        self.save(state, done)

    def take(self, stream: Stream, records: list[dict]) -> None:
        for record in records:
            self.outcome.fetched += 1
            rid = record_id(record) if isinstance(record, dict) else None
            if rid is None:
                self.outcome.unreadable += 1
                continue
            updated = record.get("updated_at") or None
            self.buffer.append(
                {
                    "id": rid,
                    "updated_at": str(updated) if updated else None,
                    "state": self.spec.state(record, stream.name),
                    "source": stream.name,
                    "record": json.dumps(record, ensure_ascii=False, separators=(",", ":")),
                }
            )

    def flush(self) -> None:
        self.batch.write_part(self.buffer)
        self.buffer = []

    def save(self, state: dict, done: set[int]) -> None:
        self.flush()
        state["done"] = sorted(done)
        self.batch.save_checkpoint(self.checkpoint)


FILE_NOT_FOUND = "attachment not found in Cliniko (API 404)"
FILE_SIZE_DIFFERS = "file unreadable: its bytes differ from the size Cliniko records"
FILE_KEPT_FAILING = "file could not be downloaded (Cliniko kept failing)"


def _file_failure(error: ClinikoError) -> str:
    """The short, stable reason an attachment is skipped (its counts are grouped by it)."""
    if isinstance(error, ClinikoFileUnavailable):
        return error.reason
    if isinstance(error, ClinikoNotFound):
        return FILE_NOT_FOUND
    if isinstance(error, _SizeDiffers):
        return FILE_SIZE_DIFFERS
    return FILE_KEPT_FAILING


class _SizeDiffers(ClinikoError):
    pass


def _checked(download: Download, size: int | None, path: Path) -> Download:
    """Bytes whose length is not the size Cliniko records are not the file (an error page served as 200)."""
    if isinstance(size, int) and download.size != size:
        path.unlink(missing_ok=True)
        raise _SizeDiffers(f"{download.size} bytes instead of {size}")
    return download


def _as_completed(futures: dict[Future, int]) -> Iterator[Future]:
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from done


def _with_page(url: str, number: int) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "page"]
    query.append(("page", str(number)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def _format(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIMESTAMP)
