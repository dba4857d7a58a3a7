"""``splose/files``: patient attachments as files, uploaded in batches, each checksum verified by Splose.

A file Splose already holds as it is (same bytes' sha256 and fields: :mod:`cliniko_assets.changes`) is
counted ``unchanged`` and neither read from staging nor sent. The others go up to ``FILES_PER_BATCH`` at a
time (or ``BATCH_BYTES``, a larger file alone), each streamed from staging; Splose stores or refuses each
file of a batch on its own, and a refused file is counted rejected with Splose's message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from cliniko_assets.attention import GONE
from cliniko_assets.catalog import record_id
from cliniko_assets.in_flight import InFlight
from cliniko_assets.reconciliation import RowReport
from cliniko_assets.sinks import CREATED, Sink
from cliniko_assets.transforms import Skip, to_splose_file
from splose_resources.splose import FileBatchResult, FileUpload, SploseRequestError

if TYPE_CHECKING:
    from cliniko_assets.loading import LoadRun

FILES_PER_BATCH = 50
BATCH_BYTES = 32 * 2**20
STREAM_SECONDS = 2.0  # files handed over as they download go up at least this often (a batch need not fill)


@dataclass
class FileBatch:
    """Files waiting to be sent together, by Cliniko id; each batch goes out through ``sent`` (several on
    their way at once, each streamed from staging by a thread of its own) and its answer is counted here."""

    run: LoadRun
    report: RowReport
    sent: InFlight[FileBatchResult | SploseRequestError]
    pending: dict[str, FileUpload] = field(default_factory=dict)
    size: int = 0
    checksum_mismatches: int = 0
    cpu_seconds: list[float] = field(default_factory=list)  # CPU the load took, on any thread (appended: thread-safe)
    max_wait: float | None = None  # seconds the first file of a batch may wait for it to fill (None: no limit)
    first_added: float = 0.0

    def add(self, aid: str, upload: FileUpload, size: int) -> None:
        held = self.run.writes().held_file(upload)
        if held is not None:
            self.count(aid, held, upload)
            return
        if self.pending and self.size + size > BATCH_BYTES:
            self.flush()
        if not self.pending:
            self.first_added = time.monotonic()
        self.pending[aid] = upload
        self.size += size
        waited = time.monotonic() - self.first_added
        if len(self.pending) >= FILES_PER_BATCH or (self.max_wait is not None and waited >= self.max_wait):
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        uploads, self.pending, self.size = self.pending, {}, 0
        self.sent.send(
            partial(_upload, self.run.writes(), list(uploads.values()), self.cpu_seconds),
            partial(self._answered, uploads),
        )

    def _answered(self, uploads: dict[str, FileUpload], result: FileBatchResult | SploseRequestError) -> None:
        if isinstance(result, SploseRequestError):  # the batch as a whole was refused: every file in it is counted
            for aid in uploads:
                self.report.reject(aid, str(result))
            return
        for aid, upload in uploads.items():
            if upload.external_id in result.errors:
                self.report.reject(aid, result.errors[upload.external_id])
            elif upload.external_id in result.answers:
                self.count(aid, result.answers[upload.external_id], upload)
            else:
                self.report.reject(aid, "Splose answered nothing for this file of the batch")

    def count(self, aid: str, answer: dict, upload: FileUpload) -> None:
        if answer.get("sha256") and answer["sha256"] != upload.sha256:
            self.checksum_mismatches += 1
            self.report.reject(aid, "checksum mismatch after upload")
            return
        action = answer.get("action", CREATED)
        setattr(self.report, action, getattr(self.report, action) + 1)


def _upload(sink: Sink, files: list[FileUpload], cpu: list[float]) -> FileBatchResult | SploseRequestError:
    started = time.thread_time()
    try:
        return sink.upload_files(files)
    except SploseRequestError as exc:
        return exc
    finally:
        cpu.append(time.thread_time() - started)


class FileUploads:
    """``splose/files`` of one run: files go up as they are handed over (:meth:`downloaded`, while the
    attachment step still downloads the rest), then :meth:`rest` counts every staged attachment and sends
    what was not sent yet (unchanged files, those downloaded by an earlier run)."""

    def __init__(self, run: LoadRun, report: RowReport, sent: InFlight[FileBatchResult | SploseRequestError]) -> None:
        started = time.thread_time()
        self.run = run
        self.report = report
        self.batch = FileBatch(run, report, sent, max_wait=STREAM_SECONDS)
        self.ctx = run.import_context("clients")
        run.writes().crosswalk("files")  # read here, not on the thread that hands files over
        self.sent_early: set[str] = set()
        self.batch.cpu_seconds.append(time.thread_time() - started)  # the load's set-up: mapping, crosswalks read

    def downloaded(self, attachment: dict, sha256: str, size: int) -> None:
        """An attachment whose bytes were just staged: sent with the next batch if it is to be loaded (any
        other is counted by :meth:`rest`, with its reason)."""
        started = time.thread_time()
        aid = record_id(attachment) or ""
        upload = self._upload(aid, attachment, sha256, size)
        if isinstance(upload, FileUpload):
            self.sent_early.add(aid)
            self.batch.add(aid, upload, size)
            self.run.advance()
        self.batch.cpu_seconds.append(time.thread_time() - started)

    def rest(self) -> None:
        started = time.thread_time()
        run, report = self.run, self.report
        self.batch.max_wait = None  # read from staging: batches fill at once
        manifest = run.staging.read_files_manifest(run.tenant, "patient_attachments").set_index("id")
        failures = run.staging.read_file_failures(run.tenant, "patient_attachments")
        if run.tracker is not None:
            run.tracker.total = run.count("patient_attachments")
        for attachment in run.records("patient_attachments"):
            report.cliniko += 1
            aid = record_id(attachment) or ""
            if aid in self.sent_early:  # counted when Splose answered its batch
                continue
            run.advance()
            if attachment.get("_state") == "deleted":
                report.skip("deleted in Cliniko", record_id=aid)
                run.retire(report, "files", aid, "deleted in Cliniko")
                continue
            if attachment.get("processing_completed") is False:
                report.skip("not yet processed by Cliniko", record_id=aid)
                continue
            if aid not in manifest.index:
                report.skip(failures.get(aid, "bytes could not be downloaded from Cliniko"), record_id=aid)
                continue
            staged = manifest.loc[aid]
            upload = self._upload(aid, attachment, str(staged["sha256"]), int(staged["size"]))
            if isinstance(upload, Skip):
                report.skip(upload.reason, record_id=aid)
                if upload.reason in GONE:
                    run.retire(report, "files", aid, upload.reason)
                continue
            self.batch.add(aid, upload, int(staged["size"]))
        self.batch.flush()
        self.batch.cpu_seconds.append(time.thread_time() - started)

    def metadata(self) -> dict:
        """Once every batch is answered; with the CPU seconds the load took (in a step that also downloads, the
        part of its CPU that is the load's): the uploads on their threads, and on the step's own the load's
        set-up (the mapping and crosswalks read), each file handed over and the rest counted and sent."""
        return {
            "checksum_mismatches": self.batch.checksum_mismatches,
            "checksums_verified": self.report.loaded,
            "upload_cpu_seconds": round(sum(self.batch.cpu_seconds), 3),
        }

    def _upload(self, aid: str, attachment: dict, sha256: str, size: int) -> FileUpload | Skip:
        form = to_splose_file(attachment, sha256, size)
        if isinstance(form, Skip):
            return form
        if form["clientExternalId"] not in self.ctx.imported["clients"]:
            return Skip(aid, "client not imported")
        return FileUpload(
            external_id=form["externalId"],
            client_external_id=form["clientExternalId"],
            content=partial(self.run.staging.file_reader, self.run.tenant, "patient_attachments", aid),
            filename=form.get("filename"),
            content_type=form.get("contentType"),
            description=form.get("description"),
            created_at=form.get("createdAt"),
            sha256=form.get("sha256"),
        )


@contextmanager
def file_uploads(run: LoadRun, report: RowReport) -> Iterator[FileUploads]:
    """Uploads for the run's files; every batch is answered when this exits."""
    sink = run.writes()
    with InFlight[FileBatchResult | SploseRequestError](sink.in_flight, "upload-files", sink.stop) as sent:
        yield FileUploads(run, report, sent)


def load_files(run: LoadRun, report: RowReport) -> dict:
    """Every staged attachment, from staging (the preview's, or a run that does not download them)."""
    with file_uploads(run, report) as uploads:
        uploads.rest()
    return uploads.metadata()
