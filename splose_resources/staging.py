"""Staged Cliniko data: Parquet per tenant and resource, plus attachment bytes, under one root.

The root is a local folder or an S3-compatible bucket prefix (``STAGING_URI=s3://bucket/prefix``);
:mod:`splose_resources.storage` holds both backends behind one interface, and everything here goes
through it, so a run needs nothing on the machine that launched it. Layout under the root:

- ``<tenant>/cliniko/<resource>/data.parquet``: the committed copy, one row per Cliniko id (columns
  ``id``, ``updated_at``, ``state``, ``source``, ``record``; ``record`` is the record exactly as Cliniko
  sent it, as compact UTF-8 JSON written by :func:`record_json` and read back by
  :meth:`StagingStore.iter_records`).
- ``<tenant>/cliniko/<resource>/incoming/``: parts and a checkpoint written while an extraction runs. A
  run that dies leaves them behind and the next run resumes from them; :meth:`StagingBatch.commit`
  folds them into ``data.parquet`` (the newest version of each id wins; a deletion wins over any version).
- ``<tenant>/cliniko/<resource>/files/<id>`` and ``files.parquet``: attachment bytes and their sha256.
- ``<tenant>/splose/``: what the loads of each import keep for the report (mapping, rows, side files).

The root holds health data: every write is private and atomic (see :mod:`splose_resources.storage`),
and nothing here ever logs a value. Every key is built from a tenant key validated as a workspace slug
and from names checked here, so no input can reach another tenant's data or outside the root.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import dagster as dg
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field, PrivateAttr

from cliniko_assets.partitions import validate_tenant
from splose_resources.deployment import check_run, setting
from splose_resources.standing import standing_rows
from splose_resources.storage import LockHeld, StagingUnavailable, Storage, storage_for
from splose_resources.storage import open_private as open_private  # the local private writes, re-exported
from splose_resources.storage import private_dir as private_dir
from splose_resources.storage import write_private as write_private

STAGED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("updated_at", pa.string()),
        ("state", pa.string()),
        ("source", pa.string()),
        ("record", pa.string()),
    ]
)
# Parquet keeps each row group's minimum and maximum of a column in the file's footer, and its writer holds them
# until the file is closed. Of a record's text they would be two whole records per row group: a large
# resource's data file would carry megabytes of them (held while it is written, parsed each time it is read),
# for a column never searched by value. The key columns keep theirs.
STATISTICS = [name for name in STAGED_SCHEMA.names if name != "record"]
DATA_FILE = "data.parquet"
COMMIT_BATCH_ROWS = 2_000  # rows read at a time while a commit copies the standing rows
# Arrow's default allocator (jemalloc) keeps what it freed for later reuse: after the largest resource is
# committed or scanned, the process would hold that much for the rest of the run. The system allocator
# hands it back, so peak memory follows the batch being worked on, not the clinic's size.
pa.set_memory_pool(pa.system_memory_pool())
FILES_MANIFEST = "files.parquet"
FILE_FAILURES = "files-failed.json"
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
TRIM_EVERY_SECONDS = 2.0  # while parts are written: an extraction's threads free pages as fast as they decode them
_last_trim = [0.0]  # time.monotonic() of the process's last trim

# glibc's malloc, set for every process that imports the project (the fork server's steps inherit it).
# A thread that finds the heap busy gets an arena of its own (up to eight per core), and what is freed in an
# arena stays with it: an extraction's page and resource threads would each keep what they once decoded. Two
# arenas keep a step's peak near what its threads hold at once. Large blocks (a crosswalk's arrays, a batch
# of records) are mappings of their own, returned to the system when freed: glibc would otherwise raise that
# threshold to the size of each large block freed (up to 32 MiB) and put the next ones in the heap, leaving
# holes the size of a crosswalk column there. An operator's own MALLOC_ARENA_MAX or MALLOC_MMAP_THRESHOLD_
# stands.
ARENA_MAX = 2
MMAP_THRESHOLD = 1 << 20  # bytes: an allocation this large or larger is a mapping of its own
_MALLOPT = (("MALLOC_ARENA_MAX", -8, ARENA_MAX), ("MALLOC_MMAP_THRESHOLD_", -3, MMAP_THRESHOLD))  # malloc.h

try:  # glibc keeps freed memory inside its arenas; malloc_trim returns their free pages to the system
    _libc = ctypes.CDLL("libc.so.6")
    _malloc_trim = _libc.malloc_trim
    for _variable, _parameter, _value in _MALLOPT:
        if _variable not in os.environ:
            _libc.mallopt(_parameter, _value)
except (OSError, AttributeError):  # not glibc: nothing to trim
    _malloc_trim = None


def release_free_memory(at_most_every: float = 0.0) -> None:
    """Hand the pages the process freed back to the system: after a commit (its batches are gone) and, at most
    every ``at_most_every`` seconds, as parts are written, so that the extraction's threads do not grow the
    heap around the holes earlier pages left."""
    if _malloc_trim is None or time.monotonic() - _last_trim[0] < at_most_every:
        return
    _last_trim[0] = time.monotonic()
    _malloc_trim(0)


class StagingBusy(RuntimeError):
    pass


def instance_home(context: dg.InitResourceContext) -> Path | None:
    """The Dagster instance's home folder ($DAGSTER_HOME for a persistent instance), where private data
    lives by default; None outside an instance."""
    instance = context.instance
    return Path(instance.root_directory) if instance is not None else None


@dataclass
class CommitStats:
    records: int
    by_state: dict[str, int]
    max_updated_at: str | None
    removed: int


class StagingStore(dg.ConfigurableResource):
    """Where extracted data waits between extraction and load."""

    uri: str | None = Field(
        default=None,
        description="Root: a local folder (or file:// URL) or s3://bucket/prefix (credentials, region and "
        "endpoint from the AWS_* environment variables); the code location reads STAGING_URI when it is set. "
        "Without it: the 'staging' folder of the Dagster instance's home ($DAGSTER_HOME).",
    )
    _instance_home: Path | None = PrivateAttr(default=None)
    _storage: Storage | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        check_run(context)
        self._instance_home = instance_home(context)

    def storage(self) -> Storage:
        if self._storage is None:
            home = str(self._instance_home / "staging") if self._instance_home else None
            value = setting("staging", self, "uri") or home
            if not value:
                raise StagingUnavailable(
                    "Staging has no root: set STAGING_URI (read by the code location), or use the store inside a "
                    "Dagster run, whose instance home holds 'staging'."
                )
            try:
                self._storage = storage_for(value)
            except ValueError as exc:
                raise StagingUnavailable(f"STAGING_URI: {exc}") from None
        return self._storage

    def _resource_key(self, tenant: str, resource: str) -> str:
        """The one way to a resource's data: the tenant must be a valid workspace slug (no '/', '..' or
        newline) and the resource a Cliniko resource name."""
        if not resource.isidentifier():
            raise ValueError(f"unknown staged resource {resource!r}")
        return f"{validate_tenant(tenant)}/cliniko/{resource}"

    @contextmanager
    def tenant_lock(self, tenant: str) -> Iterator[None]:
        """Only one extraction writes a tenant's staging at a time, whatever started it, wherever it runs."""
        with ExitStack() as stack:
            try:
                stack.enter_context(self.storage().lock(f"{validate_tenant(tenant)}/.lock"))
            except LockHeld:
                raise StagingBusy(
                    f"Another extraction of tenant '{tenant}' is writing its staged data; wait for it to finish."
                ) from None
            yield

    def has_data(self, tenant: str, resource: str) -> bool:
        return self.storage().exists(f"{self._resource_key(tenant, resource)}/{DATA_FILE}")

    def batch(self, tenant: str, resource: str) -> StagingBatch:
        return StagingBatch(self.storage(), self._resource_key(tenant, resource))

    def iter_batches(
        self, tenant: str, resource: str, columns: list[str], batch_size: int = 500
    ) -> Iterator[pa.RecordBatch]:
        """The committed data of a resource, a batch at a time, without loading the whole resource."""
        key = f"{self._resource_key(tenant, resource)}/{DATA_FILE}"
        storage = self.storage()
        if not storage.exists(key):
            return
        with storage.reader(key) as handle:
            yield from scan(handle, columns, batch_size)

    def count_rows(self, tenant: str, resource: str) -> int:
        """How many rows the committed data of a resource holds (deletions included), from the file's footer."""
        key = f"{self._resource_key(tenant, resource)}/{DATA_FILE}"
        storage = self.storage()
        if not storage.exists(key):
            return 0
        with storage.reader(key) as handle:
            return pq.ParquetFile(handle).metadata.num_rows

    def read_index(self, tenant: str, resource: str, columns: tuple[str, ...] = ("id", "state")) -> pd.DataFrame:
        batches = list(self.iter_batches(tenant, resource, list(columns), batch_size=65_536))
        if not batches:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
        return pa.Table.from_batches(batches).to_pandas()

    def iter_records(
        self,
        tenant: str,
        resource: str,
        batch_size: int = 500,
        source: str | None = None,
        other: bool = False,
        ids: Collection[str] | None = None,
    ) -> Iterator[list[dict]]:
        """Staged records as dicts, a batch at a time, without loading the whole resource; with ``source``, only
        those staged from it (``other``: only those that were not); with ``ids``, only those; chosen before any
        record is decoded."""
        wanted = None if ids is None else pa.array(sorted(ids), pa.string())
        if wanted is not None and not len(wanted):
            return
        columns = ["state", "source", "record"] if wanted is None else ["state", "source", "record", "id"]
        for batch in self.iter_batches(tenant, resource, columns, batch_size):
            if source is not None:
                same = pc.fill_null(pc.equal(batch.column(1), source), False)  # no source: not from it
                batch = batch.filter(pc.invert(same) if other else same)
            if wanted is not None:
                batch = batch.filter(pc.is_in(batch.column("id"), value_set=wanted))
            if not batch.num_rows:
                continue
            states, sources, records = (batch.column(i).to_pylist() for i in range(3))
            yield [_staged_record(r, s, src) for s, src, r in zip(states, sources, records, strict=True)]

    def _file_key(self, tenant: str, resource: str, record_id: str) -> str:
        if not record_id.isdigit():
            raise ValueError(f"attachment id {record_id!r} is not a Cliniko id")
        return f"{self._resource_key(tenant, resource)}/files/{record_id}"

    def file_writer(self, tenant: str, resource: str, record_id: str) -> AbstractContextManager[BinaryIO]:
        """Stream an attachment's bytes into staging; they appear only once complete."""
        return self.storage().writer(self._file_key(tenant, resource, record_id))

    def file_reader(self, tenant: str, resource: str, record_id: str) -> AbstractContextManager[BinaryIO]:
        return self.storage().reader(self._file_key(tenant, resource, record_id))

    def delete_file(self, tenant: str, resource: str, record_id: str) -> None:
        self.storage().delete(self._file_key(tenant, resource, record_id))

    def staged_files(self, tenant: str, resource: str) -> set[str]:
        """Ids whose bytes are staged (one listing, not a request per file)."""
        return set(self.storage().names(f"{self._resource_key(tenant, resource)}/files"))

    def read_files_manifest(self, tenant: str, resource: str) -> pd.DataFrame:
        data = self.storage().read_bytes(f"{self._resource_key(tenant, resource)}/{FILES_MANIFEST}")
        if data is None:
            return pd.DataFrame(
                {c: pd.Series(dtype="object") for c in ("id", "sha256", "size", "content_type", "record_updated_at")}
            )
        return pq.read_table(pa.BufferReader(data)).to_pandas()

    def write_files_manifest(self, tenant: str, resource: str, manifest: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(manifest.reset_index(drop=True), preserve_index=False)
        _write_table(self.storage(), f"{self._resource_key(tenant, resource)}/{FILES_MANIFEST}", table)

    def read_file_failures(self, tenant: str, resource: str) -> dict[str, str]:
        """Attachment id -> why its bytes could not be staged, from the latest extraction."""
        return self.read_json(tenant, f"cliniko/{resource}/{FILE_FAILURES}") or {}

    def write_file_failures(self, tenant: str, resource: str, failures: dict[str, str]) -> None:
        self.write_json(tenant, f"cliniko/{resource}/{FILE_FAILURES}", dict(sorted(failures.items())))

    def _tenant_key(self, tenant: str, name: str) -> str:
        parts = name.split("/")
        if not all(NAME.fullmatch(part) for part in parts):
            raise ValueError(f"staged file name {name!r} is not a plain relative name")
        return "/".join((validate_tenant(tenant), *parts))

    def read_json(self, tenant: str, name: str) -> Any:
        """A small JSON file of the tenant (``name`` relative to its folder, e.g. ``splose/mapping-7.json``);
        None when it was never written."""
        data = self.storage().read_bytes(self._tenant_key(tenant, name))
        return None if data is None else json.loads(data)

    def write_json(self, tenant: str, name: str, value: object) -> None:
        self.storage().write_bytes(self._tenant_key(tenant, name), json.dumps(value).encode())

    def write_parquet(self, tenant: str, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
        """A table of the tenant's (``name`` as for :meth:`write_json`), written a batch at a time; the
        schema's metadata is kept in the file's footer."""
        out = self.storage().writer(self._tenant_key(tenant, name))
        with out as handle, pq.ParquetWriter(handle, schema, compression="zstd") as writer:
            for batch in batches:
                writer.write_batch(batch)

    @contextmanager
    def parquet(self, tenant: str, name: str) -> Iterator[pq.ParquetFile | None]:
        """A table written by :meth:`write_parquet`, opened to be read a batch at a time; None if never written."""
        key = self._tenant_key(tenant, name)
        storage = self.storage()
        if not storage.exists(key):
            yield None
            return
        with storage.reader(key) as handle:
            yield pq.ParquetFile(handle, pre_buffer=False)

    def names(self, tenant: str, folder: str) -> list[str]:
        """Names of the files directly under the tenant's ``folder`` (e.g. ``splose``), sorted."""
        return self.storage().names(self._tenant_key(tenant, folder))

    def has_tenant(self, tenant: str) -> bool:
        return self.storage().exists(validate_tenant(tenant))

    def purge(self, tenant: str) -> None:
        """Every object of the tenant, uploads never completed included."""
        self.storage().delete_tree(validate_tenant(tenant))


class StagingBatch:
    """The parts and checkpoint of one resource's extraction in progress."""

    def __init__(self, storage: Storage, prefix: str) -> None:
        self.storage = storage
        self.target = f"{prefix}/{DATA_FILE}"
        self.incoming = f"{prefix}/incoming"
        self._lock = threading.Lock()
        self._next_part: int | None = None  # the number of the next part file: listed once, then counted

    def load_checkpoint(self) -> dict | None:
        data = self.storage.read_bytes(f"{self.incoming}/checkpoint.json")
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None

    def save_checkpoint(self, checkpoint: dict) -> None:
        with self._lock:
            self.storage.write_bytes(f"{self.incoming}/checkpoint.json", json.dumps(checkpoint).encode())

    def discard(self) -> None:
        with self._lock:
            self.storage.delete_tree(self.incoming)
            self._next_part = None

    def parts(self) -> list[str]:
        names = self.storage.names(self.incoming)
        return [f"{self.incoming}/{n}" for n in names if n.startswith("part-") and n.endswith(".parquet")]

    def write_part(self, rows: list[dict]) -> None:
        """Append rows (``id``, ``updated_at``, ``state``, ``source``, ``record``) as one part file.

        ``record`` is the record's UTF-8 JSON text (bytes, stored as the string they are): as Cliniko sent
        it, or :func:`record_json` of a decoded record.
        """
        self.write_columns({f.name: [row[f.name] for row in rows] for f in STAGED_SCHEMA})

    def write_columns(self, columns: dict[str, list]) -> None:
        """:meth:`write_part` for rows held column by column (a list per field of ``STAGED_SCHEMA``)."""
        if not columns["id"]:
            return
        table = pa.Table.from_arrays(
            [pa.array(columns[f.name], type=f.type) for f in STAGED_SCHEMA], schema=STAGED_SCHEMA
        )
        with self._lock:
            if self._next_part is None:  # parts a resumed extraction staged before: listed once, not per part
                self._next_part = len(self.parts())
            _write_table(
                self.storage, f"{self.incoming}/part-{self._next_part:06d}.parquet", table, statistics=STATISTICS
            )
            self._next_part += 1
        del table
        release_free_memory(TRIM_EVERY_SECONDS)

    def commit(self, *, replace: bool) -> CommitStats:
        """Fold the parts into ``data.parquet``; with ``replace`` the parts alone become the data.

        Which row stands for each id is worked out on the ids alone (:mod:`splose_resources.standing`);
        the standing rows are then copied source by source, a batch of rows at a time, so a resource of any
        size commits in memory that follows its ids, not its records.
        """
        sources = self.parts()
        previous: pa.Array | None = None
        if self.storage.exists(self.target):
            if replace:
                previous = self._read(self.target, columns=["id"], use_threads=False).column("id").combine_chunks()
            else:
                sources.insert(0, self.target)
        positions, offsets = standing_rows(
            lambda number, columns: self._read(sources[number], columns=columns, use_threads=False), len(sources)
        )
        states: Counter[str] = Counter()
        newest: str | None = None
        kept_ids: list[pa.Array] = []
        with (
            self.storage.writer(self.target) as out,
            pq.ParquetWriter(out, STAGED_SCHEMA, compression="zstd", write_statistics=STATISTICS) as w,
        ):
            for number, source in enumerate(sources):
                lo, hi = np.searchsorted(positions, [offsets[number], offsets[number + 1]])
                for table in self._standing_in(source, positions[lo:hi] - offsets[number]):
                    w.write_table(table)
                    counts = pc.value_counts(pc.drop_null(table["state"])).to_pylist()
                    states.update({str(c["values"]): int(c["counts"]) for c in counts})
                    updated = pc.drop_null(table["updated_at"])
                    updated = updated.filter(pc.not_equal(updated, ""))
                    if len(updated):
                        newest = max(filter(None, (newest, pc.max(updated).as_py())))
                    if previous is not None:
                        kept_ids.append(table["id"].combine_chunks())
        self.discard()
        release_free_memory()
        removed = 0
        if previous is not None:
            kept = pa.concat_arrays(kept_ids) if kept_ids else pa.array([], pa.string())
            removed = len(previous) - pc.sum(pc.is_in(previous, kept)).as_py()
        return CommitStats(
            records=len(positions),
            by_state={state: states[state] for state in sorted(states)},
            max_updated_at=newest,
            removed=removed,
        )

    def _standing_in(self, source: str, rows: np.ndarray) -> Iterator[pa.Table]:
        """The rows of ``source`` at ``rows`` (ascending), read a batch at a time."""
        if not len(rows):
            return
        start = 0
        with self.storage.reader(source) as handle:
            for batch in scan(handle, STAGED_SCHEMA.names, COMMIT_BATCH_ROWS):
                lo, hi = np.searchsorted(rows, [start, start + batch.num_rows])
                if lo < hi:
                    yield pa.Table.from_batches([batch]).take(pa.array(rows[lo:hi] - start)).cast(STAGED_SCHEMA)
                start += batch.num_rows

    def _read(self, key: str, **options: Any) -> pa.Table:
        with self.storage.reader(key) as handle:
            return pq.read_table(handle, **options)


def scan(source: BinaryIO, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    """A staged file's ``columns``, ``batch_size`` rows at a time. Read sequentially, without Arrow's
    read-ahead (which buffers whole column chunks of many row groups): memory follows the batch, not the
    file."""
    parquet = pq.ParquetFile(source, pre_buffer=False)
    yield from parquet.iter_batches(batch_size=batch_size, columns=columns, use_threads=False)


def record_json(record: dict) -> bytes:
    """The encoding of a record staged from a decoded value (one fetched by id, a tombstone): compact UTF-8
    JSON (orjson; keys and values as decoded). A listed record is staged as Cliniko sent it."""
    return orjson.dumps(record)


def _staged_record(text: str, state: str, source: str) -> dict:
    """A staged record as a dict, with its staging ``_state`` and ``_source`` added to it (no copy)."""
    record = orjson.loads(text)
    record["_state"] = state
    record["_source"] = source
    return record


def _write_table(storage: Storage, key: str, table: pa.Table, statistics: bool | list[str] = True) -> None:
    with storage.writer(key) as out:
        pq.write_table(table, out, compression="zstd", write_statistics=statistics)
