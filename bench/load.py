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

Then, per scale, CPU and memory (a second table):

- ``extract CPU s/1k``: CPU seconds of the import's extraction steps per 1,000 records they fetched;
  ``load CPU s/1k written``: CPU seconds of every other step (mapping, loads, report) per 1,000 Splose
  records written. Both are read off the child's CPU time, sampled every 0.1 s, at each step's start and end,
  so only with ``--in-process`` (the steps one at a time in the child, none beside another); by default
  the steps run side by side in processes of their own and these show ``-``;
- ``process CPU s``: the child's whole CPU time (start-up and imports included), ``RSS MB`` its peak RSS,
  and the ratio of the last scale's peak RSS to the first's;
- ``<contender> s/1k`` and ``x``: the same clinic extracted after the import by ``bench/cpu.py``'s
  contenders (dlt's ``rest_api`` source run into local Parquet files, its extract step alone, a plain
  ``requests`` loop) from an unthrottled sandbox, CPU per 1,000 records with imports excluded, and its ratio
  to the import's extract CPU. ``--cpu-contenders ''`` skips them; dlt must be installed (``make bench-cpu``).

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
import os
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench import cpu  # noqa: E402
from bench.child import CpuClock, cpu_seconds, run_child_usage  # noqa: E402
from sandbox.admin import ClinikoSandboxAdmin  # noqa: E402
from sandbox.demo import submit_import  # noqa: E402
from sandbox.harness import running_server  # noqa: E402

ACCOUNT = "bench"
CLINIKO_LIMIT = 200
CLINIKO_LATENCY_MS = 150.0
CLINIKO_JITTER_MS = 50.0
STEPS = {True: "in-process", False: "side-by-side"}


def child_import(window: float, concurrency: int, outbox: str, in_process: bool) -> dict:
    """Evaluate the import-request sensor and run the job it asks for, steps side by side; what it reports."""
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from cliniko_assets.definitions import splose_resource
    from cliniko_assets.sensors import import_requests

    code_location = ReconstructableRepository.for_module("cliniko_assets.definitions", "defs", str(PROJECT))
    import_job = code_location.get_reconstructable_job("import_job")
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
        if in_process:  # one step at a time in this process: each step's CPU is read off this process's
            clock = CpuClock().start()
            result = import_job.get_definition().execute_in_process(
                instance=instance, run_config=run_config, tags=tags, raise_on_error=False
            )
            clock.stop()
            success, entries = result.success, [e for e in instance.all_logs(result.run_id) if e.dagster_event]
            step_cpu = clock.steps(entries)
        else:  # the job's own executor: steps side by side, each in a process of its own
            with dg.execute_job(import_job, instance=instance, run_config=run_config, tags=tags) as result:
                success, entries = result.success, [e for e in instance.all_logs(result.run_id) if e.dagster_event]
            step_cpu = {}
        elapsed = time.monotonic() - started
    found = _read_events(entries, started_epoch)
    extract_steps = {"cliniko_extract", "cliniko_attachments"}
    return {
        "started_epoch": started_epoch,
        "seconds": elapsed,
        "success": success,
        **found,
        "extract_cpu": sum(cpu for step, cpu in step_cpu.items() if step in extract_steps) if in_process else None,
        "load_cpu": sum(cpu for step, cpu in step_cpu.items() if step not in extract_steps) if in_process else None,
    }


def _read_events(entries: list, started_epoch: float) -> dict:
    """What the run's log says: records fetched and written, when the extraction ended, and the failures."""
    written: dict[str, int] = {}
    extracted = 0
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
            extracted += int(materialization.metadata["fetched"].value)
            continue
        meta = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
        for prefix in ("", "attendees_"):
            if f"{prefix}created" in meta:
                name = prefix.rstrip("_") or materialization.asset_key.path[-1]
                written[name] = sum(int(meta[f"{prefix}{action}"]) for action in ("created", "updated", "unchanged"))
    return {"written": written, "failures": failures, "extraction_end": extraction_end, "extracted": extracted}


def _per_thousand(cpu: float | None, records: int) -> float | None:
    return None if cpu is None else (cpu / records * 1000 if records else 0.0)


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


