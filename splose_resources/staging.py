"""Staged Cliniko data: Parquet per tenant and resource, plus attachment bytes, under one root.

Layout under ``<root>/<tenant>/cliniko/<resource>/``:

- ``data.parquet``: the committed copy, one row per Cliniko id (columns ``id``, ``updated_at``,
  ``state``, ``source``, ``record``; ``record`` is the record exactly as Cliniko sent it, as compact
  UTF-8 JSON written by :func:`record_json` and read back by :meth:`StagingStore.iter_records`).
- ``incoming/``: parts and a checkpoint written while an extraction runs. A run that dies leaves
  them behind and the next run resumes from them; :meth:`StagingBatch.commit` folds them into
  ``data.parquet`` (the newest version of each id wins; a deletion wins over any version).
- ``files/<id>`` and ``files.parquet``: attachment bytes and their sha256.

The root holds health data: every directory is created private (0700, parents included), every file
is written 0600 from its first byte (:func:`write_private`, :func:`open_private`), and nothing here ever
logs a value. Every path under the root is built from a tenant key validated as a workspace slug
(:meth:`StagingStore.tenant_dir`), so no input can reach another tenant's folder or outside the root.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import dagster as dg
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field, PrivateAttr

from cliniko_assets.partitions import validate_tenant

STAGED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("updated_at", pa.string()),
        ("state", pa.string()),
        ("source", pa.string()),
        ("record", pa.string()),
    ]
)
DATA_FILE = "data.parquet"
# Arrow's default allocator (jemalloc) keeps what it freed for later reuse: after the largest resource is
# committed or scanned, the process would hold that much for the rest of the run. The system allocator
# hands it back, so peak memory follows the batch being worked on, not the clinic's size.
pa.set_memory_pool(pa.system_memory_pool())
FILES_MANIFEST = "files.parquet"
FILE_FAILURES = "files-failed.json"


class StagingBusy(RuntimeError):
    pass


class StagingUnavailable(RuntimeError):
    """Staging has no usable root folder (a configuration problem)."""


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
        description="Root folder (or file:// URL); the code location reads STAGING_URI when it is set. Without "
        "it: the 'staging' folder of the Dagster instance's home ($DAGSTER_HOME).",
    )
    _instance_home: Path | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._instance_home = instance_home(context)

    def root(self) -> Path:
        value = self.uri or (str(self._instance_home / "staging") if self._instance_home else None)
        if not value:
            raise StagingUnavailable(
                "Staging has no root: set STAGING_URI (read by the code location), or use the store inside a "
                "Dagster run, whose instance home holds 'staging'."
            )
        if "://" in value:
            scheme, _, rest = value.partition("://")
            if scheme != "file":
                raise StagingUnavailable(
                    f"STAGING_URI scheme '{scheme}' is not supported yet; use a local path or file:// URL."
                )
            value = rest
        return private_dir(Path(value))

    def tenant_dir(self, tenant: str) -> Path:
        """The one way to a tenant's folder: the key must be a valid workspace slug (no '/', '..' or newline)."""
        return private_dir(self.root() / validate_tenant(tenant))

    def resource_dir(self, tenant: str, resource: str) -> Path:
        if not resource.isidentifier():
            raise ValueError(f"unknown staged resource {resource!r}")
        return private_dir(self.tenant_dir(tenant) / "cliniko" / resource)

    def splose_dir(self, tenant: str) -> Path:
        """Side files of a tenant's loads: the resolved mapping and the reconciliation rows."""
        return private_dir(self.tenant_dir(tenant) / "splose")

    @contextmanager
    def tenant_lock(self, tenant: str) -> Iterator[None]:
        """Only one extraction writes a tenant's staging at a time, whatever started it."""
        path = self.tenant_dir(tenant) / ".lock"
        with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StagingBusy(
                    f"Another extraction of tenant '{tenant}' is writing its staged data; wait for it to finish."
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def has_data(self, tenant: str, resource: str) -> bool:
        return (self.resource_dir(tenant, resource) / DATA_FILE).exists()

    def batch(self, tenant: str, resource: str) -> StagingBatch:
        return StagingBatch(self.resource_dir(tenant, resource))

    def read_index(self, tenant: str, resource: str, columns: tuple[str, ...] = ("id", "state")) -> pd.DataFrame:
        path = self.resource_dir(tenant, resource) / DATA_FILE
        if not path.exists():
            return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
        return pq.read_table(path, columns=list(columns)).to_pandas()

    def iter_records(self, tenant: str, resource: str, batch_size: int = 500) -> Iterator[list[dict]]:
        """Staged records as dicts, a batch at a time, without loading the whole resource."""
        path = self.resource_dir(tenant, resource) / DATA_FILE
        if not path.exists():
            return
        for batch in scan(path, ["state", "source", "record"], batch_size):
            states, sources, records = (batch.column(i).to_pylist() for i in range(3))
            yield [_staged_record(r, s, src) for s, src, r in zip(states, sources, records, strict=True)]

    def file_path(self, tenant: str, resource: str, record_id: str) -> Path:
        if not record_id.isdigit():
            raise ValueError(f"attachment id {record_id!r} is not a Cliniko id")
        return private_dir(self.resource_dir(tenant, resource) / "files") / record_id

    def read_files_manifest(self, tenant: str, resource: str) -> pd.DataFrame:
        path = self.resource_dir(tenant, resource) / FILES_MANIFEST
        if not path.exists():
            return pd.DataFrame(
                {c: pd.Series(dtype="object") for c in ("id", "sha256", "size", "content_type", "record_updated_at")}
            )
        return pq.read_table(path).to_pandas()

    def write_files_manifest(self, tenant: str, resource: str, manifest: pd.DataFrame) -> None:
        path = self.resource_dir(tenant, resource) / FILES_MANIFEST
        _write_atomic(pa.Table.from_pandas(manifest.reset_index(drop=True), preserve_index=False), path)

    def read_file_failures(self, tenant: str, resource: str) -> dict[str, str]:
        """Attachment id -> why its bytes could not be staged, from the latest extraction."""
        path = self.resource_dir(tenant, resource) / FILE_FAILURES
        return json.loads(path.read_text()) if path.exists() else {}

    def write_file_failures(self, tenant: str, resource: str, failures: dict[str, str]) -> None:
        write_private(self.resource_dir(tenant, resource) / FILE_FAILURES, json.dumps(failures, sort_keys=True))

    def has_tenant(self, tenant: str) -> bool:
        return (self.root() / validate_tenant(tenant)).exists()

    def purge(self, tenant: str) -> None:
        shutil.rmtree(self.root() / validate_tenant(tenant), ignore_errors=True)


class StagingBatch:
    """The parts and checkpoint of one resource's extraction in progress."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.incoming = directory / "incoming"
        self._lock = threading.Lock()

    def load_checkpoint(self) -> dict | None:
        path = self.incoming / "checkpoint.json"
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError:
            return None

    def save_checkpoint(self, checkpoint: dict) -> None:
        with self._lock:
            write_private(private_dir(self.incoming) / "checkpoint.json", json.dumps(checkpoint))

    def discard(self) -> None:
        shutil.rmtree(self.incoming, ignore_errors=True)

    def write_part(self, rows: list[dict]) -> None:
        """Append rows (``id``, ``updated_at``, ``state``, ``source``, ``record``) as one part file.

        ``record`` is the text of :func:`record_json` (bytes, stored as the UTF-8 string they are).
        """
        if not rows:
            return
        table = pa.Table.from_arrays(
            [pa.array([row[f.name] for row in rows], type=f.type) for f in STAGED_SCHEMA], schema=STAGED_SCHEMA
        )
        with self._lock:
            private_dir(self.incoming)
            number = len(list(self.incoming.glob("part-*.parquet")))
            _write_atomic(table, self.incoming / f"part-{number:06d}.parquet")

    def commit(self, *, replace: bool) -> CommitStats:
        """Fold the parts into ``data.parquet``; with ``replace`` the parts alone become the data.

        Only the id columns of every source are held in memory; rows are then copied source by
        source, so a resource of any size commits in bounded memory.
        """
        target = self.directory / DATA_FILE
        sources = sorted(self.incoming.glob("part-*.parquet")) if self.incoming.exists() else []
        previous_ids: set[str] = set()
        if target.exists():
            if replace:
                previous_ids = set(pq.read_table(target, columns=["id"]).column("id").to_pylist())
            else:
                sources.insert(0, target)
        index = _winners(sources)
        with open_private(target) as out, pq.ParquetWriter(out, STAGED_SCHEMA, compression="zstd") as writer:
            for number, source in enumerate(sources):
                rows = index.loc[index["src"] == number, "row"].to_numpy()
                if len(rows):
                    writer.write_table(pq.read_table(source, schema=STAGED_SCHEMA).take(rows))
        self.discard()
        removed = len(previous_ids - set(index["id"])) if replace else 0
        updated = index["updated_at"].dropna()
        updated = updated[updated != ""]
        return CommitStats(
            records=len(index),
            by_state={str(k): int(v) for k, v in index["state"].value_counts().sort_index().items()},
            max_updated_at=str(updated.max()) if len(updated) else None,
            removed=removed,
        )


def scan(source: Path | BinaryIO, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    """A staged file's ``columns``, ``batch_size`` rows at a time. Read sequentially, without Arrow's read-ahead
    (which buffers whole column chunks of many row groups): memory follows the batch, not the file."""
    parquet = pq.ParquetFile(source, pre_buffer=False)
    yield from parquet.iter_batches(batch_size=batch_size, columns=columns, use_threads=False)


def record_json(record: dict) -> bytes:
    """The one encoding of a staged record: compact UTF-8 JSON (orjson; keys and values as decoded)."""
    return orjson.dumps(record)


def _staged_record(text: str, state: str, source: str) -> dict:
    """A staged record as a dict, with its staging ``_state`` and ``_source`` added to it (no copy)."""
    record = orjson.loads(text)
    record["_state"] = state
    record["_source"] = source
    return record


def _winners(sources: list[Path]) -> pd.DataFrame:
    """For each id, the row that stands: a deletion first, then the newest ``updated_at``, then the latest part.

    Worked out in Arrow on the key columns alone (the rows are only ever sorted as positions), and only the
    winners become a DataFrame, in part and row order.
    """
    tables = []
    for number, source in enumerate(sources):
        table = pq.ParquetFile(source).read(columns=["id", "updated_at", "state"], use_threads=False)
        rows = np.arange(table.num_rows, dtype=np.int64)
        tables.append(table.append_column("src", pa.array(np.full(len(rows), number))).append_column("row", [rows]))
    if not tables:
        return pd.DataFrame({"id": [], "updated_at": [], "state": [], "src": [], "row": []})
    index = pa.concat_tables(tables).combine_chunks()
    del tables
    keys = pa.table(
        {
            "id": index["id"],
            "deleted": pc.equal(index["state"], "deleted"),
            "order": pc.fill_null(index["updated_at"], ""),
            "position": pa.array(np.arange(index.num_rows, dtype=np.int64)),
        }
    )
    order = pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in keys.column_names])
    ids = index["id"].take(order)
    last = pa.concat_arrays([pc.not_equal(ids[:-1], ids[1:]).combine_chunks(), pa.array([True])])
    positions = np.sort(order.filter(last).to_numpy())  # positions follow (part, row) order
    return index.take(positions).to_pandas()


def _write_atomic(table: pa.Table, path: Path) -> None:
    with open_private(path) as out:
        pq.write_table(table, out, compression="zstd")


@contextmanager
def open_private(path: Path) -> Iterator[BinaryIO]:
    """Write ``path`` atomically and privately: a 0600 temporary file, renamed into place once complete.

    The file is never readable by others, not even while it is written; if writing fails, ``path`` keeps
    its previous content and the temporary file is removed.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    handle = os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
    try:
        with handle:
            yield handle
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_private(path: Path, data: str | bytes) -> None:
    """The one private atomic write of a small file (checkpoints, reports, the mapping, emails)."""
    with open_private(path) as out:
        out.write(data.encode() if isinstance(data, str) else data)


def private_dir(path: Path) -> Path:
    """``path`` and every parent it has to create are made 0700 (``mkdir(mode=...)`` only sets the last)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made by a concurrent writer
        os.chmod(directory, 0o700)  # whatever the umask
    return path
