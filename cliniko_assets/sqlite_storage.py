"""The embedded default's Dagster storage: Dagster's SQLite storage, with its engines and connections kept.

Dagster's SQLite run and event log storages make a new SQLAlchemy engine for every connection and close
the connection after each use: every event a step logs, every materialization (written to the run's
database and to the asset index) and every read of an asset's latest materialization builds an engine,
runs SQLAlchemy's first-connect set-up, compiles its statement afresh (the compiled-statement cache
lives on the engine), opens the file, reads its schema and, closing it, checkpoints its write-ahead log.
An import's steps do that about 1,200 times (the small clinic).

:class:`SqliteStorage` is the same storage in the same files (``history/`` and ``schedules/`` of the
instance's home, Dagster's default layout, so an existing home keeps its runs) with, in each process:

- one engine per database file, the ``ENGINES`` most recently used;
- their connections pooled (``QueuePool``): opened once, reused;
- after each use of a run's own database, its write-ahead log checkpointed into the file (``PASSIVE``:
  never waiting on a reader), as closing the last connection did: that change of the file is what the UI's
  live view of a running run watches for.

A pooled connection is never used by two threads at once (the pool hands it to one; the event log holds
its lock) and never across a fork: a forked child drops the pools it inherited, unclosed, and opens its own.

Configured in ``dagster.local.yaml``, as the instance's class (its default storage is this one)::

    instance_class:
      module: cliniko_assets.sqlite_storage
      class: EmbeddedInstance
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import yaml
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import Pool, QueuePool

ENGINES = 32  # engines kept per storage: a process reads a handful of runs' databases at a time
CONNECT_ARGS = {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False}
_POOLED: weakref.WeakSet[Engines] = weakref.WeakSet()  # every Engines, for a fork
_INHERITED: list[Pool] = []  # a forked child's inherited pools: kept, so their connections are never closed


class Engines:
    """SQLAlchemy engines by connection string, the ``size`` most recently used kept, each keeping its
    connections open between uses."""

    def __init__(self, size: int = ENGINES) -> None:
        self._size = size
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._lock = threading.Lock()
        self.created = 0  # engines made, for the tests
        _POOLED.add(self)

    def get(self, conn_string: str) -> Engine:
        with self._lock:
            engine = self._engines.pop(conn_string, None)
            if engine is None:
                engine = create_engine(
                    conn_string, poolclass=QueuePool, pool_size=1, max_overflow=-1, connect_args=CONNECT_ARGS
                )
                self.created += 1
            self._engines[conn_string] = engine
            while len(self._engines) > self._size:  # a connection in use stays open until it is returned
                self._engines.popitem(last=False)[1].dispose()
            return engine

    def dispose(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def forget_connections(self) -> None:
        """In a forked child: the parent's connections are the parent's; new ones are opened as needed."""
        for engine in self._engines.values():
            _INHERITED.append(engine.pool)
            engine.dispose(close=False)


def _after_fork_in_child() -> None:
    for engines in list(_POOLED):
        engines.forget_connections()


os.register_at_fork(after_in_child=_after_fork_in_child)


class EventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log storage (a database per run, and the asset index), one engine a database."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self.run_engines = Engines()
        self.index_engines = Engines(size=1)
        self._present: set[tuple[str, str]] = set()  # (kind, name) of the index's tables, columns, migrations
        super().__init__(base_dir, inst_data)

    def _known(self, kind: str, name: str, check: Callable[[], bool]) -> bool:
        """Whether the asset index has the table, column or finished migration ``name``: asked until it has
        (a migration adds, never removes), then known. Dagster asks before every asset event's tags."""
        if (kind, name) in self._present:
            return True
        if not check():
            return False
        self._present.add((kind, name))
        return True

    def has_table(self, table_name: str) -> bool:
        def check() -> bool:  # not through _connect: Dagster asks while it holds the lock, in a transaction
            engine = self.index_engines.get(self.conn_string_for_shard(INDEX_SHARD_NAME))
            with engine.connect() as conn:
                return bool(engine.dialect.has_table(conn, table_name))

        return self._known("table", table_name, check)

    def has_secondary_index(self, name: str) -> bool:
        return self._known("migration", name, lambda: super(EventLogStorage, self).has_secondary_index(name))

    def has_asset_key_col(self, column_name: str) -> bool:
        return self._known("column", column_name, lambda: super(EventLogStorage, self).has_asset_key_col(column_name))

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:  # Dagster's, with the engine and connection kept
        with self._db_lock:
            index = shard == INDEX_SHARD_NAME
            engine = (self.index_engines if index else self.run_engines).get(self.conn_string_for_shard(shard))
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn
                if not index:  # what was written reaches the run's file, which the UI's live view watches
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def dispose(self) -> None:
        super().dispose()
        self.run_engines.dispose()
        self.index_engines.dispose()


class RunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage, its connections pooled."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        self.engines = Engines(size=1)
        super().__init__(conn_string, inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:  # Dagster's, with the engine and its connections kept
        with self.engines.get(self._conn_string).connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        super().dispose()
        self.engines.dispose()


class SqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage in its default place, the instance's home (``history/``, ``schedules/``), with the
    run and event log storages above; the schedule storage is Dagster's (the daemon's ticks, not a run's)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self.base_dir = base_dir
        self._run_storage = RunStorage.from_local(os.path.join(base_dir, "history", ""))
        self._event_log_storage = EventLogStorage(os.path.join(base_dir, "history", "runs", ""))
        self._schedule_storage = SqliteScheduleStorage.from_local(os.path.join(base_dir, "schedules"))
        self._inst_data = inst_data
        DagsterStorage.__init__(self)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: dict) -> SqliteStorage:  # type: ignore[override]
        return cls.from_local(inst_data=inst_data, **config_value)


class EmbeddedInstance(DagsterInstance):
    """Dagster's instance whose storage, unless its config names one, is :class:`SqliteStorage` in its home:
    Dagster's default, with the home's path filled in wherever the instance is opened (``DAGSTER_HOME``, or
    ``DagsterInstance.from_config(path)``), and handed as it is to the runs and steps it launches."""

    @classmethod
    def config_schema(cls) -> dict:
        return {}

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        storage = ConfigurableClassData(__name__, SqliteStorage.__name__, yaml.dump({"base_dir": base_dir}))
        compute_logs = ConfigurableClassData(  # Dagster's local compute logs, mirrored without helper processes
            "cliniko_assets.compute_logs", "MirroredComputeLogManager", yaml.dump({})
        )
        return {**InstanceRef.config_defaults(base_dir), "storage": storage, "compute_logs": compute_logs}