def bench_scale(
    scale: str, time_scale: float, concurrency: int, splose_latency_ms: float, progress: float, in_process: bool
) -> dict:
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
            f"--platform-token={token}", "--db", str(Path(workdir) / "splose.db"), "--import-rate-limit", "600",
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
                child, usage = run_child_usage(
                    __file__,
                    ["import", f"{window:g}", str(concurrency), str(Path(workdir) / "outbox"), STEPS[in_process]],
                    env,
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
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "process_cpu": cpu_seconds(usage),
        "extracted": child["extracted"],
        "extract_cpu_per_1k": _per_thousand(child["extract_cpu"], child["extracted"]),
        "load_cpu_per_1k": _per_thousand(child["load_cpu"], written),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "import":
        if os.environ.get(cpu.CODE_DIR):
            sys.path.insert(0, os.environ[cpu.CODE_DIR])  # another checkout's code (before/after figures)
        in_process = sys.argv[5] == "in-process"
        print(json.dumps(child_import(float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], in_process)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="small,large")
    parser.add_argument("--large-time-scale", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=6, help="ClinikoResource.concurrency (its default: 6)")
    parser.add_argument("--splose-latency-ms", type=float, default=0.0, help="real-time Splose latency (scaled)")
    parser.add_argument("--json", action="store_true", help="also print each row as JSON")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the import's steps one at a time in one process (no overlap), which the CPU table's per-step "
        "figures need; by default they run side by side, as the code location runs them",
    )
    parser.add_argument("--progress", type=float, default=60.0, help="seconds between progress lines (0: none)")
    parser.add_argument(
        "--cpu-contenders",
        default="dlt-run,dlt,requests",
        help="extractions of bench/cpu.py run against each scale's clinic for the CPU table ('' for none)",
    )
    args = parser.parse_args()
    rows = []
    for scale in args.scales.split(","):
        rows.append(bench_scale(scale, args.large_time_scale if scale == "large" else 1.0, args.concurrency,
                                args.splose_latency_ms, args.progress, args.in_process))  # fmt: skip
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
    contenders = tuple(c for c in args.cpu_contenders.split(",") if c)
    print_cpu(rows, {r["scale"]: cpu.run(r["scale"], 1, None, contenders) for r in rows} if contenders else {})


def print_cpu(rows: list[dict], others: dict[str, dict[str, dict]]) -> None:
    """CPU per 1,000 records of the import's extraction against the other extractions, loads' CPU, peak RSS."""
    names = list(next(iter(others.values()), {}))
    header = (f"{'scale':<7}{'extract CPU s/1k':>17}{'load CPU s/1k written':>23}{'process CPU s':>15}{'RSS MB':>8}"
              + "".join(f"{name + ' s/1k':>16}{'x':>7}" for name in names))  # fmt: skip
    print(f"\n{header}\n{'-' * len(header)}")
    for r in rows:
        extract, load = r["extract_cpu_per_1k"], r["load_cpu_per_1k"]
        line = (f"{r['scale']:<7}{'-' if extract is None else f'{extract:.3f}':>17}"
                f"{'-' if load is None else f'{load:.3f}':>23}"
                f"{r['process_cpu']:>15.1f}{r['peak_rss_mb']:>8.0f}")  # fmt: skip
        for name in names:
            other = cpu.per_thousand(others[r["scale"]][name], "work_cpu")
            line += f"{other:>16.3f}" + (f"{other / extract:>6.2f}x" if extract else f"{'-':>7}")
        print(line)
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"\npeak RSS {last['scale']} / {first['scale']}: {last['peak_rss_mb'] / first['peak_rss_mb']:.2f}x")
    print("\n(extract CPU: the import's cliniko_extract step / records fetched; load CPU: every other step of the")
    print(" import / Splose records written; both from the process's CPU time sampled at each step's start and end.")
    print(" <name> s/1k: that extraction's CPU, imports excluded, per 1,000 records of the same clinic, extracted from")
    print(" an unthrottled sandbox after the import (bench/cpu.py); x = it / the import's extract CPU s/1k. Measured")
    print(" above in this run. RSS MB: peak RSS of the process that ran the whole import.)")


if __name__ == "__main__":
    main()
