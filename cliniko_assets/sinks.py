"""Where the loads send their records: Splose's import API, or nowhere (a dry run, for the preview).

The loads (:mod:`cliniko_assets.load`) run the same transforms, skips and counts either way; only the
sink differs. :class:`SploseSink` upserts through the import API. :class:`DryRunSink` writes nothing:
every record it is given counts as one that would be loaded, and the crosswalk it answers is what Splose
already holds (read) plus what the dry run would have loaded, so that records depending on others are
counted as the real import will count them. Splose's own validation cannot be foreseen: a record Splose
would reject is counted as loaded by a dry run.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from itertools import islice
from typing import Protocol

from splose_resources.splose import (
    MAX_BATCH,
    RejectedRecord,
    SploseImportClient,
    UpsertedRecord,
    UpsertResult,
)
from splose_resources.storage import Opener

CREATED = "created"


class Sink(Protocol):
    def upsert(self, entity: str, records: Iterable[dict]) -> UpsertResult: ...

    def crosswalk(self, entity: str) -> dict[str, int]: ...

    def upload_file(self, *, external_id: str, content: Opener, sha256: str | None, **fields: str | None) -> dict: ...


class SploseSink:
    """Records go to the import through the import API (idempotent upserts keyed by external id)."""

    def __init__(self, imports: SploseImportClient, import_id: int) -> None:
        self.imports = imports
        self.import_id = import_id

    def upsert(self, entity: str, records: Iterable[dict]) -> UpsertResult:
        return self.imports.upsert(self.import_id, entity, records)

    def crosswalk(self, entity: str) -> dict[str, int]:
        return self.imports.crosswalk(self.import_id, entity)

    def upload_file(self, *, external_id: str, content: Opener, sha256: str | None, **fields: str | None) -> dict:
        return self.imports.upload_file(
            self.import_id, external_id=external_id, content=content, sha256=sha256, **fields
        )


class DryRunSink:
    """Nothing is written: records are counted as they would be loaded (Splose is only read)."""

    def __init__(self, imports: SploseImportClient, import_id: int) -> None:
        self.imports = imports
        self.import_id = import_id
        self.loaded: dict[str, dict[str, int]] = defaultdict(dict)
        self.calls: dict[str, int] = defaultdict(int)  # import API writes the real import would make
        self._ids = itertools.count(-1, -1)  # stand-in ids, never sent anywhere

    def upsert(self, entity: str, records: Iterable[dict]) -> UpsertResult:
        result = UpsertResult(entity)
        iterator = iter(records)
        while batch := list(islice(iterator, MAX_BATCH)):
            seen: set[str] = set()
            for record in batch:
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

    def crosswalk(self, entity: str) -> dict[str, int]:
        return {**self.imports.crosswalk(self.import_id, entity), **self.loaded[entity]}

    def upload_file(self, *, external_id: str, content: Opener, sha256: str | None, **fields: str | None) -> dict:
        self.calls["files"] += 1
        splose_id = self.loaded["files"].setdefault(external_id, next(self._ids))
        return {"id": splose_id, "action": CREATED, "sha256": sha256}
