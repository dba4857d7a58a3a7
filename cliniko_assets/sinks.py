"""Where the loads send their records: Splose's import API, or nowhere (a dry run, for the preview).

The loads (:mod:`cliniko_assets.load`) run the same transforms, skips and counts either way; only the
sink differs. :class:`SploseSink` upserts through the import API what Splose does not already hold
(:mod:`cliniko_assets.changes`: content hashes, the crosswalk read once per run). :class:`DryRunSink` writes nothing:
every record it is given counts as one that would be loaded, and the crosswalk it answers is what Splose
already holds (read) plus what the dry run would have loaded, so that records depending on others are
counted as the real import will count them. Splose's own validation cannot be foreseen: a record Splose
would reject is counted as loaded by a dry run.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from typing import Protocol

from cliniko_assets.changes import UNCHANGED, RunCrosswalk, appointment_refs, content_hash, file_fingerprint
from splose_resources.splose import (
    MAX_BATCH,
    MAX_BATCH_BYTES,
    FileBatchResult,
    FileUpload,
    RejectedRecord,
    SploseImportClient,
    UpsertedRecord,
    UpsertResult,
    encoded_batches,
)

CREATED = "created"
IN_FLIGHT = 3  # upsert batches on their way to Splose at once, per load: the next is transformed meanwhile


class Sink(Protocol):
    in_flight: int  # batches a load may have on their way at once

    def upsert(self, entity: str, records: Iterable[dict]) -> UpsertResult: ...

    def crosswalk(self, entity: str) -> Mapping[str, int]: ...

    def upload_files(self, files: list[FileUpload]) -> FileBatchResult: ...

    def held_file(self, upload: FileUpload) -> dict | None: ...

    def unchanged(self, entity: str, record: dict) -> bool: ...

    def retire(self, entity: str, external_id: str, reason: str) -> bool: ...

    def held(self, entity: str) -> Iterable[str]: ...

    def retired(self, entity: str) -> Collection[str]: ...

    def save(self) -> None: ...

    def stop(self) -> None: ...  # the step is interrupted: calls on their way give up their waits


class SploseSink:
    """Records go to the import through the import API (idempotent upserts keyed by external id); those
    Splose already holds as they are (same content hash) are answered ``unchanged`` without a request.
    Several batches may be on their way at once (:data:`IN_FLIGHT`), each from a thread of its own."""

    in_flight = IN_FLIGHT

    def __init__(self, imports: SploseImportClient, import_id: int, crosswalk: RunCrosswalk) -> None:
        self.imports = imports
        self.import_id = import_id
        self.known = crosswalk

    def stop(self) -> None:
        self.imports.stop()

    def unchanged(self, entity: str, record: dict) -> bool:
        return self.known.unchanged(entity, str(record["externalId"]), content_hash(record)) is not None

    def upsert(self, entity: str, records: Iterable[dict]) -> UpsertResult:
        held: list[UpsertedRecord] = []
        hashes: dict[str, str] = {}

        def changed() -> Iterable[dict]:
            for record in records:
                external_id, fingerprint = str(record["externalId"]), content_hash(record)
                entry = self.known.unchanged(entity, external_id, fingerprint)
                if entry is not None:
                    held.append(UpsertedRecord(external_id, entry.id, UNCHANGED))
                    continue
                hashes[external_id] = fingerprint
                yield {**record, "contentHash": fingerprint}

        sent: dict[str, dict] = {}
        result = self.imports.upsert(self.import_id, entity, _noted(changed(), sent, entity))
        accepted = {r.external_id for r in result.records}
        refs = {key: value for key, value in sent.items() if key in accepted}
        self.known.record(entity, result.records, hashes, refs)
        result.records.extend(held)
        return result

    def crosswalk(self, entity: str) -> Mapping[str, int]:
        return self.known.ids(entity)

    def retire(self, entity: str, external_id: str, reason: str) -> bool:
        """Mark a record Splose holds for removal (the import report removes it); whether Splose holds it."""
        return self.known.retire(entity, external_id, reason)

    def held(self, entity: str) -> Iterable[str]:
        """The external ids of every ``entity`` record Splose holds (as this run knows them)."""
        return iter(self.known.entries(entity))

    def retired(self, entity: str) -> Collection[str]:
        """The external ids of ``entity`` records this run marked for removal (they are not imported any more)."""
        return self.known.retired(entity).keys()

    def held_file(self, upload: FileUpload) -> dict | None:
        """Splose's answer for a file it holds as it is (same bytes and fields): nothing is read or sent."""
        entry = self.known.unchanged("files", upload.external_id, file_fingerprint(upload))
        return None if entry is None else {"id": entry.id, "action": UNCHANGED, "sha256": upload.sha256}

    def upload_files(self, files: list[FileUpload]) -> FileBatchResult:
        stamped = [dataclasses.replace(upload, content_hash=file_fingerprint(upload)) for upload in files]
        result = self.imports.upload_files(self.import_id, stamped)
        answers = [UpsertedRecord(ext, int(answer["id"]), answer["action"]) for ext, answer in result.answers.items()]
        self.known.record("files", answers, {u.external_id: u.content_hash or "" for u in stamped}, {})
        return result

    def save(self) -> None:
        self.known.save()


