"""Rate limits kept in Postgres: one budget per key across processes and machines, shared fairly by tenants.

The quick tests drive the limiters in one process against a real database of their own; the slow ones run
several OS processes, each with its own temp dir (no file they could share), against one sandbox and read
the sandbox's own counts.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import pytest
import requests

from sandbox import postgres
from sandbox.admin import ClinikoSandboxAdmin
from sandbox.dagster_server import free_port
from sandbox.harness import running_server
from splose_resources.shared_limits import PostgresFixedWindowLimiter, PostgresSlidingWindowLimiter, budget_name
from tests.conftest import PROJECT

pytestmark = pytest.mark.postgres


@pytest.fixture
def shared_state_url():
    """A database of the test's own on the machine's PostgreSQL, as the URL a deployment would set."""
    postgres.ensure_running()
    name = f"shared_state_test_{uuid.uuid4().hex[:10]}"
    postgres.create_database(name)
    try:
        yield f"postgresql://{postgres.USER}@{postgres.HOST}:{postgres.PORT}/{name}"
    finally:
        postgres.drop_database(name)


def _hammer(limiter, stop: float, stamps: list[float]) -> None:
    while time.time() < stop:
        limiter.acquire()
        stamps.append(time.time())


def test_a_sliding_window_in_postgres_holds_across_limiters(shared_state_url):
    limit, window = 6, 0.8
    limiters = [
        PostgresSlidingWindowLimiter(
            url=shared_state_url, scope="splose", secret="token", tenant=t, limit=limit, window_seconds=window
        )
        for t in ("a", "b", "c")
    ]
    stamps: list[float] = []
    stop = time.time() + 2.5
    threads = [threading.Thread(target=_hammer, args=(lim, stop, stamps)) for lim in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stamps.sort()
    assert len(stamps) >= 2 * limit  # the budget was used, not just respected
    assert max(sum(s <= t < s + window for t in stamps) for s in stamps) <= limit


def test_fixed_windows_in_postgres_hold_the_budget_and_fill_each_window(shared_state_url):
    limit, window = 5, 1.0
    limiters = [
        PostgresFixedWindowLimiter(
            url=shared_state_url, scope="cliniko", secret="key", tenant="clinic-1", limit=limit, window_seconds=window
        )
        for _ in range(2)
    ]
    stamps: list[float] = []
    stop = math.floor(time.time()) + 3.5
    threads = [threading.Thread(target=_hammer, args=(lim, stop, stamps)) for lim in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    per_window = Counter(math.floor(t / window) for t in stamps)
    counts = [per_window[k] for k in sorted(per_window)]
    assert max(counts) == limit
    assert counts[1:-1] == [limit] * (len(counts) - 2)


def test_a_greedy_tenant_does_not_starve_a_modest_one(shared_state_url):
    """Four threads of one tenant against one of another: each still gets about half of the budget."""
    limit, window = 10, 1.0

    def limiter(tenant: str) -> PostgresSlidingWindowLimiter:
        return PostgresSlidingWindowLimiter(
            url=shared_state_url, scope="splose", secret="token", tenant=tenant, limit=limit, window_seconds=window
        )

    greedy, modest = limiter("greedy"), limiter("modest")
    sent: dict[str, list[float]] = {"greedy": [], "modest": []}
    begin = time.time()
    stop = begin + 5
    threads = [threading.Thread(target=_hammer, args=(greedy, stop, sent["greedy"])) for _ in range(4)]
    threads.append(threading.Thread(target=_hammer, args=(modest, stop, sent["modest"])))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # After the first window (where the greedy one may start alone), each gets about half.
    settled = {tenant: sum(t > begin + window for t in stamps) for tenant, stamps in sent.items()}
    total = sum(settled.values())
    assert total >= 3 * limit
    assert settled["modest"] >= 0.4 * total, settled


def test_a_tenant_alone_uses_the_whole_budget(shared_state_url):
    limiter = PostgresSlidingWindowLimiter(
        url=shared_state_url, scope="splose", secret="token", tenant="alone", limit=8, window_seconds=30
    )
    started = time.time()
    for _ in range(8):
        limiter.acquire()
    assert time.time() - started < 5
    assert limiter._try_take() > 20  # the ninth waits for the window


def test_budgets_are_named_by_a_hash_and_a_reset_spends_the_window(shared_state_url):
    limiter = PostgresFixedWindowLimiter(
        url=shared_state_url, scope="cliniko", secret="secret-key-au1", tenant="t", limit=5, window_seconds=60
    )
    reset = math.floor(time.time()) + 17
    limiter.observe_reset(reset)
    wait = limiter._try_take()
    assert abs(time.time() + wait - (reset + limiter.margin)) < 0.5

    with postgres.connect(shared_state_url.rsplit("/", 1)[1]) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT budget FROM rate_limit_budgets")
        (budget,) = cursor.fetchone()
    assert budget == budget_name("cliniko", "secret-key-au1")
    assert "secret" not in budget


# Several OS processes against one sandbox ------------------------------------------------------------------

WORKER = """
import json, sys, threading, time
from splose_resources.cliniko import ClinikoResource
from splose_resources.http import Secret
from splose_resources.splose import SploseResource

kind, url, secret, tenant, limit, window, shared, start, stop, threads = json.loads(sys.argv[1])
sent = []

