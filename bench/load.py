"""Load benchmark: the whole import (Cliniko -> Splose), end to end, against the floor of Cliniko's budget.

For each scale, one run of this script starts both sandboxes, sets up the clinic's Splose workspace
and submits its import request (as ``make demo`` does), then runs the import in a child process: the
import-request sensor builds the run, and ``import_job`` runs with its own executor (steps side by side,
each in a process of its own) on a temporary instance with a private STAGING_URI and
RATE_LIMIT_STATE_DIR. Then it reads what the Cliniko sandbox counted for the import's
key and what the splose/* materializations report. Printed per scale:

- ``written``: Splose records written = created + updated + unchanged summed over the splose/*
  materializations (group appointments' attendees included);
- ``rec/s``: written / end-to-end seconds;
- ``e2e s``: end-to-end seconds of the child (sensor evaluation + the whole ``import_job``), in the
  run's time; ``e2e real s`` is that times the time-scale factor (what it would take unscaled);
- ``Cliniko req``: the requests the sandbox counted for the import's key (files' signed URLs are not
  Cliniko API calls and are not counted);
- ``extract s``: when the last ``cliniko/*`` asset materialized, from the run's start; the loads run
  beside the extraction (each step as soon as what it reads is staged), so only what depends on the
  last resources comes after it;
- ``max/win``: the most Cliniko requests the sandbox counted in one of its windows (at most 200: the
  steps running side by side share the key's budget and never exceed it);
- ``floor s``: the least time Cliniko's budget allows for those requests, as its fixed windows allow it:
  the windows are aligned to the epoch and each admits 200, so the last request can go no earlier than
  the opening of window number ceil(requests / 200), counting the one the run starts in (whose budget
  the run can spend at once, however little of it is left in time). In the same (scaled) time units as
  ``e2e s``;
- ``ratio``: e2e / floor. 1.00x would be the pipeline's last step ending the moment the last window it
  needs opens; the excess over 1 is the time after that (the last requests, the loads and the report
  that depend on the last resources: Splose's limits and latency, transforms, staging, Dagster);
- ``429 C/S``: 429s the sandboxes returned (Cliniko for the key / Splose over all keys, within the
  last 100 windows the Splose sandbox keeps);
- ``RSS MB``: peak RSS of the largest process of the import (the child or one of its steps; ``os.wait4``);
- ``run``: ``FAILED`` when the import run failed or was interrupted: its row's written, rec/s and ratio
  then describe an unfinished import and mean nothing.

While an import runs, a progress line every ``--progress`` seconds gives the Cliniko requests so far and
their rate next to the rate the budget allows (200 per window): a measured partial figure for a scale too
big to finish, and a way to see whether the budget or something else (e.g. the sandbox's own speed)
bounds the run.

``small`` runs in real time. ``large`` is time-scaled: both sandboxes' budget windows (Cliniko
200 / 60 s, Splose import API 600 / 60 s and v1 60 / 60 s) and both latencies are divided by
``--large-time-scale`` (default 30), and the pipeline's resources are given the same shortened
windows, so the ratio means what it would in real time while the run takes minutes instead of hours.
CPU time is not scaled: work the pipeline does itself (transforms, staging, Dagster) weighs ``factor``
times more against the floor than it would in real time, so a scaled ratio is an upper bound. Both
rows are wall-clock on a shared host; compare ratios from one run, not across runs or machines.
``large`` takes about a minute to generate the first time (cached afterwards).

    .venv/bin/python bench/load.py                    # small, then large
    .venv/bin/python bench/load.py --scales large --large-time-scale 60
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench.child import run_child  # noqa: E402
from sandbox.admin import ClinikoSandboxAdmin  # noqa: E402
from sandbox.demo import submit_import  # noqa: E402
from sandbox.harness import running_server  # noqa: E402

ACCOUNT = "bench"
CLINIKO_LIMIT = 200
CLINIKO_LATENCY_MS = 150.0
CLINIKO_JITTER_MS = 50.0


def child_import(window: float, concurrency: int, outbox: str) -> dict:
    """Evaluate the import-request sensor and run the job it asks for, steps side by side; what it reports."""
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from cliniko_assets.definitions import splose_resource
    from cliniko_assets.sensors import import_requests

    import_job = ReconstructableRepository.for_module("cliniko_assets.definitions", "defs", str(PROJECT))
    with dg.instance_for_test() as instance:
        started_epoch, started = time.time(), time.monotonic()
        splose = splose_resource(window_seconds=window)
        sensor_result = import_requests(dg.build_sensor_context(instance=instance, resources={"splose": splose}))
        for request in sensor_result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        (run_request,) = sensor_result.run_requests
        run_config = dict(run_request.run_config)
        run_config["loggers"] = {"console": {"config": {"log_level": "WARNING"}}}
        run_config["resources"] = {
            **run_config.get("resources", {}),
            "extraction": {"config": {"full_refresh": True}},
            # Run config for a resource replaces the code location's: the URLs and the token are given again.
            "cliniko": {
                "config": {"api_url": {"env": "CLINIKO_API_URL"}, "window_seconds": window, "concurrency": concurrency}
            },
            "splose": {
                "config": {
                    "api_url": {"env": "SPLOSE_API_URL"},
                    "platform_token": {"env": "SPLOSE_PLATFORM_TOKEN"},
                    "window_seconds": window,
                }
            },
            "notifier": {"config": {"outbox": outbox}},
        }
        tags = {**run_request.tags, "dagster/partition": run_request.partition_key}
        with dg.execute_job(
            import_job.get_reconstructable_job("import_job"), instance=instance, run_config=run_config, tags=tags
        ) as result:
            elapsed = time.monotonic() - started
            entries = [entry for entry in instance.all_logs(result.run_id) if entry.dagster_event]
            success = result.success
    found = _read_events(entries, started_epoch)
    return {"started_epoch": started_epoch, "seconds": elapsed, "success": success, **found}


def _read_events(entries: list, started_epoch: float) -> dict:
    """What the run's log says: records written per row, when the extraction ended, and the failures."""
    written: dict[str, int] = {}
    failures = []
    extraction_end = 0.0
    for entry in entries:
        event = entry.dagster_event
        if event.event_type_value == "STEP_FAILURE":
            failures.append(f"{event.step_key}: {event.event_specific_data.error.message.strip()[:300]}")
        materialization = entry.asset_materialization
        if materialization is None:
            continue
        if materialization.asset_key.path[0] == "cliniko":
            extraction_end = max(extraction_end, entry.timestamp - started_epoch)
            continue
        meta = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
        for prefix in ("", "attendees_"):
            if f"{prefix}created" in meta:
                name = prefix.rstrip("_") or materialization.asset_key.path[-1]
                written[name] = sum(int(meta[f"{prefix}{action}"]) for action in ("created", "updated", "unchanged"))
    return {"written": written, "failures": failures, "extraction_end": extraction_end}