def _noted(records: Iterable[dict], sent: dict[str, dict], entity: str) -> Iterable[dict]:
    """Keep what the read-back checks of each appointment sent (its references), as it goes by."""
    for record in records:
        if entity == "appointments":
            sent[str(record["externalId"])] = appointment_refs(record)
        yield record


class DryRunSink:
    """Nothing is written: records are counted as they would be loaded, and what the import would remove from
    Splose is noted (Splose is only read)."""

    in_flight = 1  # counted in order, on the load's own thread

    def __init__(self, imports: SploseImportClient, import_id: int) -> None:
        self.imports = imports
        self.import_id = import_id
        self.stop = imports.stop
        self.loaded: dict[str, dict[str, int]] = defaultdict(dict)
        self.calls: dict[str, int] = defaultdict(int)  # import API writes the real import would make
        self._ids = itertools.count(-1, -1)  # stand-in ids, never sent anywhere
        self._before: dict[str, dict[str, int]] = {}  # entity -> what Splose holds of it (earlier imports), read once
        self.to_remove: dict[str, dict[str, str]] = defaultdict(dict)  # entity -> external id -> why it would go

    def upsert(self, entity: str, records: Iterable[dict]) -> UpsertResult:
        result = UpsertResult(entity)
        for batch in encoded_batches(records, MAX_BATCH, MAX_BATCH_BYTES):  # the requests the import would make
            seen: set[str] = set()
            for record, _ in batch:
                external_id = str(record["externalId"])
                if external_id in seen:  # as Splose does: the same external id twice in one batch
                    result.errors.append(RejectedRecord(external_id, "externalId: duplicate in this batch"))
                    continue
                seen.add(external_id)
                splose_id = self.loaded[entity].setdefault(external_id, next(self._ids))
                result.records.append(UpsertedRecord(external_id, splose_id, CREATED))
            result.batches += 1
            self.calls[entity] += 1
        return result

    def held_before(self, entity: str) -> dict[str, int]:
        """External id -> Splose id of every ``entity`` record Splose holds from this source (read once)."""
        if entity not in self._before:
            self._before[entity] = self.imports.crosswalk(self.import_id, entity)
        return self._before[entity]

    def crosswalk(self, entity: str) -> dict[str, int]:
        return {**self.held_before(entity), **self.loaded[entity]}

    def unchanged(self, entity: str, record: dict) -> bool:
        return False  # a dry run counts every record as one it would load

    def retire(self, entity: str, external_id: str, reason: str) -> bool:
        """Note what the import would mark for removal (a record Splose holds, and why); nothing is removed."""
        if external_id not in self.held_before(entity):
            return False
        self.to_remove[entity][external_id] = reason
        return True

    def held(self, entity: str) -> Iterable[str]:
        return iter(self.held_before(entity))

    def retired(self, entity: str) -> Collection[str]:
        return self.to_remove.get(entity, {}).keys()

    def save(self) -> None:
        return None

    def held_file(self, upload: FileUpload) -> dict | None:
        return None

    def upload_files(self, files: list[FileUpload]) -> FileBatchResult:
        self.calls["files"] += 1
        answers = {}
        for upload in files:
            splose_id = self.loaded["files"].setdefault(upload.external_id, next(self._ids))
            answers[upload.external_id] = {"id": splose_id, "action": CREATED, "sha256": upload.sha256}
        return FileBatchResult(answers, {})