def splose_calls():
    resource = SploseResource(api_url=url, platform_token=secret, import_requests_per_window=limit,
                              v1_requests_per_window=limit, window_seconds=window, shared_state_postgres_url=shared)
    with resource.imports(workspace_id=tenant) as imports:
        while time.time() < stop:
            list(imports.list_imports())
            sent.append(time.time())

def cliniko_calls():
    resource = ClinikoResource(api_url=url, requests_per_window=limit, window_seconds=window,
                               shared_state_postgres_url=shared)
    with resource.client(tenant, Secret(secret)) as client:
        while time.time() < stop:
            client.get_json("/businesses", resource="businesses")
            sent.append(time.time())

time.sleep(max(0.0, start - time.time()))
work = [threading.Thread(target=splose_calls if kind == "splose" else cliniko_calls) for _ in range(threads)]
for thread in work:
    thread.start()
for thread in work:
    thread.join()
print(json.dumps(sent))
"""


def run_workers(tmp_path, jobs: list[list]) -> list[list[float]]:
    """One OS process per job, each with a temp dir of its own and no rate-limit state dir."""
    processes = []
    for n, job in enumerate(jobs):
        private = tmp_path / f"worker-{n}"
        private.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "RATE_LIMIT_STATE_DIR"}
        env.update(TMPDIR=str(private), PYTHONPATH=str(PROJECT))
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, json.dumps(job)], env=env, stdout=subprocess.PIPE, text=True
            )
        )
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0
        results.append(json.loads(out))
    assert not any(p.name.endswith((".sliding", ".window")) for p in tmp_path.rglob("*"))
    return results


@pytest.mark.slow
def test_processes_without_shared_files_hold_the_splose_budget_and_share_it_fairly(shared_state_url, tmp_path):
    limit, window, token = 20, 2.0, "platform-shared-budget"
    args = [f"--platform-token={token}", "--db", str(tmp_path / "splose.db"), "--import-rate-limit", str(limit),
            "--rate-window", str(window)]  # fmt: skip
    with running_server("sandbox.splose", args, log_dir=tmp_path) as splose:
        tenants = [f"tenant-{n}" for n in range(4)]
        for tenant in tenants:
            requests.post(f"{splose.url}/_sandbox/workspaces", json={"id": tenant, "name": tenant}).raise_for_status()
        requests.post(f"{splose.url}/_sandbox/stats/reset")
        start = time.time() + 20  # every process imported and waiting
        stop = start + 5 * window
        # Two greedy tenants (four threads each) and two modest ones (one thread each).
        jobs = [
            ["splose", f"{splose.url}/v1", token, t, limit, window, shared_state_url, start, stop, 4 if n < 2 else 1]
            for n, t in enumerate(tenants)
        ]
        sent = run_workers(tmp_path, jobs)
        stats = requests.get(f"{splose.url}/_sandbox/stats").json()["keys"]["platform"]

    assert stats["throttled"] == 0
    assert stats["peakInAnyWindow"] <= limit
    counts = [sum(start <= t <= stop for t in stamps) for stamps in sent]
    total = sum(counts)
    assert total >= 4 * limit, counts  # about 5 windows' worth, all used
    assert min(counts) >= total / len(tenants) * 0.8, counts


@pytest.mark.slow
def test_processes_without_shared_files_hold_one_cliniko_key_budget(shared_state_url, tmp_path):
    limit, window = 15, 2.0
    args = ["--account", "one:3:tiny:au1", "--latency-ms", "0", "--jitter-ms", "0", "--rate-limit", str(limit),
            "--rate-window", str(window), "--data-dir", str(tmp_path / "cliniko")]  # fmt: skip
    with running_server("sandbox.cliniko", args, log_dir=tmp_path) as cliniko:
        admin = ClinikoSandboxAdmin(cliniko.url)
        key = admin.keys("one")["admin"]
        admin.reset_stats()
        start = time.time() + 20
        stop = start + 4 * window
        job = ["cliniko", f"{cliniko.url}/v1", key, "clinic-one", limit, window, shared_state_url, start, stop, 3]
        jobs = [job] * 3
        sent = run_workers(tmp_path, jobs)
        stats = admin.stats()

    (key_stats,) = [s for s in stats["keys"].values() if s["total"]]
    assert key_stats["rate_limited"] == 0
    assert max(key_stats["windows"].values()) <= limit
    assert sum(len(s) for s in sent) >= 3 * limit


def test_the_shared_state_url_is_never_shown():
    """The URL may carry a password: not in a resource's repr, nor in the error when the server is unreachable."""
    from splose_resources.cliniko import ClinikoResource
    from splose_resources.shared_limits import SharedStateError
    from splose_resources.splose import SploseResource

    url = f"postgresql://importer:s3cret-pw@127.0.0.1:{free_port()}/nowhere"  # nothing listens there
    assert "s3cret" not in repr(ClinikoResource(shared_state_postgres_url=url))
    assert "s3cret" not in repr(SploseResource(shared_state_postgres_url=url))
    with pytest.raises(SharedStateError) as failure:
        PostgresSlidingWindowLimiter(url=url, scope="splose", secret="t", tenant="a", limit=1, window_seconds=1)
    assert "s3cret" not in str(failure.value) and "SHARED_STATE_POSTGRES_URL" in str(failure.value)
    assert failure.value.__cause__ is None and failure.value.__suppress_context__
