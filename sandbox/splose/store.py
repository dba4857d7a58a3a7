"""Durable state of the Splose sandbox: one SQLite file (WAL) shared by every workspace.

Every Splose object (seeded or imported) is a row of ``objects``: its ``kind`` is the table a test
dumps (``locations``, ``practitioners``, ``services``, ``contacts``, ``clients``, ``appointments``,
``availability``, ``providerNumbers``, ``progressNoteTemplates``, ``progressNotes``, ``files``), its
fields are a JSON document, and the import bookkeeping sits beside them: ``source`` + ``external_id``
(the upsert key), ``import_id`` (the import that created it) and ``history`` (every create/update with
the import that made it). Ids come from one sequence, so an id names one object in the whole sandbox.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.splose.validation import RecordError

SCHEMA = """
CREATE TABLE IF NOT EXISTS workspaces (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    source TEXT,
    external_id TEXT,
    import_id INTEGER,
    history TEXT NOT NULL DEFAULT '[]',
    content_hash TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS objects_upsert_key ON objects(workspace_id, kind, source, external_id);
CREATE INDEX IF NOT EXISTS objects_paging ON objects(workspace_id, kind, id);
CREATE INDEX IF NOT EXISTS objects_import ON objects(import_id);
CREATE INDEX IF NOT EXISTS objects_practitioner
    ON objects(workspace_id, kind, json_extract(data, '$.practitionerId'));
CREATE INDEX IF NOT EXISTS objects_referrer
    ON objects(workspace_id, kind, json_extract(data, '$.referringContactId'));
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    source TEXT NOT NULL,
    cliniko_api_key TEXT NOT NULL,
    shard TEXT NOT NULL,
    include TEXT NOT NULL,
    mapping TEXT NOT NULL,
    status TEXT NOT NULL,
    counts TEXT,
    message TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    completed_at TEXT
);
"""
DELETE_CHUNK = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """The sandbox's one datetime spelling: UTC with milliseconds, ``2023-07-30T09:00:00.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class StoredObject:
    id: int
    workspace_id: str
    kind: str
    data: dict[str, Any]
    archived: bool
    created_at: str
    updated_at: str
    source: str | None
    external_id: str | None
    import_id: int | None
    history: list[dict[str, Any]]
    content_hash: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredObject:
        return cls(
            id=row["id"],
            workspace_id=row["workspace_id"],
            kind=row["kind"],
            data=json.loads(row["data"]),
            archived=bool(row["archived"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            source=row["source"],
            external_id=row["external_id"],
            import_id=row["import_id"],
            history=json.loads(row["history"]),
            content_hash=row["content_hash"],
        )

    def dump(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "data": self.data,
            "archived": self.archived,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "source": self.source,
            "externalId": self.external_id,
            "importId": self.import_id,
            "history": self.history,
            "contentHash": self.content_hash,
        }


@dataclass
class ImportRequest:
    id: int
    workspace_id: str
    source: str
    cliniko_api_key: str
    shard: str
    include: list[str]
    mapping: dict[str, Any]
    status: str
    counts: dict[str, Any] | None
    message: str | None
    created_at: str
    updated_at: str
    completed_at: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ImportRequest:
        return cls(
            id=row["id"],
            workspace_id=row["workspace_id"],
            source=row["source"],
            cliniko_api_key=row["cliniko_api_key"],
            shard=row["shard"],
            include=json.loads(row["include"]),
            mapping=json.loads(row["mapping"]),
            status=row["status"],
            counts=json.loads(row["counts"]) if row["counts"] else None,
            message=row["message"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            completed_at=row["completed_at"],
        )


@dataclass
class Page:
    """One page of rows in ascending id order, and whether rows exist beyond each end."""

    rows: list[Any]
    has_before: bool
    has_after: bool


class Store:
    """Thread-safe access to the sandbox database: one connection, one lock, short transactions."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.files_dir = db_path.with_name(f"{db_path.stem}-files")
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(objects)")}
        if "content_hash" not in columns:  # a database written before content hashes were kept
            self._db.execute("ALTER TABLE objects ADD COLUMN content_hash TEXT")

    def transaction(self) -> _Transaction:
        return _Transaction(self)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction: undo only this block if the database refuses it (a ``RecordError``)."""
        self.execute("SAVEPOINT record")
        try:
            yield
        except sqlite3.Error as error:
            self.execute("ROLLBACK TO record")
            self.execute("RELEASE record")
            raise RecordError(f"record: could not be stored ({error})") from error
        self.execute("RELEASE record")

    def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run a write; returns the new row id of an INSERT."""
        with self._lock:
            return int(self._db.execute(sql, tuple(params)).lastrowid or 0)

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Run a read and fetch every row while holding the lock."""
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def query_one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    # -- workspaces -------------------------------------------------------------------------------

    def add_workspace(self, workspace_id: str, name: str, key: str) -> None:
        self.execute(
            "INSERT INTO workspaces (id, name, key, created_at) VALUES (?, ?, ?, ?)",
            (workspace_id, name, key, iso(utc_now())),
        )

    def workspace(self, workspace_id: str) -> sqlite3.Row | None:
        return self.query_one("SELECT * FROM workspaces WHERE id = ?", (workspace_id,))

    def workspace_by_key(self, key: str) -> sqlite3.Row | None:
        return self.query_one("SELECT * FROM workspaces WHERE key = ?", (key,))

    # -- objects ----------------------------------------------------------------------------------

    def insert_object(
        self,
        workspace_id: str,
        kind: str,
        data: dict[str, Any],
        *,
        source: str | None = None,
        external_id: str | None = None,
        import_id: int | None = None,
        created_at: str | None = None,
        content_hash: str | None = None,
    ) -> int:
        now = iso(utc_now())
        history = [{"importId": import_id, "action": "created", "at": now}] if import_id else []
        return self.execute(
            "INSERT INTO objects (workspace_id, kind, data, archived, created_at, updated_at, source,"
            " external_id, import_id, history, content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                workspace_id,
                kind,
                json.dumps(data),
                int(bool(data.get("archived"))),
                created_at or now,
                now,
                source,
                external_id,
                import_id,
                json.dumps(history),
                content_hash,
            ),
        )

    def update_object(
        self,
        obj: StoredObject,
        data: dict[str, Any],
        import_id: int,
        content_hash: str | None = None,
        *,
        action: str = "updated",
    ) -> None:
        now = iso(utc_now())
        history = [*obj.history, {"importId": import_id, "action": action, "at": now}]
        self.execute(
            "UPDATE objects SET data = ?, archived = ?, updated_at = ?, history = ?, content_hash = ? WHERE id = ?",
            (json.dumps(data), int(bool(data.get("archived"))), now, json.dumps(history), content_hash, obj.id),
        )

    def set_content_hash(self, object_id: int, content_hash: str | None) -> None:
        self.execute("UPDATE objects SET content_hash = ? WHERE id = ?", (content_hash, object_id))

    def count_external(self, workspace_id: str, source: str) -> dict[str, int]:
        """Records of ``source`` in the workspace (those with an external id), by kind."""
        rows = self.query(
            "SELECT kind, COUNT(*) AS n FROM objects WHERE workspace_id = ? AND source = ?"
            " AND external_id IS NOT NULL GROUP BY kind",
            (workspace_id, source),
        )
        return {row["kind"]: row["n"] for row in rows}

    def get_object(self, workspace_id: str, kind: str, object_id: int) -> StoredObject | None:
        row = self.query_one(
            "SELECT * FROM objects WHERE workspace_id = ? AND kind = ? AND id = ?", (workspace_id, kind, object_id)
        )
        return StoredObject.from_row(row) if row else None

    def find_external(self, workspace_id: str, kind: str, source: str, external_id: str) -> StoredObject | None:
        row = self.query_one(
            "SELECT * FROM objects WHERE workspace_id = ? AND kind = ? AND source = ? AND external_id = ?",
            (workspace_id, kind, source, external_id),
        )
        return StoredObject.from_row(row) if row else None

    def objects(self, workspace_id: str, kind: str, where: str = "", params: Iterable[Any] = ()) -> list[StoredObject]:
        rows = self.query(
            f"SELECT * FROM objects WHERE workspace_id = ? AND kind = ? {where} ORDER BY id",
            (workspace_id, kind, *params),
        )
        return [StoredObject.from_row(row) for row in rows]

    def page(
        self,
        workspace_id: str,
        kind: str,
        *,
        page_size: int,
        id_gt: int | None = None,
        id_lt: int | None = None,
        where: str = "",
        params: Iterable[Any] = (),
    ) -> Page:
        rows = self._page(
            "objects", f"workspace_id = ? AND kind = ? {where}", [workspace_id, kind, *params], page_size, id_gt, id_lt
        )
        return Page([StoredObject.from_row(row) for row in rows.rows], rows.has_before, rows.has_after)

    def _page(
        self, table: str, where: str, params: list[Any], page_size: int, id_gt: int | None, id_lt: int | None
    ) -> Page:
        """Rows after ``id_gt`` (or the page just below ``id_lt``) in ascending id order."""
        base = f"FROM {table} WHERE {where}"
        if id_lt is not None:
            rows = self.query(f"SELECT * {base} AND id < ? ORDER BY id DESC LIMIT ?", (*params, id_lt, page_size + 1))
            has_before = len(rows) > page_size
            rows = list(reversed(rows[:page_size]))
            has_after = bool(self.query_one(f"SELECT 1 {base} AND id >= ? LIMIT 1", (*params, id_lt)))
        else:
            start = id_gt or 0
            rows = self.query(f"SELECT * {base} AND id > ? ORDER BY id LIMIT ?", (*params, start, page_size + 1))
            has_after = len(rows) > page_size
            rows = rows[:page_size]
            has_before = bool(self.query_one(f"SELECT 1 {base} AND id <= ? LIMIT 1", (*params, start)))
        return Page(rows, has_before, has_after)

    def workspace_objects(self, workspace_id: str) -> list[StoredObject]:
        rows = self.query("SELECT * FROM objects WHERE workspace_id = ? ORDER BY id", (workspace_id,))
        return [StoredObject.from_row(row) for row in rows]

    def delete_objects(self, object_ids: Iterable[int]) -> None:
        ids = sorted(object_ids)
        for start in range(0, len(ids), DELETE_CHUNK):
            chunk = ids[start : start + DELETE_CHUNK]
            self.execute(f"DELETE FROM objects WHERE id IN ({', '.join('?' for _ in chunk)})", chunk)

    # -- import requests --------------------------------------------------------------------------

    def add_import(
        self, workspace_id: str, source: str, key: str, shard: str, include: list[str], mapping: dict[str, Any]
    ) -> ImportRequest:
        now = iso(utc_now())
        import_id = self.execute(
            "INSERT INTO imports (workspace_id, source, cliniko_api_key, shard, include, mapping, status,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'submitted', ?, ?)",
            (workspace_id, source, key, shard, json.dumps(include), json.dumps(mapping), now, now),
        )
        found = self.get_import(import_id)
        assert found is not None
        return found

    def get_import(self, import_id: int) -> ImportRequest | None:
        row = self.query_one("SELECT * FROM imports WHERE id = ?", (import_id,))
        return ImportRequest.from_row(row) if row else None

    def update_import(self, import_id: int, **changes: Any) -> None:
        columns = {
            key: json.dumps(value) if key == "counts" and value is not None else value for key, value in changes.items()
        }
        columns["updated_at"] = iso(utc_now())
        assignments = ", ".join(f"{column} = ?" for column in columns)
        self.execute(f"UPDATE imports SET {assignments} WHERE id = ?", (*columns.values(), import_id))

    def import_page(
        self, *, page_size: int, id_gt: int | None, id_lt: int | None, where: str, params: list[Any]
    ) -> Page:
        rows = self._page("imports", f"1 = 1 {where}", params, page_size, id_gt, id_lt)
        return Page([ImportRequest.from_row(row) for row in rows.rows], rows.has_before, rows.has_after)


class _Transaction:
    """``with store.transaction():`` holds the lock and wraps the statements in BEGIN/COMMIT."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> Store:
        self.store._lock.acquire()
        self.store._db.execute("BEGIN IMMEDIATE")
        return self.store

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.store._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.store._lock.release()
