"""Many tenants at once: N clinics imported in parallel by the daemon, against one clinic alone.

Each row is one fleet (sandbox/fleet.py): a Cliniko sandbox with one account (one key) per tenant, one
Splose sandbox (one platform token), a fresh database on the machine's Postgres holding both Dagster's
storage (the production ``dagster.yaml``: queued run coordinator, one run per tenant) and the shared rate
limits (``SHARED_STATE_POSTGRES_URL``), and ``dagster-daemon`` launching one run per import request.
Printed per row:

- ``wall s``: from the first import run's creation to the last one's end (the queue's and the runs' time,
  not the sandboxes' start-up);
- ``x alone``: that wall time over the single tenant's;
- ``floor s``: the least time the budgets allow: the busiest key's Cliniko requests at 200 per 60 s
  (every tenant has its own key, so they run side by side), or every tenant's Splose calls at the one
  token's 600 per 60 s, whichever is longer;
- ``Cliniko req``: requests of the busiest key / of all keys; ``Splose calls``: the platform token's calls;
- ``429 C/S``: 429s the sandboxes answered (Cliniko, all keys / Splose, the token);
- ``runs``: the tenants' run durations (min-max seconds) and how many succeeded.

The machine's two cores are shared by the N run processes (each its own Python with Dagster), so N
tenants cost CPU that one does not: the ratio is an upper bound for a cluster, where each run gets its pod.

    .venv/bin/python bench/tenants.py                  # 1 then 5 tiny clinics
    .venv/bin/python bench/tenants.py --scale small --tenants 5
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import uuid
from pathlib import Path

import dagster as dg

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench.child import stop_on_sigterm  # noqa: E402
from sandbox import postgres  # noqa: E402
from sandbox.fleet import daemon, fleet, production_home, run_window, wait_for_imports  # noqa: E402

CLINIKO_LIMIT, SPLOSE_LIMIT, WINDOW = 200, 600, 60.0


def measure(count: int, scale: str, timeout: float) -> dict:
    """Import ``count`` clinics of ``scale`` at once through the daemon; what the row prints."""
    token = "platform-" + secrets.token_urlsafe(16)
    database = f"bench_tenants_{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix="bench-tenants-") as workdir:
        root = Path(workdir)
        home = root / "dagster_home"
        env = production_home(home, database)
        os.environ.update(env)  # this process reads the instance too
        try:
            scales = {f"clinic-{n}": scale for n in range(count)}
            with fleet(scales, root, token) as pool:
                pool.submit_all()
                run_env = {**env, **pool.environment(), "TMPDIR": workdir}
                with daemon(home, run_env), dg.DagsterInstance.from_config(str(home)) as instance:
                    runs = wait_for_imports(instance, pool, timeout)
                    created = min(instance.get_run_record_by_id(r.run_id).create_timestamp for r in runs.values())
                    windows = [run_window(instance, run) for run in runs.values()]
                    succeeded = sum(run.status == dg.DagsterRunStatus.SUCCESS for run in runs.values())
                cliniko = pool.cliniko_stats()
                splose = pool.splose_stats()
        finally:
            postgres.drop_database(database)
    per_key = [stats.get("total", 0) for stats in cliniko.values()]
    calls = splose.get("requests", 0)
    durations = [end - start for start, end in windows]
    return {
        "tenants": count,
        "wall": max(end for _, end in windows) - created.timestamp(),
        "floor": max(max(per_key) / CLINIKO_LIMIT, calls / SPLOSE_LIMIT) * WINDOW,
        "cliniko_max": max(per_key),
        "cliniko_all": sum(per_key),
        "splose": calls,
        "c429": sum(stats.get("rate_limited", 0) for stats in cliniko.values()),
        "s429": splose.get("throttled", 0),
        "peak": splose.get("peakInAnyWindow", 0),
        "durations": (min(durations), max(durations)),
        "succeeded": succeeded,
    }


def main(argv: list[str] | None = None) -> int:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--scale", default="tiny", choices=["tiny", "small"])
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args(argv)
    postgres.ensure_running()

    rows = [measure(1, args.scale, args.timeout), measure(args.tenants, args.scale, args.timeout)]
    alone = rows[0]["wall"]
    print(f"scale {args.scale}; every tenant's own Cliniko key, one Splose platform token; daemon on Postgres")
    print(
        f"{'tenants':>7}  {'wall s':>7}  {'x alone':>7}  {'floor s':>7}  {'Cliniko req max/all':>19}  "
        f"{'Splose calls':>12}  {'peak/600':>8}  {'429 C/S':>7}  runs"
    )
    for row in rows:
        low, high = row["durations"]
        print(
            f"{row['tenants']:>7}  {row['wall']:>7.1f}  {row['wall'] / alone:>6.2f}x  {row['floor']:>7.1f}  "
            f"{row['cliniko_max']:>9}/{row['cliniko_all']:<9}  {row['splose']:>12}  {row['peak']:>8}  "
            f"{row['c429']:>3}/{row['s429']:<3}  {low:.0f}-{high:.0f} s, {row['succeeded']}/{row['tenants']} ok"
        )
    return 0 if all(row["succeeded"] == row["tenants"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
