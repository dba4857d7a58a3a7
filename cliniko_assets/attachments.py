"""Patient attachments' bytes: downloaded to staging with their sha256, each failure kept with its reason.

Every attachment whose staged copy is missing or stale is fetched through Cliniko's redirect to a signed
URL (by the extraction's pool of workers); bytes whose length is not the size Cliniko records are not the
file. A file that cannot be had is skipped with a short, stable reason (the loads count it by that reason);
a refused key stops the resource. An attachment Cliniko is still processing has no bytes yet: it is asked
for by id at each sync until Cliniko has processed it (:func:`_processed`).
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from cliniko_assets.catalog import ClinikoResourceSpec, record_id
from cliniko_assets.crawl import staged_row
from cliniko_assets.references import ReferenceOutcome, fetch_by_id
from splose_resources.cliniko import (
    ClinikoAuthError,
    ClinikoError,
    ClinikoFileUnavailable,
    ClinikoNotFound,
    Download,
)

if TYPE_CHECKING:
    from cliniko_assets.extraction import Extraction, ResourceOutcome

log = logging.getLogger(__name__)
LOOKAHEAD = 256  # downloads asked for ahead of the oldest one not yet settled (many times the workers)


@dataclass
class FileStats:
    staged: int = 0
    downloaded: int = 0
    bytes_downloaded: int = 0
    waiting_for_processing: int = 0
    processed_since_listed: int = 0  # staged while Cliniko processed them, found processed when asked again
    failed: int = 0
    download_cpu_seconds: float = 0.0  # the downloads' CPU on the worker threads (not the listing's)

    def metadata(self) -> dict:
        return {
            "files_staged": self.staged,
            "files_downloaded": self.downloaded,
            "bytes_downloaded": self.bytes_downloaded,
            "files_waiting_for_processing": self.waiting_for_processing,
            "files_processed_since_listed": self.processed_since_listed,
            "files_failed": self.failed,
            "download_cpu_seconds": round(self.download_cpu_seconds, 3),
        }


def stage_files(
    extraction: Extraction, spec: ClinikoResourceSpec, pages: ThreadPoolExecutor, outcome: ResourceOutcome
) -> FileStats:
    """Download the bytes of every attachment whose staged copy is missing or stale.

    Downloads are asked for as the staged records are read, at most ``LOOKAHEAD`` ahead of the oldest
    not yet settled, so memory stays flat however many attachments the clinic has (a record is kept
    only while its download is on its way, and only when it goes to ``on_downloaded``).
    """
    stats = FileStats()
    cpu_before = extraction.download_cpu_seconds
    manifest = extraction.staging.read_files_manifest(extraction.tenant, spec.name).set_index("id", drop=False)
    if extraction.full_refresh:
        manifest = manifest.iloc[0:0]  # a rebuild fetches the bytes again too
    keep = extraction.on_downloaded is not None  # then each record goes with its bytes to the hook
    current: set[str] = set()
    stale: set[str] = set()
    rows: list[dict] = []
    failures: dict[str, str] = {}
    on_way: deque[tuple[Future, str, str | None, int | None, dict | None]] = deque()
    staged = extraction.staging.staged_files(extraction.tenant, spec.name)
    processing: list[dict] = []

    def ask(rid: str, record: dict) -> None:
        """Download the bytes of an attachment Cliniko has processed when its staged copy is missing or stale."""
        current.add(rid)
        updated = record.get("updated_at") or None
        known = manifest["record_updated_at"].get(rid, "missing") if rid in manifest.index else "missing"
        if known != updated or rid not in staged:
            stale.add(rid)
            future = pages.submit(extraction.download, spec.name, rid)
            on_way.append((future, rid, updated, record.get("size"), record if keep else None))
            while len(on_way) > LOOKAHEAD:
                _settle(extraction, spec, outcome, on_way.popleft(), rows, failures, stats)

    for records in extraction.staging.iter_records(extraction.tenant, spec.name):
        for record in records:
            rid = record_id(record)
            if rid is None or record["_state"] == "deleted":
                continue
            if record.get("processing_completed") is False:
                processing.append(record)  # asked for again below, once the staged records are read
                continue
            ask(rid, record)
    for record in _processed(extraction, spec, processing, stats):
        ask(record_id(record) or "", record)
    while on_way:
        _settle(extraction, spec, outcome, on_way.popleft(), rows, failures, stats)
    rows += manifest[manifest["id"].isin(current - stale)].to_dict("records")
    stats.staged = len(rows)
    stats.failed = len(failures)
    stats.download_cpu_seconds = extraction.download_cpu_seconds - cpu_before
    outcome.failed_files = [f"{rid}: {reason}" for rid, reason in sorted(failures.items())]
    extraction.staging.write_files_manifest(
        extraction.tenant, spec.name, pd.DataFrame(rows, columns=list(manifest.columns))
    )
    extraction.staging.write_file_failures(extraction.tenant, spec.name, failures)
    return stats


def _processed(
    extraction: Extraction, spec: ClinikoResourceSpec, processing: list[dict], stats: FileStats
) -> list[dict]:
    """The attachments staged while Cliniko was still processing them (``processing_completed: false``) that
    Cliniko has processed since, each asked for by id, staged again and returned (``_state``, ``_source`` kept).

    Cliniko's docs say to poll an attachment until it is processed and do not say that processing moves its
    ``updated_at``: an incremental listing may never return it again, so every sync asks for each one still
    waiting. One still processing (or that cannot be read now) is counted in ``waiting_for_processing`` and
    skipped by the load with that reason, as before.
    """
    found: list[dict] = []
    rows: list[dict] = []
    for record in processing:
        rid = record_id(record) or ""
        try:  # archived ones too, as the by-id pass asks (a 404 or 403 answers None)
            fresh, _ = fetch_by_id(extraction.client, spec.name, rid, ReferenceOutcome())
        except ClinikoError as exc:  # not readable now (a gone one's deletion is found by the listing)
            log.info("attachment %s of tenant %s not asked again: %s", rid, extraction.tenant, type(exc).__name__)
            fresh = None
        if not isinstance(fresh, dict) or record_id(fresh) != rid or fresh.get("processing_completed") is False:
            stats.waiting_for_processing += 1
            continue
        rows.append(staged_row(rid, fresh, record["_state"], record["_source"]))
        found.append({**fresh, "_state": record["_state"], "_source": record["_source"]})
    if found:
        batch = extraction.staging.batch(extraction.tenant, spec.name)
        batch.write_part(rows)
        batch.commit(replace=False)
        stats.processed_since_listed = len(found)
        log.info("%d attachments of tenant %s processed by Cliniko since listed", len(found), extraction.tenant)
    return found


def _settle(
    extraction: Extraction,
    spec: ClinikoResourceSpec,
    outcome: ResourceOutcome,
    entry: tuple[Future, str, str | None, int | None, dict | None],
    rows: list[dict],
    failures: dict[str, str],
    stats: FileStats,
) -> None:
    """One download's result: a manifest row (and the hook told), or the file's failure with its reason."""
    future, rid, updated, size, record = entry
    try:
        download = _checked(extraction, future.result(), size, spec.name, rid)
    except ClinikoAuthError as exc:  # the key itself: nothing else can be downloaded either
        outcome.error = exc
        failures[rid] = "the key was refused"
        return
    except ClinikoError as exc:  # this file alone: skipped and counted with its reason, the rest go on
        failures[rid] = _file_failure(exc)
        log.warning("attachment %s of tenant %s skipped: %s", rid, extraction.tenant, failures[rid])
        return
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
    if record is not None and extraction.on_downloaded is not None:
        extraction.on_downloaded(record, download.sha256, download.size)


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


def _checked(extraction: Extraction, download: Download, size: int | None, resource: str, rid: str) -> Download:
    """Bytes whose length is not the size Cliniko records are not the file (an error page served as 200)."""
    if isinstance(size, int) and download.size != size:
        extraction.staging.delete_file(extraction.tenant, resource, rid)
        raise _SizeDiffers(f"{download.size} bytes instead of {size}")
    return download
