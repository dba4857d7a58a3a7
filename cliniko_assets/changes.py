"""Only what changed goes to Splose, and each crosswalk is read once per run.

Every record and file the loads send carries a content hash: the sha256 of the record exactly as sent
(canonical JSON), or for a file of its form fields and the bytes' sha256. Splose keeps the hash with
the record's crosswalk entry (``GET /imports/{id}/records/{entity}`` answers ``contentHash``). A record
whose hash equals the one Splose holds is not sent again and counts as ``unchanged``; a file whose hash
matches is neither read from staging nor uploaded. A record Splose rejected has no new hash, so it is
sent (and counted) again on every sync until it is accepted.

:class:`RunCrosswalk` reads an entity's crosswalk from Splose the first time a step of the run needs it
and keeps it in the tenant's staging (``splose/``, wherever the run's steps execute); each step then
records what Splose answered to its own writes in a file of its own when it is done (steps that run at
the same time never write the same file), so the next step sees the crosswalk as it is now without
reading it again. Files of another run are never trusted.

A record Splose holds that Cliniko no longer has (deleted there, or now ignored by the clinic's mapping) is
marked for removal by the load that finds it (:meth:`RunCrosswalk.retire`, kept in a file of the step's
own like its writes) and removed by the import report, once every load is done
(:mod:`cliniko_assets.removals`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice

import numpy as np
import orjson
import pyarrow as pa

from cliniko_assets.crosswalks import HASH_VERSION, SCHEMA, CrosswalkTable, entries_batch
from splose_resources.splose import CrosswalkEntry, FileUpload, SploseImportClient, UpsertedRecord
from splose_resources.staging import StagingStore

UNCHANGED = "unchanged"
FOLDER = "splose"  # the tenant's staging folder of what the loads keep
RUN = b"run"  # the footer key of the run a staged crosswalk belongs to
# What a step wrote: the crosswalk's columns and, for appointments, what the read-back checks (null otherwise).
REFS = [pa.field("clients", pa.list_(pa.string())), pa.field("practitioner_id", pa.int64())]
WRITTEN_SCHEMA = pa.schema([*SCHEMA, *REFS])
HELD_SCHEMA = pa.schema([SCHEMA.field("key"), SCHEMA.field("external_id"), *REFS])  # kept until the step is done
RETIRE_SCHEMA = pa.schema([pa.field("external_id", pa.string()), pa.field("reason", pa.string())])
READ_BATCH = 65_536


def content_hash(fields: dict) -> str:
    """The fingerprint of a record as sent (its ``contentHash`` excluded): the sha256 of its canonical JSON."""
    hashed = {k: v for k, v in fields.items() if k != "contentHash"}
    try:
        canonical = orjson.dumps(hashed, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    except orjson.JSONEncodeError:  # a lone surrogate in Cliniko's text: the standard encoder escapes it
        canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"), default=str).encode()
    return f"{HASH_VERSION}-{hashlib.sha256(canonical).hexdigest()}"


def file_fingerprint(upload: FileUpload) -> str:
    """The fingerprint of a file: its fields as a single upload sends them, the bytes' sha256 included."""
    return content_hash({k: v for k, v in upload.manifest_entry("").items() if k not in ("part", "contentHash")})


def appointment_refs(record: dict) -> dict:
    """What the read-back checks of an appointment this run wrote: its clients, practitioner, attendees."""
    clients = [entry.get("clientExternalId") for entry in record.get("appointmentPatients") or []]
    return {"clients": clients, "practitionerId": record.get("practitionerId")}


