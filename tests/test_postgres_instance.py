"""The production instance (dagster.yaml) against the machine's real PostgreSQL."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from tests.conftest import PROJECT, materializations

pytestmark = pytest.mark.postgres

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def _ensure_postgres() -> None:
    if subprocess.run(["pg_isready", "-h", PG["host"], "-p", str(PG["port"])], capture_output=True).returncode == 0:
        return
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], check=True, capture_output=True
    )
    for _ in range(60):
        if subprocess.run(["pg_isready", "-h", PG["host"]], capture_output=True).returncode == 0:
            return
        time.sleep(0.5)
    pytest.fail("PostgreSQL did not start")


@pytest.fixture
def postgres_database(monkeypatch):
    _ensure_postgres()
    name = f"cliniko_import_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    for variable, value in {
        "DAGSTER_PG_USERNAME": PG["user"],
        "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
        "DAGSTER_PG_HOST": PG["host"],
        "DAGSTER_PG_PORT": str(PG["port"]),
        "DAGSTER_PG_DB": name,
    }.items():
        monkeypatch.setenv(variable, value)
    try:
        yield name
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_production_instance_materializes_a_tenant_on_postgres(clinic, postgres_database, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT / "dagster.yaml", home / "dagster.yaml")

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        instance.add_dynamic_partitions("tenants", [clinic.tenant])

        result = clinic.extract(instance, selection=["businesses", "patients", "patient_attachments"])

        assert result.success
        assert materializations(result)["patients"]["by_state"] == clinic.truth()["patients"]
        stored = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["cliniko", "patients"]), asset_partitions=[clinic.tenant]),
            limit=5,
        ).records
        assert len(stored) == 1
        assert instance.get_dynamic_partitions("tenants") == [clinic.tenant]

    with psycopg2.connect(dbname=postgres_database, **PG) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs")
        assert cursor.fetchone()[0] == 1
