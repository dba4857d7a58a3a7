"""Load benchmark: the whole import (Cliniko -> Splose), end to end, against the floor of Cliniko's budget.

For each scale, one run of this script starts both sandboxes, sets up the clinic's Splose workspace
and submits its import request (as ``make demo`` does), then runs the import in a child process: the
import-request sensor builds the run, and ``import_job`` runs on an instance of its own (the embedded
default's instance class and storage, ``dagster.local.yaml``) with a private STAGING_URI and
RATE_LIMIT_STATE_DIR. Then it reads what the Cliniko sandbox counted for the import's key and what the
splose/* materializations report. Printed per scale:

- ``written``: Splose records written = created + updated + unchanged summed over the splose/*
  materializations (group appointments' attendees included);
- ``rec/s``: written / end-to-end seconds;
- ``e2e s``: end-to-end seconds of the child (sensor evaluation + the whole ``import_job``), in the
  run's time; ``e2e real s`` is that times the time-scale factor (what it would take unscaled);
- ``Cliniko req``: the requests the sandbox counted for the import's key (files' signed URLs are not
  Cliniko API calls and are not counted);
- ``floor s``: the least time Cliniko's fixed windows allow for those requests (:func:`budget_floor`): from
  the run's start to the opening of window number ceil(requests / 200), the window the run starts in
  counted as the first. Each import is launched as a window opens: a run that starts in a window's last
  seconds cannot spend that window's budget before Dagster has started, so the ratio would otherwise hang
  on where in a window the run happened to start (seen for the small clinic: 2.12x for a start 2.6 s
  before a window closed, 1.07x and 1.13x for starts well inside one);
- ``ratio``: e2e / floor. 1.00x would be the pipeline's last Cliniko request going out the moment its
  window opens and nothing after it; the excess is time spent elsewhere (Splose's limits and latency,
  transforms, staging, Dagster);
- ``429 C/S``: 429s the sandboxes returned (Cliniko for the key / Splose over all keys, within the
  last 100 windows the Splose sandbox keeps);
- ``RSS MB``: the largest RSS any one process of the import reached: the child that ran it or one of its
  step processes (``bench/child.py``'s ``TreeSampler`` reads ``/proc`` every 0.25 s; ``os.wait4`` of the
  child would not count the step processes, which a forkserver starts and reaps);
- ``run``: ``FAILED`` when the import run failed or was interrupted: its row's written, rec/s and ratio
  then describe an unfinished import and mean nothing.

Then, per scale, CPU and memory (a second table):

- ``extract CPU s/1k``: CPU seconds of the import's extraction steps per 1,000 records they fetched;
  ``load CPU s/1k written``: CPU seconds of every other step (mapping, loads, report) per 1,000 Splose
  records written. Step ``patient_files`` both downloads and uploads the files: the CPU its load took
  (``upload_cpu_seconds`` of ``splose/files``: the uploads on their own threads, and on the step's thread the
  load's set-up, each file handed over and the rest sent) counts as the loads', the rest as extraction. By
  default the steps run side by side, each in a process of its own that Dagster's forkserver starts with the
  project already imported: a step's CPU is all its process used, read from ``/proc`` as the process ends
  (``bench/child.py``'s ``TreeSampler``: the jump of its parent's counters of reaped children's CPU, the
  fork server's; before, the last of the samples taken every 0.25 s, which missed a step's last fraction of an
  interval and, for a step shorter than one, all of it). With ``--in-process`` the
  steps run one at a time in the child, and each one's CPU is the child's, sampled every 0.1 s, at the
  step's start and end;
- ``lists s/1k``: the extraction CPU less what the downloads of attachments' bytes took on their worker threads
  (``download_cpu_seconds`` of ``cliniko/patient_attachments``, summed with ``time.thread_time``), per 1,000
  records fetched: the listing of the same routes and records the contenders below read, which fetch no bytes;
- ``process CPU s``: the CPU time of every process of the import (start-up and imports included), ``RSS MB``
  as above, ``PSS MB`` the largest total PSS of those processes at one sample (their real joint footprint),
  and the ratio of the last scale's peak RSS to the first's;
- ``<contender> s/1k`` and ``x``: the same clinic extracted after the import by ``bench/cpu.py``'s
  contenders (dlt's ``rest_api`` source run into local Parquet files, its extract step alone, a plain
  ``requests`` loop) from an unthrottled sandbox, CPU per 1,000 records with imports excluded, and its ratio
  to the import's ``lists`` CPU (like for like: the same routes, no bytes). ``--cpu-contenders ''`` skips
  them; dlt must be installed (``make bench-cpu``).

Then, on the same instance and staging, the clinic is re-synced twice (incremental extraction, as the
nightly re-sync does): unchanged, and after 1% of its live records were edited in Cliniko. A second table
gives the Splose requests (every API call, counted per route by the Splose sandbox) of the first import
and of each re-sync, the Cliniko requests of each re-sync, and the bound a re-sync with those changes
should stay within: 2 x (changed records / 500 + files uploaded + 30).

While an import runs, a progress line every ``--progress`` seconds gives the Cliniko requests so far and
their rate next to the rate the budget allows (200 per window): a measured partial figure for a scale too
big to finish, and a way to see whether the budget or something else (e.g. the sandbox's own speed)
bounds the run.

``small`` runs in real time. ``large`` is time-scaled: both sandboxes' budget windows (Cliniko
200 / 60 s, Splose import API 600 / 60 s and v1 60 / 60 s) and both latencies are divided by
``--large-time-scale`` (default 10), and the pipeline's resources are given the same shortened
windows, so the ratio means what it would in real time while the run takes minutes instead of hours.
CPU time is not scaled: work the pipeline does itself (transforms, staging, Dagster), and the work of
both sandboxes on the same host, weighs ``factor`` times more against the floor than it would in real
time, so a scaled ratio is an upper bound. At 30 on a 2-core host the large import is bound by that CPU
(800,000 records through two sandboxes and the pipeline) rather than by Cliniko's budget; at 10 the
extraction runs at the budget, as it would in real time. Both rows are wall-clock on a shared host;
compare ratios from one run, not across runs or machines.
``large`` takes about a minute to generate the first time (cached afterwards).

    .venv/bin/python bench/load.py                    # small, then large
    .venv/bin/python bench/load.py --scales large --large-time-scale 30 --no-resyncs
    BENCH_CODE_DIR=/tmp/main-code .venv/bin/python bench/load.py --scales small   # the import on another checkout
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
from collections import Counter
from pathlib import Path

import requests
import yaml

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench import cpu  # noqa: E402
from bench.child import (  # noqa: E402
    CpuClock,
    embedded_instance,
    run_child_tree,
    run_child_usage,
    stop_on_sigterm,
    use_project_code,
)
from sandbox.admin import ClinikoSandboxAdmin  # noqa: E402
from sandbox.demo import submit_import  # noqa: E402
from sandbox.harness import running_server  # noqa: E402

if __name__ == "__mp_main__" and os.environ.get(cpu.CODE_DIR):
    # Imported again by the forkserver that starts the run's step processes (the imports above put this
    # checkout first): their project code comes from the checkout the run is measuring.
    use_project_code(os.environ[cpu.CODE_DIR])

ACCOUNT = "bench"
CLINIKO_LIMIT = 200
CLINIKO_LATENCY_MS = 150.0
CLINIKO_JITTER_MS = 50.0
STEPS_VARIABLE = "BENCH_LOAD_STEPS"  # "in-process": the import's steps one at a time in the child
# The steps that extract; every other step maps or loads.
# patient_files also uploads the files as they download: the CPU its load took (upload_cpu_seconds of
# splose/files, measured with time.thread_time on the threads that did it) counts as the loads'.
EXTRACTING = ("cliniko_clinic", "cliniko_extract", "patient_files")


def child_import(window: float, concurrency: int, resync: str) -> dict:
    """Run the import job: built by the import-request sensor (a first import), or for import ``resync`` (a
    re-sync of it, incremental, on the same instance and staging); everything it reports, as JSON."""
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from cliniko_assets.definitions import defs, splose_resource
    from cliniko_assets.sensors import import_requests, run_config_for

    splose = splose_resource(window_seconds=window)
    with dg.DagsterInstance.get() as instance:  # the bench's own DAGSTER_HOME: cursors survive for re-syncs
        started_epoch, started = time.time(), time.monotonic()
        if resync:
            partition_key, tags = f"bench-{resync.split(':')[0]}", {}
            run_config = run_config_for({"id": resync.split(":")[1]})
        else:
            sensor_result = import_requests(dg.build_sensor_context(instance=instance, resources={"splose": splose}))
            for request in sensor_result.dynamic_partitions_requests:
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            (run_request,) = sensor_result.run_requests
            partition_key, tags = run_request.partition_key, run_request.tags
            run_config = dict(run_request.run_config)
            run_config["resources"] = {**run_config["resources"], "extraction": {"config": {"full_refresh": True}}}
        run_config["loggers"] = {"console": {"config": {"log_level": "WARNING"}}}
        run_config["resources"] = {**run_config["resources"], **_budgets(window, concurrency)}
        tags = {**tags, "dagster/partition": partition_key}
        if os.environ.get(STEPS_VARIABLE) == "in-process":  # one step at a time: each step's CPU is this process's
            clock = CpuClock().start()
            result = defs.resolve_job_def("import_job").execute_in_process(
                instance=instance, run_config=run_config, tags=tags, raise_on_error=False
            )
            clock.stop()
            step_cpu, events, success = clock.steps(instance.all_logs(result.run_id)), result.all_events, result.success
        else:  # the job's own executor: its steps side by side, each in a process of its own
            # The step processes load the code location from this folder first: another checkout's with BENCH_CODE_DIR.
            code = os.environ.get(cpu.CODE_DIR) or str(PROJECT)
            code_location = ReconstructableRepository.for_module("cliniko_assets.definitions", "defs", code)
            job = code_location.get_reconstructable_job("import_job")
            with dg.execute_job(job, instance=instance, run_config=run_config, tags=tags) as result:
                step_cpu, events, success = {}, list(result.all_events), result.success
        elapsed = time.monotonic() - started
    written: dict[str, int] = {}
    extracted = 0
    sent: dict[str, int] = {}  # created + updated: what Splose had to take (unchanged records are not sent)
    upload_cpu = 0.0
    download_cpu = 0.0
    failures = []
    step_pids: dict[str, str] = {}  # pid -> the step it ran (each step in a process of its own)
    for event in events:
        if event.event_type_value == "STEP_START" and event.pid is not None:
            step_pids[str(event.pid)] = event.step_key
        if event.event_type_value == "STEP_FAILURE":
            failures.append(f"{event.step_key}: {event.event_specific_data.error.message.strip()[:300]}")
        if event.event_type_value != "ASSET_MATERIALIZATION":
            continue
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.path[0] == "cliniko":
            extracted += int(materialization.metadata["fetched"].value)
            if "download_cpu_seconds" in materialization.metadata:
                download_cpu += float(materialization.metadata["download_cpu_seconds"].value)
        if materialization.asset_key.path[0] != "splose":
            continue
        meta = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
        upload_cpu += float(meta.get("upload_cpu_seconds") or 0.0)
        for prefix in ("", "attendees_"):
            if f"{prefix}created" in meta:
                name = prefix.rstrip("_") or materialization.asset_key.path[-1]
                written[name] = sum(int(meta[f"{prefix}{action}"]) for action in ("created", "updated", "unchanged"))
                sent[name] = int(meta[f"{prefix}created"]) + int(meta[f"{prefix}updated"])
    return {
        "started_epoch": started_epoch,
        "seconds": elapsed,
        "written": written,
        "sent": sent,
        "success": success,
        "failures": failures,
        "step_pids": step_pids,
        "extracted": extracted,
        "step_cpu": step_cpu,
        "upload_cpu": upload_cpu,
        "download_cpu": download_cpu,
    }


def _budgets(window: float, concurrency: int) -> dict:
    """The resources' budgets for the bench, as run config (a resource given run config is rebuilt from it
    alone; its URLs and token, the deployment's, are read from the environment, and the emails go to the
    outbox in the bench's DAGSTER_HOME)."""
    return {
        "cliniko": {"config": {"window_seconds": window, "concurrency": concurrency}},
        "splose": {"config": {"window_seconds": window}},
    }


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
    scale: str,
    time_scale: float,
    concurrency: int,
    splose_latency_ms: float,
    progress: float,
    skip_resyncs: bool,
    group_attendees_only: bool = False,
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
            *(["--group-attendees-only", ACCOUNT] if group_attendees_only else []),
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
            code = Path(os.environ.get(cpu.CODE_DIR) or PROJECT)  # the instance config of the code measured
            instance = {**embedded_instance(code), "telemetry": {"enabled": False}}
            (Path(env["DAGSTER_HOME"]) / "dagster.yaml").write_text(yaml.safe_dump(instance))
            admin.reset_stats()
            print(f"[{scale}] running import {import_id} (time scale {time_scale:g})...", flush=True)
            stop = threading.Event()
            watcher = threading.Thread(target=report_progress, args=(admin, scale, window, progress, stop), daemon=True)
            if progress > 0:
                watcher.start()
            child_args = ["import", f"{window:g}", str(concurrency)]
            splose_before = splose_requests(splose.url)
            # Launched as a budget window opens: a run started in a window's last seconds could not spend that
            # window's budget before Dagster has started its first step, so the ratio would hang on the phase.
            opening = window - time.time() % window
            print(f"[{scale}] launching as the next budget window opens (in {opening:.1f} s)...", flush=True)
            time.sleep(opening)
            try:
                child, usage = run_child_tree(__file__, [*child_args, ""], env)
            finally:
                stop.set()
                if watcher.is_alive():
                    watcher.join()
            key_stats = admin.stats()["keys"][f"{ACCOUNT}/admin"]
            splose_stats = requests.get(f"{splose.url}/_sandbox/stats", timeout=60).json()["keys"]
            first_splose = splose_requests(splose.url) - splose_before
            floor = budget_floor(key_stats["total"], child["started_epoch"], window)
            step_of = {int(pid): step for pid, step in child["step_pids"].items()}
            rss_by_step = usage.peaks_by(step_of)
            # Side by side, each step's CPU is its own process's; in process, the child measured it per step.
            step_cpu = child["step_cpu"] or {k: v for k, v in usage.cpu_by(step_of).items() if k != "run"}
            print(
                f"[{scale}] import {'done' if child['success'] else 'FAILED'}: e2e {child['seconds']:.1f} s, floor "
                f"{floor:.1f} s ({child['seconds'] / floor if floor else float('inf'):.2f}x), Cliniko requests "
                f"{key_stats['total']}, Splose requests {first_splose}, peak RSS {usage.peak_rss_mb:.0f} MB",
                flush=True,
            )
            print(f"[{scale}] peak RSS by step (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in rss_by_step.items()))
            ranked = sorted(step_cpu.items(), key=lambda item: -item[1])
            print(f"[{scale}] CPU s by step: " + ", ".join(f"{k} {v:.2f}" for k, v in ranked), flush=True)
            resyncs: dict = {}
            if child["success"] and not skip_resyncs:
                try:
                    resyncs = bench_resyncs(admin, splose.url, env, [*child_args, f"{scale}:{import_id}"])
                except (requests.RequestException, RuntimeError) as exc:  # keep the import's row
                    print(f"[{scale}] the re-syncs could not be measured: {type(exc).__name__}", flush=True)
    if not child["success"]:
        print(f"[{scale}] the import run FAILED:", *child["failures"], sep="\n  ", flush=True)
    cliniko_requests = key_stats["total"]
    written = sum(child["written"].values())
    extract_cpu = sum(cpu for step, cpu in step_cpu.items() if step in EXTRACTING) - child["upload_cpu"]
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
        "cliniko_429": key_stats.get("rate_limited", 0),
        "splose_429": sum(entry["throttled"] for entry in splose_stats.values()),
        "peak_rss_mb": usage.peak_rss_mb,
        "peak_pss_mb": usage.peak_pss_mb,
        "peak_rss_by_step": rss_by_step,
        "process_cpu": usage.cpu_s,
        "extracted": child["extracted"],
        "cpu_by_step": step_cpu,
        "extract_cpu_per_1k": extract_cpu / child["extracted"] * 1000 if child["extracted"] else 0.0,
        "lists_cpu_per_1k": (extract_cpu - child["download_cpu"]) / child["extracted"] * 1000
        if child["extracted"]
        else 0.0,
        "load_cpu_per_1k": (sum(step_cpu.values()) - extract_cpu) / written * 1000 if written else 0.0,
        "splose_requests": first_splose,
        **resyncs,
    }