class RunCrosswalk:
    """The crosswalk as this run knows it: read once from Splose, kept current with the run's writes."""

    def __init__(
        self,
        imports: SploseImportClient,
        import_id: int,
        staging: StagingStore,
        tenant: str,
        run_id: str,
        writer: str,
        ancestors: tuple[str, ...] = (),
    ) -> None:
        self.imports = imports
        self.import_id = import_id
        self.staging = staging
        self.tenant = tenant
        self.run_id = run_id
        self.writer = writer
        # A re-execution keeps what the steps it does not run again marked for removal: its runs' files count.
        self._marked_by = {run_id.encode(), *(ancestor.encode() for ancestor in ancestors)}
        self._entries: dict[str, CrosswalkTable] = {}
        self._written: dict[str, list[pa.RecordBatch]] = {}
        self._retired: dict[str, dict[str, str]] = {}
        self._reading = threading.Lock()

    # -- reading ----------------------------------------------------------------------------------

    def entries(self, entity: str) -> CrosswalkTable:
        with self._reading:  # once, whichever thread of the step asks first
            if entity not in self._entries:
                table = CrosswalkTable()
                if not self._read_into(self._name(entity), table):
                    self._fetch(entity, table)
                for name in self._written_names(entity):
                    if name != self._written_name(entity):
                        self._read_into(name, table)
                self._entries[entity] = table
            return self._entries[entity]

    def prefetch(self, entity: str) -> None:
        """Have the entity's crosswalk in staging for the run's later steps, without holding it in this step."""
        with self._reading:
            if entity in self._entries:
                return
            with self.staging.parquet(self.tenant, self._name(entity)) as staged:
                if self._of_this_run(staged):
                    return
            self._fetch(entity, CrosswalkTable())

    def ids(self, entity: str) -> Mapping[str, int]:
        return self.entries(entity).ids()

    def unchanged(self, entity: str, external_id: str, fingerprint: str) -> CrosswalkEntry | None:
        """Splose's entry when it already holds exactly this record, else ``None``."""
        entry = self.entries(entity).get(external_id)
        return entry if entry is not None and entry.content_hash == fingerprint else None

    def _fetch(self, entity: str, table: CrosswalkTable) -> None:
        """Splose's crosswalk a page at a time into ``table``, then kept in staging for the run's other steps."""
        rows = self.imports.crosswalk_rows(self.import_id, entity)
        while chunk := [(external_id, entry.id, entry.content_hash) for external_id, entry in islice(rows, 10_000)]:
            table.update_from([entries_batch(chunk)])
        schema = SCHEMA.with_metadata({RUN: self.run_id.encode()})
        self.staging.write_parquet(self.tenant, self._name(entity), schema, table.batches())

    def _read_into(self, name: str, table: CrosswalkTable) -> bool:
        """Add a staged crosswalk of this run to ``table``; False when there is none."""
        with self.staging.parquet(self.tenant, name) as staged:
            if not self._of_this_run(staged):
                return False
            table.update_from(staged.iter_batches(READ_BATCH, columns=SCHEMA.names, use_threads=False))
        return True

    def _of_this_run(self, staged: object) -> bool:
        return _run_of(staged) == self.run_id.encode()

    def _listed(self, prefix: str) -> list[str]:
        return [f"{FOLDER}/{n}" for n in self.staging.names(self.tenant, FOLDER) if n.startswith(prefix)]

    def _written_names(self, entity: str) -> list[str]:
        return self._listed(f"written-{self.import_id}-{entity}-by-")

    # -- writing ----------------------------------------------------------------------------------

    def record(self, entity: str, answers: Iterable[UpsertedRecord], hashes: dict[str, str], refs: dict) -> None:
        """Splose's answers to this step's writes, with the hash each record was sent with."""
        table = self.entries(entity)
        written = [(answer.external_id, answer.id, hashes.get(answer.external_id)) for answer in answers]
        for external_id, splose_id, content_hash in written:
            table.put(external_id, splose_id, content_hash)
        if written:
            self._written.setdefault(entity, []).append(_written_batch(written, refs))

    def retire(self, entity: str, external_id: str, reason: str) -> bool:
        """Mark a record for removal from Splose (why: ``reason``) if Splose holds it; whether it does."""
        if external_id not in self.entries(entity):
            return False
        self._retired.setdefault(entity, {})[external_id] = reason
        return True

    def save(self) -> None:
        """Keep this step's writes, and what it marked for removal, for the run's next steps (once, when the
        step is done)."""
        schema = WRITTEN_SCHEMA.with_metadata({RUN: self.run_id.encode()})
        for entity, written in self._written.items():
            table = self.entries(entity)
            rows = (_with_entries(batch, table) for batch in _last_of_each(written))
            self.staging.write_parquet(self.tenant, self._written_name(entity), schema, rows)
        retire_schema = RETIRE_SCHEMA.with_metadata({RUN: self.run_id.encode()})
        earlier = set(self._listed("retire-"))  # an earlier run's marks of this step: replaced, none kept
        marks = {e: {} for e in self._entries if self._retire_name(e) in earlier} | self._retired
        for entity, retired in marks.items():
            columns = [pa.array(list(retired), pa.string()), pa.array(list(retired.values()), pa.string())]
            batch = pa.RecordBatch.from_arrays(columns, schema=RETIRE_SCHEMA)
            self.staging.write_parquet(self.tenant, self._retire_name(entity), retire_schema, [batch])

    def retired(self, entity: str) -> dict[str, str]:
        """External id -> reason of every ``entity`` record a step of this run (this one included) marked for
        removal."""
        found: dict[str, str] = dict(self._retired.get(entity, {}))
        for name in self._listed(f"retire-{self.import_id}-{entity}-by-"):
            if name == self._retire_name(entity):
                continue  # this step's own marks are those in memory (a file of an earlier run of it is stale)
            with self.staging.parquet(self.tenant, name) as staged:
                if _run_of(staged) not in self._marked_by:
                    continue
                for batch in staged.iter_batches(READ_BATCH, use_threads=False):
                    found.update(zip(*(batch.column(n).to_pylist() for n in RETIRE_SCHEMA.names), strict=True))
        return found

    def _retire_name(self, entity: str) -> str:
        return f"{FOLDER}/retire-{self.import_id}-{entity}-by-{self.writer}.parquet"

    def _name(self, entity: str) -> str:
        return f"{FOLDER}/crosswalk-{self.import_id}-{entity}.parquet"

    def _written_name(self, entity: str) -> str:
        return f"{FOLDER}/written-{self.import_id}-{entity}-by-{self.writer}.parquet"

    # -- what the run wrote (for the read-back) ---------------------------------------------------

    def written_refs(self, entity: str) -> Iterator[tuple[str, dict]]:
        """External id and references of every ``entity`` record a step of this run wrote (once each: the
        last step's, in name order, as for the crosswalk), a batch at a time."""
        later: list[np.ndarray] = []  # the numeric keys of the files already read (later in name order)
        later_odd: set[str] = set()
        for name in reversed(self._written_names(entity)):
            with self.staging.parquet(self.tenant, name) as staged:
                if not self._of_this_run(staged):
                    continue
                seen = np.concatenate(later) if later else np.empty(0, np.uint64)
                columns = ["key", "external_id", "clients", "practitioner_id"]
                for batch in staged.iter_batches(READ_BATCH, columns=columns, use_threads=False):
                    later.append(batch.column("key").drop_null().to_numpy())
                    yield from _refs(batch, seen, later_odd)

    def known_entities(self) -> list[str]:
        """The entities whose crosswalk this run read."""
        prefix = f"crosswalk-{self.import_id}-"
        found = []
        for name in self._listed(prefix):
            with self.staging.parquet(self.tenant, name) as staged:
                if self._of_this_run(staged):
                    found.append(name.rsplit("/", 1)[-1].removeprefix(prefix).removesuffix(".parquet"))
        return sorted(found)


