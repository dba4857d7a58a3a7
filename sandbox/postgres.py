"""The machine's PostgreSQL for the production instance config: started if down, a database created.

Used by ``make dev-postgres`` and the Postgres-backed tests. Connects over TCP to 127.0.0.1 (trust auth
on a development machine); a shared deployment sets the ``DAGSTER_PG_*`` variables itself.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psycopg2

HOST = "127.0.0.1"
PORT = 5432
USER = "postgres"


class PostgresUnavailable(RuntimeError):
    pass


def is_ready() -> bool:
    probe = subprocess.run(["pg_isready", "-h", HOST, "-p", str(PORT)], capture_output=True)
    return probe.returncode == 0


def ensure_running(timeout: float = 30) -> None:
    """Start the local cluster when it is down (Debian's ``pg_ctlcluster``) and wait until it answers."""
    if is_ready():
        return
    clusters = Path("/etc/postgresql")
    versions = sorted(p.name for p in clusters.iterdir()) if clusters.exists() else []
    if not versions:
        raise PostgresUnavailable(f"PostgreSQL is not answering on {HOST}:{PORT} and no local cluster is installed.")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], check=True, capture_output=True
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_ready():
            return
        time.sleep(0.5)
    raise PostgresUnavailable(f"PostgreSQL did not start on {HOST}:{PORT} within {timeout:.0f}s.")


def connect(database: str = "postgres"):
    return psycopg2.connect(dbname=database, host=HOST, port=PORT, user=USER)


def create_database(name: str, *, exist_ok: bool = False) -> None:
    admin = connect()
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{name}"')
            elif not exist_ok:
                raise PostgresUnavailable(f"Database {name!r} already exists.")
    finally:
        admin.close()


def drop_database(name: str) -> None:
    admin = connect()
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def instance_environment(database: str) -> dict[str, str]:
    """The ``DAGSTER_PG_*`` variables the production ``dagster.yaml`` reads."""
    return {
        "DAGSTER_PG_USERNAME": USER,
        "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
        "DAGSTER_PG_HOST": HOST,
        "DAGSTER_PG_PORT": str(PORT),
        "DAGSTER_PG_DB": database,
    }
