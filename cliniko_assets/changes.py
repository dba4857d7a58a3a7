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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

import orjson

from splose_resources.splose import CrosswalkEntry, FileUpload, SploseImportClient, UpsertedRecord
from splose_resources.staging import StagingStore

UNCHANGED = "unchanged"
FOLDER = "splose"  # the tenant's staging folder of what the loads keep
HASH_VERSION = "c2"  # bump when what is hashed changes: every record is then sent once more


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
        self, imports: SploseImportClient, import_id: int, staging: StagingStore, tenant: str, run_id: str, writer: str
    ) -> None:
        self.imports = imports
        self.import_id = import_id
        self.staging = staging
        self.tenant = tenant
        self.run_id = run_id
        self.writer = writer
        self._entries: dict[str, dict[str, CrosswalkEntry]] = {}
        self._written: dict[str, dict[str, CrosswalkEntry]] = {}
        self._refs: dict[str, dict] = {}

    # -- reading ----------------------------------------------------------------------------------

    def entries(self, entity: str) -> dict[str, CrosswalkEntry]:
        if entity not in self._entries:
            self._entries[entity] = {**self._base(entity), **self._others_written(entity)}
        return self._entries[entity]

    def ids(self, entity: str) -> dict[str, int]:
        return {external_id: entry.id for external_id, entry in self.entries(entity).items()}

    def unchanged(self, entity: str, external_id: str, fingerprint: str) -> CrosswalkEntry | None:
        """Splose's entry when it already holds exactly this record, else ``None``."""
        entry = self.entries(entity).get(external_id)
        return entry if entry is not None and entry.content_hash == fingerprint else None

    def _base(self, entity: str) -> dict[str, CrosswalkEntry]:
        name = self._name(entity)
        kept = self._read(name)
        if kept is not None:
            return _entries(kept["entries"])
        entries = self.imports.crosswalk_entries(self.import_id, entity)
        self.staging.write_json(self.tenant, name, {"run": self.run_id, "entries": _plain(entries)})
        return entries

    def _others_written(self, entity: str) -> dict[str, CrosswalkEntry]:
        found: dict[str, CrosswalkEntry] = {}
        for name in self._written_names(entity):
            kept = self._read(name)
            if kept is not None and name != self._written_name(entity):
                found.update(_entries(kept["entries"]))
        return found

    def _read(self, name: str) -> dict | None:
        kept = self.staging.read_json(self.tenant, name)
        return kept if kept is not None and kept.get("run") == self.run_id else None

    def _listed(self, prefix: str) -> list[str]:
        return [f"{FOLDER}/{n}" for n in self.staging.names(self.tenant, FOLDER) if n.startswith(prefix)]

    def _written_names(self, entity: str) -> list[str]:
        return self._listed(f"written-{self.import_id}-{entity}-by-")

    # -- writing ----------------------------------------------------------------------------------

    def record(self, entity: str, answers: Iterable[UpsertedRecord], hashes: dict[str, str], refs: dict) -> None:
        """Splose's answers to this step's writes, with the hash each record was sent with."""
        entries = self.entries(entity)
        written = self._written.setdefault(entity, {})
        for answer in answers:
            entry = CrosswalkEntry(answer.id, hashes.get(answer.external_id))
            entries[answer.external_id] = written[answer.external_id] = entry
        self._refs.setdefault(entity, {}).update(refs)

    def save(self) -> None:
        """Keep this step's writes for the run's next steps (once, when the step is done)."""
        for entity, written in self._written.items():
            payload = {"run": self.run_id, "entries": _plain(written), "refs": self._refs.get(entity, {})}
            self.staging.write_json(self.tenant, self._written_name(entity), payload)

    def _name(self, entity: str) -> str:
        return f"{FOLDER}/crosswalk-{self.import_id}-{entity}.json"

    def _written_name(self, entity: str) -> str:
        return f"{FOLDER}/written-{self.import_id}-{entity}-by-{self.writer}.json"

    # -- what the run wrote (for the read-back) ---------------------------------------------------

    def written_refs(self, entity: str) -> dict[str, dict]:
        """External id -> references of every ``entity`` record a step of this run wrote."""
        refs: dict[str, dict] = {}
        for name in self._written_names(entity):
            kept = self._read(name)
            if kept is not None:
                refs.update(kept.get("refs") or {})
        return refs

    def known_entities(self) -> list[str]:
        """The entities whose crosswalk this run read."""
        prefix = f"crosswalk-{self.import_id}-"
        return sorted(
            name.rsplit("/", 1)[-1].removeprefix(prefix).removesuffix(".json")
            for name in self._listed(prefix)
            if self._read(name) is not None
        )


def _plain(entries: dict[str, CrosswalkEntry]) -> dict[str, list]:
    return {external_id: [entry.id, entry.content_hash] for external_id, entry in entries.items()}


def _entries(plain: dict[str, list]) -> dict[str, CrosswalkEntry]:
    return {external_id: CrosswalkEntry(int(value[0]), value[1]) for external_id, value in plain.items()}
