"""``splose/files``: patient attachments as files, uploaded in batches, each checksum verified by Splose.

A file Splose already holds as it is (same bytes' sha256 and fields: :mod:`cliniko_assets.changes`) is
counted ``unchanged`` and neither read from staging nor sent. The others go up to ``FILES_PER_BATCH`` at a
time (or ``BATCH_BYTES``, a larger file alone), each streamed from staging; Splose stores or refuses each
file of a batch on its own, and a refused file is counted rejected with Splose's message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

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
        self.sent.send(partial(_upload, self.run.writes(), list(uploads.values())), partial(self._answered, uploads))

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


def _upload(sink: Sink, files: list[FileUpload]) -> FileBatchResult | SploseRequestError:
    try:
        return sink.upload_files(files)
    except SploseRequestError as exc:
        return exc


def load_files(run: LoadRun, report: RowReport) -> dict:
    ctx = run.import_context("clients")
    manifest = run.staging.read_files_manifest(run.tenant, "patient_attachments").set_index("id")
    failures = run.staging.read_file_failures(run.tenant, "patient_attachments")
    with InFlight[FileBatchResult | SploseRequestError](run.writes().in_flight, "upload-files") as sent:
        batch = FileBatch(run, report, sent)
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
        batch.flush()
    return {"checksum_mismatches": batch.checksum_mismatches, "checksums_verified": report.loaded}
