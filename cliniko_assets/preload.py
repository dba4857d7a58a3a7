"""Loaded by each run's fork server before it forks the run's steps (:mod:`cliniko_assets.jobs`).

The code location is imported and resolved once per run, and every step's process starts from it,
instead of each step resolving the whole graph again. So are the modules a step imports to open the run's
instance (its storage: SQLAlchemy, Alembic, Dagster's SQLite and Postgres storages), which cost each step
about a CPU second when it imported them itself, and the migration scripts Dagster's SQLite storages
check their revision against. glibc's malloc is set by :mod:`splose_resources.staging` as the code location
is imported, so every step forked from it inherits those settings.
"""

import importlib

from cliniko_assets.definitions import defs

# What DagsterInstance.from_ref imports in a step process, for the embedded SQLite instance (its instance class
# and storage, cliniko_assets.sqlite_storage) and for Postgres.
# Dagster's own module paths: one that a later release moves is skipped (the step then imports what it needs).
INSTANCE_MODULES = (
    "dagster._core.instance.factory",
    "dagster._core.secrets.loader",
    "dagster._core.secrets.env_file",
    "dagster._core.storage.root",
    "dagster._core.storage.migration.utils",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.storage.event_log.sqlite",
    "dagster._core.storage.runs.sqlite",
    "dagster._core.storage.schedules.sqlite",
    "dagster._core.storage.local_compute_log_manager",
    "cliniko_assets.sqlite_storage",
    "dagster_postgres",
    "upath.implementations.local",
)


def _instance_modules() -> None:
    for name in INSTANCE_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue


# The storages whose Alembic configuration a step reads when it opens the embedded SQLite instance.
SQLITE_STORAGES = (
    "dagster._core.storage.event_log.sqlite.sqlite_event_log",
    "dagster._core.storage.runs.sqlite.sqlite_run_storage",
    "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage",
)


def _migration_scripts_once() -> None:
    """Dagster's SQLite storages compare each database's Alembic revision with the head of Dagster's
    migration scripts whenever a step process opens one (the index, the run's shard, runs, schedules), and
    Alembic reads and executes every script (about 90) each time: 0.1 to 0.3 CPU-s a step in a profile.
    The scripts do not change while the code is loaded, so each configuration's script directory is read
    once, here, and every step forked from this process starts with it. Postgres storages do not check."""
    try:
        from alembic.config import Config
        from alembic.script import ScriptDirectory
        from dagster._core.storage.sql import get_alembic_config
    except ImportError:
        return
    read = ScriptDirectory.from_config
    directories: dict[tuple[str | None, str | None], ScriptDirectory] = {}

    def from_config(config: Config) -> ScriptDirectory:
        key = (config.config_file_name, config.get_alembic_option("script_location"))
        if key not in directories:
            directories[key] = read(config)
        return directories[key]

    ScriptDirectory.from_config = staticmethod(from_config)
    for name in SQLITE_STORAGES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        ScriptDirectory.from_config(get_alembic_config(module.__file__)).as_revision_number("head")


_instance_modules()
_migration_scripts_once()
defs.get_repository_def()