def splose_requests(url: str) -> int:
    """Every API call the Splose sandbox answered so far (all routes, all keys)."""
    return sum(splose_routes(url).values())


def splose_routes(url: str) -> Counter:
    """The API calls the Splose sandbox answered so far, by route ("METHOD /path/{template}")."""
    return Counter(requests.get(f"{url}/_sandbox/stats", timeout=60).json()["routes"])


def bench_resyncs(admin: ClinikoSandboxAdmin, splose_url: str, env: dict[str, str], child_args: list[str]) -> dict:
    """Re-sync the imported clinic unchanged, then after changing 1% of its records in Cliniko: the Splose
    requests of each, and the bound the re-sync should stay within (2 x (changed / 500 + changed files + 30))."""
    found: dict = {}
    for label in ("unchanged", "changed"):
        if label == "changed":
            live = sum(n for counts in admin.truth(ACCOUNT).values() for s, n in counts.items() if s != "deleted")
            changed = admin.mutate(ACCOUNT, seed=11, updates=max(1, live // 100))["changed"]
            found["changed_records"] = sum(len(ids) for kinds in changed.values() for ids in kinds.values())
        before, cliniko_before = splose_routes(splose_url), admin.requests_by_route(ACCOUNT, "admin")
        print(f"[resync] re-syncing ({label})...", flush=True)
        child, _ = run_child_usage(__file__, child_args, env)
        routes = splose_routes(splose_url) - before
        found[f"resync_{label}_splose"] = sum(routes.values())
        print(f"[resync] {label}: Splose {sum(routes.values())} requests: {dict(routes.most_common())}", flush=True)
        paths = admin.requests_by_route(ACCOUNT, "admin") - cliniko_before
        found[f"resync_{label}_cliniko"] = sum(paths.values())
        print(f"[resync] {label}: Cliniko {sum(paths.values())} requests: {dict(paths.most_common())}", flush=True)
        found[f"resync_{label}_ok"] = child["success"]
        found[f"resync_{label}_files"] = child["sent"].get("files", 0)
    found["resync_changed_bound"] = 2 * (found["changed_records"] / 500 + found["resync_changed_files"] + 30)
    return found


def main() -> None:
    stop_on_sigterm()
    if len(sys.argv) > 1 and sys.argv[1] == "import":
        if os.environ.get(cpu.CODE_DIR):
            use_project_code(os.environ[cpu.CODE_DIR])
        print(json.dumps(child_import(float(sys.argv[2]), int(sys.argv[3]), sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="small,large")
    parser.add_argument("--large-time-scale", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=6, help="ClinikoResource.concurrency (its default: 6)")
    parser.add_argument("--splose-latency-ms", type=float, default=0.0, help="real-time Splose latency (scaled)")
    parser.add_argument("--json", action="store_true", help="also print each row as JSON")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the import's steps one at a time in one process (no overlap), which the CPU table's per-step "
        "figures need; by default they run side by side, as the code location runs them",
    )
    parser.add_argument("--no-resyncs", action="store_true", help="measure the first import only")
    parser.add_argument(
        "--group-attendees-only",
        action="store_true",
        help="the clinic's /attendees holds group appointments' attendees only, not also one per individual "
        "appointment as a real account's (and by default the sandbox's) does",
    )
    parser.add_argument("--progress", type=float, default=60.0, help="seconds between progress lines (0: none)")
    parser.add_argument(
        "--cpu-contenders",
        default="dlt-run,dlt,requests",
        help="extractions of bench/cpu.py run against each scale's clinic for the CPU table ('' for none)",
    )
    args = parser.parse_args()
    if args.in_process:
        os.environ[STEPS_VARIABLE] = "in-process"
    rows = []
    for scale in args.scales.split(","):
        rows.append(bench_scale(scale, args.large_time_scale if scale == "large" else 1.0, args.concurrency,
                                args.splose_latency_ms, args.progress, args.no_resyncs,
                                args.group_attendees_only))  # fmt: skip
        if args.json:
            print(json.dumps(rows[-1]), flush=True)
    print()
    header = (f"{'scale':<7}{'factor':>7}{'written':>9}{'rec/s':>9}{'e2e s':>9}{'e2e real s':>12}"
              f"{'Cliniko req':>13}{'floor s':>9}{'ratio':>8}{'429 C/S':>10}{'RSS MB':>8}  run")  # fmt: skip
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['scale']:<7}{r['time_scale']:>7g}{r['written']:>9}{r['records_per_s']:>9.1f}{r['seconds']:>9.1f}"
            f"{r['real_seconds']:>12.0f}{r['cliniko_requests']:>13}{r['floor_seconds']:>9.1f}{r['ratio']:>7.2f}x"
            f"{r['cliniko_429']:>5}/{r['splose_429']:<4}{r['peak_rss_mb']:>8.0f}  {'ok' if r['success'] else 'FAILED'}"
        )
    print_splose_requests(rows)
    print("\n(floor = from the run's start to the opening of the window its last Cliniko request needs, at 200 per")
    print(" fixed window, the window it starts in counted from its start; ratio = e2e / floor, both measured above in")
    print(" this run. Time-scaled rows divide every budget window and latency by the factor: their rec/s, e2e s and")
    print(" floor s are in scaled time; e2e real s = e2e s x factor.)")
    contenders = tuple(c for c in args.cpu_contenders.split(",") if c)
    print_cpu(rows, {r["scale"]: cpu.run(r["scale"], 1, None, contenders) for r in rows} if contenders else {})


def print_cpu(rows: list[dict], others: dict[str, dict[str, dict]]) -> None:
    """CPU per 1,000 records of the import's extraction against the other extractions, loads' CPU, peak RSS."""
    names = list(next(iter(others.values()), {}))
    header = (f"{'scale':<7}{'extract CPU s/1k':>17}{'lists s/1k':>12}{'load CPU s/1k written':>23}"
              f"{'process CPU s':>15}{'RSS MB':>8}"
              f"{'PSS MB':>8}"
              + "".join(f"{name + ' s/1k':>16}{'x':>7}" for name in names))  # fmt: skip
    print(f"\n{header}\n{'-' * len(header)}")
    for r in rows:
        line = (f"{r['scale']:<7}{r['extract_cpu_per_1k']:>17.3f}{r['lists_cpu_per_1k']:>12.3f}"
                f"{r['load_cpu_per_1k']:>23.3f}"
                f"{r['process_cpu']:>15.1f}{r['peak_rss_mb']:>8.0f}{r['peak_pss_mb']:>8.0f}")  # fmt: skip
        for name in names:
            other = cpu.per_thousand(others[r["scale"]][name], "work_cpu")
            lists = r["lists_cpu_per_1k"]
            line += f"{other:>16.3f}" + (f"{other / lists:>6.2f}x" if lists else f"{'-':>7}")
        print(line)
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"\npeak RSS {last['scale']} / {first['scale']}: {last['peak_rss_mb'] / first['peak_rss_mb']:.2f}x")
    print("\n(extract CPU: the import's cliniko_* steps and patient_files, less the CPU its load of the files took")
    print(" (upload_cpu_seconds of splose/files) / records fetched; lists: the same less the CPU the downloads of")
    print(" attachments' bytes took on their threads (download_cpu_seconds of cliniko/patient_attachments): the same")
    print(" routes and records as the contenders below, which fetch no bytes; load CPU: every other step of the")
    print(" import and that load of the files / Splose records written; each step's CPU is that of its own process")
    print(" (side by side) or of the child between the step's start and end (--in-process).")
    print(" <name> s/1k: that extraction's CPU, imports excluded, per 1,000 records of the same clinic, extracted from")
    print(" an unthrottled sandbox after the import (bench/cpu.py); x = it / the import's lists s/1k. Measured")
    print(" above in this run. process CPU s: every process of the import (the run and each step's), each step's read")
    print(" from /proc as it ends; RSS MB: the largest RSS any one of them reached (sampled every 0.25 s); PSS MB: the")
    print(" largest total PSS of them all at one sample, shared pages split between the processes sharing them.)")


def print_splose_requests(rows: list[dict]) -> None:
    header = (f"\n{'scale':<7}{'first import':>14}{'re-sync unchanged':>19}{'Cliniko':>9}{'changed':>9}"
              f"{'re-sync 1%':>12}{'Cliniko':>9}{'bound':>8}")  # fmt: skip
    print("Splose requests (all routes, counted by the Splose sandbox):" + header)
    print("-" * len(header))
    for r in rows:
        if "resync_unchanged_splose" not in r:
            print(f"{r['scale']:<7}{r['splose_requests']:>14}  (re-syncs not measured: see above)")
            continue
        print(
            f"{r['scale']:<7}{r['splose_requests']:>14}{r['resync_unchanged_splose']:>19}"
            f"{r['resync_unchanged_cliniko']:>9}{r['changed_records']:>9}{r['resync_changed_splose']:>12}"
            f"{r['resync_changed_cliniko']:>9}{r['resync_changed_bound']:>8.0f}"
        )
    print("(changed: Cliniko records edited before the second re-sync, 1% of the live records; bound: 2 x (changed")
    print(" / 500 + files uploaded + 30), the most a re-sync with those changes should cost.)")


if __name__ == "__main__":
    main()
