"""``splose/files``: patient attachments as files, uploaded in batches, each checksum verified by Splose.

A file Splose already holds as it is (same bytes' sha256 and fields: :mod:`cliniko_assets.changes`) is
counted ``unchanged`` and neither read from staging nor sent. The others go up to ``FILES_PER_BATCH`` at a
time (or ``BATCH_BYTES``, a larger file alone), each streamed from staging; Splose stores or refuses each
file of a batch on its own, and a refused file is counted rejected with Splose's message.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from cliniko_assets.catalog import record_id
from cliniko_assets.reconciliation import RowReport
from cliniko_assets.sinks import CREATED
from cliniko_assets.transforms import Skip, to_splose_file
from splose_resources.splose import FileBatchResult, FileUpload, SploseRequestError

if TYPE_CHECKING:
    from cliniko_assets.loading import LoadRun

FILES_PER_BATCH = 50
BATCH_BYTES = 32 * 2**20


@dataclass
class FileBatch:
    """Files waiting to be sent together, by Cliniko id; up to the sink's ``in_flight`` batches are on their
    way at once (each streamed from staging by a thread of its own), and every answer is counted here."""

    run: LoadRun
    report: RowReport
    pending: dict[str, FileUpload] = field(default_factory=dict)
    size: int = 0
    checksum_mismatches: int = 0
    _sent: deque[tuple[dict[str, FileUpload], Future[FileBatchResult]]] = field(default_factory=deque)
    _pool: ThreadPoolExecutor | None = None

    def add(self, aid: str, upload: FileUpload, size: int) -> None:
        held = self.run.writes().held_file(upload)
        if held is not None:
            self.count(aid, held, upload)
            return
        if self.pending and self.size + size > BATCH_BYTES:
            self.flush()
        self.pending[aid] = upload
        self.size += size
        if len(self.pending) >= FILES_PER_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        uploads, self.pending, self.size = self.pending, {}, 0
        sink = self.run.writes()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=max(1, sink.in_flight), thread_name_prefix="upload-files")
        while len(self._sent) >= max(1, sink.in_flight):
            self._answered(*self._sent.popleft())
        self._sent.append((uploads, self._pool.submit(sink.upload_files, list(uploads.values()))))

    def finish(self) -> None:
        """Send what is pending and count every answer (the step's last word on its files)."""
        self.flush()
        while self._sent:
            self._answered(*self._sent.popleft())

    def close(self) -> None:
        """Wait for whatever is still on its way (after a failure, nothing more is sent)."""
        for _, future in self._sent:
            future.exception()
        self._sent.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _answered(self, uploads: dict[str, FileUpload], sent: Future[FileBatchResult]) -> None:
        try:
            result = sent.result()
        except SploseRequestError as exc:  # the batch as a whole was refused: every file in it is counted
            for aid in uploads:
                self.report.reject(aid, str(exc))
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


def load_files(run: LoadRun, report: RowReport) -> dict:
    ctx = run.import_context("clients")
    manifest = run.staging.read_files_manifest(run.tenant, "patient_attachments").set_index("id")
    failures = run.staging.read_file_failures(run.tenant, "patient_attachments")
    batch = FileBatch(run, report)
    try:
        for attachment in run.records("patient_attachments"):
            report.cliniko += 1
            run.advance()
            aid = record_id(attachment) or ""
            if attachment.get("_state") == "deleted":
                report.skip("deleted in Cliniko", record_id=aid)
                continue
            if attachment.get("processing_completed") is False:
                report.skip("not yet processed by Cliniko", record_id=aid)
                continue
            if aid not in manifest.index:
                report.skip(failures.get(aid, "bytes could not be downloaded from Cliniko"), record_id=aid)
                continue
            staged = manifest.loc[aid]
            form = to_splose_file(attachment, str(staged["sha256"]), int(staged["size"]))
            if isinstance(form, Skip):
                report.skip(form.reason, record_id=aid)
                continue
            if form["clientExternalId"] not in ctx.imported["clients"]:
                report.skip("client not imported", record_id=aid)
                continue
            upload = FileUpload(
                external_id=form["externalId"],
                client_external_id=form["clientExternalId"],
                content=partial(run.staging.file_reader, run.tenant, "patient_attachments", aid),
                filename=form.get("filename"),
                content_type=form.get("contentType"),
                description=form.get("description"),
                created_at=form.get("createdAt"),
                sha256=form.get("sha256"),
            )
            batch.add(aid, upload, int(staged["size"]))
        batch.finish()
    finally:
        batch.close()
    return {"checksum_mismatches": batch.checksum_mismatches, "checksums_verified": report.loaded}