def _run_of(staged: object) -> bytes | None:
    """The run a staged file of the loads belongs to (its footer), None for a file that is not there."""
    schema = getattr(staged, "schema_arrow", None)
    return None if schema is None else (schema.metadata or {}).get(RUN)


def _written_batch(written: list[tuple[str, int, str | None]], refs: dict) -> pa.RecordBatch:
    """The external ids a step wrote and their references: their ids and hashes are read from the crosswalk
    when the step is done (held once, not twice)."""
    entries = entries_batch(written)
    kept = [refs.get(external_id) for external_id, _, _ in written]
    clients = pa.array([None if r is None else r["clients"] for r in kept], pa.list_(pa.string()))
    practitioners = pa.array([None if r is None else r["practitionerId"] for r in kept], pa.int64())
    columns = [entries.column("key"), entries.column("external_id"), clients, practitioners]
    return pa.RecordBatch.from_arrays(columns, schema=HELD_SCHEMA)


def _with_entries(batch: pa.RecordBatch, table: CrosswalkTable) -> pa.RecordBatch:
    entries = table.entries_of(batch.column("key"), batch.column("external_id"))
    refs = [batch.column(field.name) for field in REFS]
    return pa.RecordBatch.from_arrays([*entries.columns, *refs], schema=WRITTEN_SCHEMA)


def _last_of_each(batches: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
    """The step's writes with one row per external id, its last (an id written twice keeps its last answer)."""
    numeric = np.concatenate([b.column("key").drop_null().to_numpy() for b in batches])
    odd = [e for b in batches for e in b.column("external_id").drop_null().to_pylist()]
    if len(np.unique(numeric)) == len(numeric) and len(set(odd)) == len(odd):
        return batches
    table = pa.Table.from_batches(batches, HELD_SCHEMA)
    keys = zip(table.column("key").to_pylist(), table.column("external_id").to_pylist(), strict=True)
    last = {(key, external_id): row for row, (key, external_id) in enumerate(keys)}
    return table.take(pa.array(sorted(last.values()))).to_batches()


def _refs(batch: pa.RecordBatch, later: np.ndarray, later_odd: set[str]) -> Iterator[tuple[str, dict]]:
    """The references of a batch of written rows, but those a later file holds."""
    keys = batch.column("key")
    numeric = keys.fill_null(0).to_numpy().astype(np.uint64)
    superseded = np.isin(numeric, later) & keys.is_valid().to_numpy(zero_copy_only=False)
    for at, (key, odd, clients, practitioner) in enumerate(
        zip(*(batch.column(i).to_pylist() for i in range(4)), strict=True)
    ):
        external_id = str(key) if key is not None else odd
        if clients is None or superseded[at] or (key is None and external_id in later_odd):
            continue
        if key is None:
            later_odd.add(external_id)
        yield external_id, {"clients": clients, "practitionerId": practitioner}
