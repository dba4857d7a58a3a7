"""Five clinics at once on the production instance: Postgres storage, the queued run coordinator, the daemon.

Five import requests are submitted from Splose; ``dagster-daemon`` (its import-request sensor and run
queue) launches one run per tenant; every run keeps its Cliniko key's budget and the one Splose platform
token's budget through the Postgres-backed limiters (``SHARED_STATE_POSTGRES_URL``), with no rate-limit
state on local disk. One clinic is ten times bigger than the others: it does not hold them back.
"""

from __future__ import annotations

import secrets
import uuid

import dagster as dg
import pytest

from sandbox import postgres
from sandbox.fleet import daemon, fleet, production_home, run_window, wait_for_imports

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SCALES = {"clinic-a": "tiny", "clinic-b": "tiny", "clinic-c": "tiny", "clinic-d": "tiny", "clinic-slow": "small"}


@pytest.fixture
def production(tmp_path, monkeypatch):
    database = f"many_tenants_{uuid.uuid4().hex[:10]}"
    env = production_home(tmp_path / "dagster_home", database)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("RATE_LIMIT_STATE_DIR", raising=False)
    try:
        yield env
    finally:
        postgres.drop_database(database)


@pytest.mark.timeout(2700)  # five imports on two cores, the small clinic's extraction alone >= 2.5 min
def test_the_daemon_imports_five_tenants_at_once_within_every_budget(production, tmp_path):
    token = "platform-" + secrets.token_urlsafe(16)
    home = tmp_path / "dagster_home"
    with fleet(SCALES, tmp_path, token) as pool:
        pool.submit_all()
        env = {**production, **pool.environment(), "TMPDIR": str(tmp_path)}
        with daemon(home, env), dg.DagsterInstance.from_config(str(home)) as instance:
            runs = wait_for_imports(instance, pool, timeout=2400)
            windows = {tenant: run_window(instance, run) for tenant, run in runs.items()}
            assert {t: r.status for t, r in runs.items()} == dict.fromkeys(SCALES, dg.DagsterRunStatus.SUCCESS)
            assert {run.tags["dagster/partition"] for run in runs.values()} == set(SCALES)

        for tenant in pool.tenants:
            record = pool.import_record(tenant)
            assert record["status"] == "complete", (tenant.name, record.get("message"))
            for row in record["counts"]["rows"].values():
                skipped = sum((row.get("skippedByReason") or {}).values())
                assert row["cliniko"] == row["loaded"] + skipped + row["rejected"], (tenant.name, row)
            truth = pool.admin.truth(tenant.account)
            live = sum(n for state, n in truth["patients"].items() if state != "deleted")
            assert len(pool.dump(tenant, "clients")) == live, tenant.name

        for tenant, stats in pool.cliniko_stats().items():
            assert stats["total"] > 0 and stats["rate_limited"] == 0, tenant
            assert max(stats["windows"].values()) <= 200, tenant
        splose = pool.splose_stats()
        assert splose["throttled"] == 0 and splose["peakInAnyWindow"] <= 600

    # The small clinic takes longest; the tiny ones ran beside it, not after it.
    slow_start, slow_end = windows.pop("clinic-slow")
    for tenant, (start, end) in windows.items():
        assert start < slow_start + 60 and end < slow_end, tenant
    assert not list(tmp_path.rglob("*.window")) and not list(tmp_path.rglob("*.sliding"))