def budget_floor(requests_needed: int, started_epoch: float, window: float, limit: int = CLINIKO_LIMIT) -> float:
    """The least time, from the run's start, in which Cliniko's fixed windows let ``requests_needed`` through.

    Windows are aligned to the epoch (as the sandbox's and Cliniko's are) and each admits ``limit``
    requests; the run may spend the rest of the window it starts in at once. The last request can go no
    earlier than the opening of window number ceil(requests / limit), counting the one the run starts in.
    """
    windows = math.ceil(requests_needed / limit)
    first_window_start = math.floor(started_epoch / window) * window
    return max(0.0, first_window_start + (windows - 1) * window - started_epoch)


def report_progress(admin: ClinikoSandboxAdmin, scale: str, window: float, every: float, stop: threading.Event) -> None:
    """While the import runs: the Cliniko requests so far and their rate against the budget's (measured, partial)."""
    started = time.monotonic()
    while not stop.wait(every):
        try:
            total = admin.stats()["keys"].get(f"{ACCOUNT}/admin", {}).get("total", 0)
        except requests.RequestException:
            continue
        elapsed = time.monotonic() - started
        print(
            f"[{scale}] {elapsed:.0f}s: {total} Cliniko requests, {total / elapsed:.1f}/s "
            f"(the budget allows {CLINIKO_LIMIT / window:.1f}/s)",
            flush=True,
        )


def bench_scale(scale: str, time_scale: float, concurrency: int, splose_latency_ms: float, progress: float) -> dict:
    window = 60 / time_scale
    cliniko_latency = CLINIKO_LATENCY_MS / time_scale
    token = secrets.token_urlsafe(24)
    workspace = f"bench-{scale}"
    with tempfile.TemporaryDirectory(prefix=f"bench-load-{scale}-") as workdir:
        cliniko_args = [
            "--account", f"{ACCOUNT}:1:{scale}:au1", "--latency-ms", f"{cliniko_latency:.3f}",
            "--jitter-ms", f"{CLINIKO_JITTER_MS / time_scale:.3f}", "--rate-limit", str(CLINIKO_LIMIT),
            "--rate-window", f"{window:g}", "--data-dir", str(Path(workdir) / "cliniko"),
        ]  # fmt: skip
        splose_args = [
            "--platform-token", token, "--db", str(Path(workdir) / "splose.db"), "--import-rate-limit", "600",
            "--v1-rate-limit", "60", "--rate-window", f"{window:g}",
            "--latency-ms", f"{splose_latency_ms / time_scale:.3f}",
        ]  # fmt: skip
        print(f"[{scale}] starting the sandboxes (generating the clinic if not cached)...", flush=True)
        with (
            running_server("sandbox.cliniko", cliniko_args, log_dir=workdir) as cliniko,
            running_server("sandbox.splose", splose_args, log_dir=workdir) as splose,
        ):
            admin = ClinikoSandboxAdmin(cliniko.url)
            print(f"[{scale}] setting up workspace '{workspace}' and submitting the import...", flush=True)
            import_id = submit_import(admin, ACCOUNT, splose.url, workspace)
            env = {
                "CLINIKO_API_URL": f"{cliniko.url}/{{shard}}/v1",
                "SPLOSE_API_URL": f"{splose.url}/v1",
                "SPLOSE_PLATFORM_TOKEN": token,
                "STAGING_URI": str(Path(workdir) / "staging"),
                "RATE_LIMIT_STATE_DIR": str(Path(workdir) / "rate"),
                "DAGSTER_HOME": str(Path(workdir) / "home"),
            }
            Path(env["DAGSTER_HOME"]).mkdir()
            admin.reset_stats()
            print(f"[{scale}] running import {import_id} (time scale {time_scale:g})...", flush=True)
            stop = threading.Event()
            watcher = threading.Thread(target=report_progress, args=(admin, scale, window, progress, stop), daemon=True)
            if progress > 0:
                watcher.start()
            try:
                child, rss = run_child(
                    __file__, ["import", f"{window:g}", str(concurrency), str(Path(workdir) / "outbox")], env
                )
            finally:
                stop.set()
                if watcher.is_alive():
                    watcher.join()
            key_stats = admin.stats()["keys"][f"{ACCOUNT}/admin"]
            splose_stats = requests.get(f"{splose.url}/_sandbox/stats", timeout=60).json()["keys"]
    if not child["success"]:
        print(f"[{scale}] the import run FAILED:", *child["failures"], sep="\n  ", flush=True)
    cliniko_requests = key_stats["total"]
    floor = budget_floor(cliniko_requests, child["started_epoch"], window)
    written = sum(child["written"].values())
    return {
        "scale": scale,
        "time_scale": time_scale,
        "success": child["success"],
        "written": written,
        "written_by_row": child["written"],
        "records_per_s": written / child["seconds"],
        "seconds": child["seconds"],
        "real_seconds": child["seconds"] * time_scale,
        "cliniko_requests": cliniko_requests,
        "floor_seconds": floor,
        "ratio": child["seconds"] / floor if floor else float("inf"),
        "extraction_end": child["extraction_end"],
        "busiest_window": max(key_stats["windows"].values(), default=0),
        "cliniko_429": key_stats.get("rate_limited", 0),
        "splose_429": sum(entry["throttled"] for entry in splose_stats.values()),
        "peak_rss_mb": rss / 2**20,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "import":
        print(json.dumps(child_import(float(sys.argv[2]), int(sys.argv[3]), sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="small,large")
    parser.add_argument("--large-time-scale", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=6, help="ClinikoResource.concurrency (its default: 6)")
    parser.add_argument("--splose-latency-ms", type=float, default=0.0, help="real-time Splose latency (scaled)")
    parser.add_argument("--json", action="store_true", help="also print each row as JSON")
    parser.add_argument("--progress", type=float, default=60.0, help="seconds between progress lines (0: none)")
    args = parser.parse_args()
    rows = []
    for scale in args.scales.split(","):
        rows.append(bench_scale(scale, args.large_time_scale if scale == "large" else 1.0, args.concurrency,
                                args.splose_latency_ms, args.progress))  # fmt: skip
        if args.json:
            print(json.dumps(rows[-1]), flush=True)
    print()
    header = (f"{'scale':<7}{'factor':>7}{'written':>9}{'rec/s':>9}{'e2e s':>9}{'e2e real s':>12}"
              f"{'extract s':>11}{'Cliniko req':>13}{'max/win':>9}{'floor s':>9}{'ratio':>8}{'429 C/S':>10}"
              f"{'RSS MB':>8}  run")  # fmt: skip
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['scale']:<7}{r['time_scale']:>7g}{r['written']:>9}{r['records_per_s']:>9.1f}{r['seconds']:>9.1f}"
            f"{r['real_seconds']:>12.0f}{r['extraction_end']:>11.1f}{r['cliniko_requests']:>13}"
            f"{r['busiest_window']:>9}{r['floor_seconds']:>9.1f}{r['ratio']:>7.2f}x"
            f"{r['cliniko_429']:>5}/{r['splose_429']:<4}{r['peak_rss_mb']:>8.0f}  {'ok' if r['success'] else 'FAILED'}"
        )
    print("\n(floor = from the run's start to the opening of the window its last Cliniko request needs, at 200 per")
    print(" fixed window, the window it starts in counted from its start; ratio = e2e / floor, both measured above in")
    print(" this run. extract s = when the last cliniko/* asset materialized; max/win = most Cliniko requests the")
    print(" sandbox counted in one window (at most 200). Time-scaled rows divide every budget window and latency by")
    print(" the factor: their rec/s, e2e s, extract s and floor s are in scaled time; e2e real s = e2e s x factor.)")


if __name__ == "__main__":
    main()
