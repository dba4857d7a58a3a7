"""CPU benchmark: CPU seconds per 1,000 records extracted, the pipeline against dlt's REST source and a plain loop.

One Cliniko sandbox (its own process, no latency, its rate limit raised so that no contender waits on the
budget) serves one generated clinic; three contenders extract it one after the other, each in a child
process of its own, in the same run of this script:

- ``pipeline``: this project's extraction, the ``cliniko/*`` assets (both steps) materialized on an ephemeral
  Dagster instance of the embedded default's instance class, its storage included (keyset paging, staging
  to Parquet, checkpoints, the by-id pass, the attachments' bytes: everything a real extraction does);
- ``dlt``: dlt's ``rest_api`` source over the same routes (Basic auth, ``links.next`` followed with its
  ``JSONLinkPaginator``, 100 per page), run through ``pipeline.extract`` (dlt's own staging of the
  rows), not normalized or loaded anywhere;
- ``requests``: a plain ``requests`` loop that follows ``links.next`` and decodes each page, keeping nothing.

dlt and the plain loop list the same routes but fetch no attachment bytes; the pipeline's figure includes
them, and the row ``pipeline-lists`` is the same run less the CPU its downloads took on their worker threads
(``download_cpu_seconds`` of ``cliniko/patient_attachments``): the like-for-like figure the ratios divide by.
With ``--baseline DIR`` the pipeline also runs from another checkout's code (``git archive main``
unpacked in DIR, say) as the contender ``baseline``: a before/after pair measured in the same run. Printed
per contender: records, CPU seconds of its whole process (``os.wait4``: interpreter start,
imports, the work) and of the work alone (``getrusage`` around it, imports excluded; for the pipeline,
the materialization on a Dagster instance made before it, as a deployment's is), both per 1,000
records, each row's ratio to ``pipeline-lists``, and each process's peak RSS. CPU time is
what a process used, whatever else runs on the host; it is still noisier than on an idle machine, and
``--repeat`` takes each contender's median.

dlt is not a dependency of the project: ``make bench-cpu`` installs it into the venv for this script.

    .venv/bin/python bench/cpu.py                     # the small clinic
    .venv/bin/python bench/cpu.py --scale tiny --repeat 3
    .venv/bin/python bench/cpu.py --baseline /tmp/main-code  # also the pipeline as another checkout has it
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench.child import (  # noqa: E402
    cpu_seconds,
    embedded_instance,
    run_child_usage,
    self_cpu_seconds,
    stop_on_sigterm,
    use_project_code,
)

USER_AGENT = "Splose Cliniko importer benchmark (integrations@splose.com)"
TENANT = "bench-clinic"
UNLIMITED = 1_000_000  # requests per window for the sandbox and the pipeline's limiter: no contender waits
CONTENDERS = ("pipeline", "dlt-run", "dlt", "requests")
CODE_DIR = "BENCH_CODE_DIR"  # a child's project code comes from this folder when it is set (``--baseline``)


def routes() -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(name, path, list key, filters) of every route the extraction lists (older fallback routes aside)."""
    from cliniko_assets.catalog import CATALOG

    return [
        (f"{spec.name}_{stream.name}", stream.path, spec.list_key, stream.filters)
        for spec in CATALOG
        for stream in spec.streams
        if not stream.fallback_for
    ]


def child_pipeline() -> dict:
    import dagster as dg

    from cliniko_assets.definitions import cliniko_resource, staging_resource
    from cliniko_assets.extract import ExtractionSettings
    from cliniko_assets.file_step import EXTRACTION, EXTRACTION_ASSETS
    from cliniko_assets.mapping import ImportRequestResource
    from splose_resources.splose import SploseResource

    code = Path(os.environ.get(CODE_DIR) or PROJECT)
    # The embedded default's instance (its storage), made before the work starts.
    with dg.instance_for_test(overrides=embedded_instance(code)) as instance:
        instance.add_dynamic_partitions("tenants", [TENANT])
        before = self_cpu_seconds()
        result = dg.materialize(
            EXTRACTION_ASSETS,
            selection=EXTRACTION,
            instance=instance,
            partition_key=TENANT,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            resources={
                "cliniko": cliniko_resource(requests_per_window=UNLIMITED, concurrency=4),
                "extraction": ExtractionSettings(),
                "staging": staging_resource(),
                "splose": SploseResource(),  # a local development run: Splose is never asked
                "import_request": ImportRequestResource(local_development=True),
            },
        )
        work = self_cpu_seconds() - before
    records, download_cpu = 0, 0.0
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            metadata = event.event_specific_data.materialization.metadata
            records += metadata["fetched"].value
            download_cpu += metadata["download_cpu_seconds"].value if "download_cpu_seconds" in metadata else 0.0
    return {"records": records, "work_cpu": work, "download_cpu": download_cpu, "success": result.success}


def child_dlt(base_url: str, key: str, workdir: str, land: str = "") -> dict:
    """dlt's ``rest_api`` source: ``pipeline.extract`` alone, or with ``land`` the whole ``pipeline.run`` into
    Parquet files on the local file system (rows landed where they can be read, as staging holds them)."""
    import dlt
    from dlt.destinations import filesystem
    from dlt.sources.rest_api import rest_api_source

    before = self_cpu_seconds()
    source = rest_api_source(
        {
            "client": {
                "base_url": base_url.rstrip("/") + "/",
                "auth": {"type": "http_basic", "username": key, "password": ""},
                "headers": {"Accept": "application/json", "User-Agent": USER_AGENT},
                "paginator": {"type": "json_link", "next_url_path": "links.next"},
            },
            "resources": [
                {
                    "name": name,
                    "endpoint": {
                        "path": path.lstrip("/"),
                        "data_selector": list_key,
                        "params": {"per_page": 100, **({"q[]": list(filters)} if filters else {})},
                    },
                }
                for name, path, list_key, filters in routes()
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="cliniko_cpu",
        pipelines_dir=workdir,
        dataset_name="cliniko",
        destination=filesystem(bucket_url=f"file://{workdir}/landed") if land else None,
    )
    # Parquet, as staging holds them (the file system destination would write JSON lines by default).
    info = pipeline.extract(source, loader_file_format="parquet" if land else None)
    records = sum(
        m.items_count
        for load in info.metrics.values()
        for metrics in load
        for table, m in metrics["table_metrics"].items()
        if table in {name for name, *_ in routes()}
    )
    if land:
        pipeline.normalize()
        pipeline.load().raise_on_failed_jobs()
    work = self_cpu_seconds() - before
    landed = {path.suffix for path in Path(workdir, "landed").rglob("*") if path.is_file()} if land else set()
    if land and ".parquet" not in landed:
        raise SystemExit(f"dlt landed no Parquet files ({', '.join(sorted(landed))})")
    return {"records": records, "work_cpu": work, "success": True}


def child_requests(base_url: str, key: str) -> dict:
    import requests

    before = self_cpu_seconds()
    session = requests.Session()
    session.trust_env = False
    session.auth = (key, "")
    session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
    records = 0
    for _, path, list_key, filters in routes():
        url: str | None = f"{base_url}{path}"
        params: list[tuple[str, str | int]] | None = [("per_page", 100), *(("q[]", f) for f in filters)]
        while url:
            response = session.get(url, params=params, allow_redirects=False, timeout=60)
            response.raise_for_status()
            body = response.json()
            records += len(body[list_key])
            url, params = body.get("links", {}).get("next"), None
    return {"records": records, "work_cpu": self_cpu_seconds() - before, "success": True}


def measure(contender: str, url: str, key: str, workdir: Path, env: dict[str, str]) -> dict:
    args = {
        "pipeline": [],
        "baseline": [],
        "dlt": [url, key, str(workdir / f"dlt-{os.urandom(4).hex()}")],
        "dlt-run": [url, key, str(workdir / f"dlt-{os.urandom(4).hex()}"), "land"],
        "requests": [url, key],
    }[contender]
    command = {"baseline": "pipeline", "dlt-run": "dlt"}.get(contender, contender)
    result, usage = run_child_usage(__file__, [command, *args], env)
    if not result["success"]:
        raise SystemExit(f"the {contender} extraction failed")
    return {**result, "process_cpu": cpu_seconds(usage), "rss_mb": usage.ru_maxrss / 1024}


def run(scale: str, repeat: int, baseline: str | None, contenders: tuple[str, ...] = CONTENDERS) -> dict[str, dict]:
    """Each contender's median over ``repeat`` extractions of the ``scale`` clinic from one unthrottled sandbox."""
    from sandbox.admin import ClinikoSandboxAdmin
    from sandbox.harness import running_server

    with tempfile.TemporaryDirectory(prefix=f"bench-cpu-{scale}-") as tmp:
        workdir = Path(tmp)
        args = [
            "--account", f"bench:1:{scale}:au1", "--latency-ms", "0", "--jitter-ms", "0",
            "--rate-limit", str(UNLIMITED), "--data-dir", str(workdir / "cliniko"),
        ]  # fmt: skip
        print(f"[{scale}] starting the sandbox (generating the clinic if not cached)...", flush=True)
        with running_server("sandbox.cliniko", args, log_dir=workdir) as server:
            key = ClinikoSandboxAdmin(server.url).keys("bench")["admin"]
            url = f"{server.url}/v1"
            contenders = (*contenders, "baseline") if baseline else contenders
            runs: dict[str, list[dict]] = {c: [] for c in contenders}
            for attempt in range(repeat):
                for contender in contenders:
                    env = {
                        CODE_DIR: str(Path(baseline).resolve()) if contender == "baseline" and baseline else "",
                        "CLINIKO_API_URL": url,
                        "CLINIKO_API_KEY__BENCH_CLINIC": key,
                        "STAGING_URI": str(workdir / f"staging-{contender}-{attempt}"),
                        "RATE_LIMIT_STATE_DIR": str(workdir / f"rate-{contender}-{attempt}"),
                        "RUNTIME__DLTHUB_TELEMETRY": "false",
                        "RUNTIME__LOG_LEVEL": "ERROR",  # not dlt's notes on columns that received no data
                    }
                    print(f"[{scale}] {contender} ({attempt + 1}/{repeat})...", flush=True)
                    runs[contender].append(measure(contender, url, key, workdir, env))
    medians = {c: _median(rows) for c, rows in runs.items()}
    for name in [c for c in ("pipeline", "baseline") if c in medians]:
        if any(r.get("download_cpu") for r in runs[name]):  # a checkout that measures its downloads' CPU
            medians[f"{name}-lists"] = _without_bytes(runs[name])
    return medians


def _median(rows: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in rows) for k in ("records", "process_cpu", "work_cpu", "rss_mb")}


def _without_bytes(rows: list[dict]) -> dict:
    """The pipeline's runs less the CPU its downloads of attachments' bytes took on their worker threads
    (``download_cpu_seconds`` of ``cliniko/patient_attachments``): the same routes and records as the others."""
    return _median(
        [
            {
                **r,
                "process_cpu": r["process_cpu"] - r["download_cpu"],
                "work_cpu": r["work_cpu"] - r["download_cpu"],
            }
            for r in rows
        ]
    )


def per_thousand(row: dict, column: str) -> float:
    return row[column] / row["records"] * 1000


def report(scale: str, rows: dict[str, dict]) -> None:
    ours = rows.get("pipeline-lists", rows["pipeline"])
    header = (
        f"{'contender':<16}{'records':>9}{'CPU s':>8}{'CPU s/1k':>10}{'x lists':>9}"
        f"{'work CPU s/1k':>15}{'x lists':>9}{'RSS MB':>8}"
    )
    print(f"\n[{scale}] CPU seconds per 1,000 records extracted (whole process; work alone, imports excluded)")
    print(header)
    print("-" * len(header))
    for name, row in rows.items():
        print(
            f"{name:<16}{row['records']:>9.0f}{row['process_cpu']:>8.2f}{per_thousand(row, 'process_cpu'):>10.3f}"
            f"{per_thousand(row, 'process_cpu') / per_thousand(ours, 'process_cpu'):>8.2f}x"
            f"{per_thousand(row, 'work_cpu'):>15.3f}"
            f"{per_thousand(row, 'work_cpu') / per_thousand(ours, 'work_cpu'):>8.2f}x{row['rss_mb']:>8.0f}"
        )
    print("\n(pipeline: the whole extraction, the attachments' bytes included; pipeline-lists: the same run less the")
    print(" CPU its downloads took on their threads, i.e. the same routes and records as dlt and the plain loop, which")
    print(" fetch no bytes. x lists = the row's CPU per 1,000 records / pipeline-lists', both measured in this run.)")


def main() -> None:
    stop_on_sigterm()
    commands = {"pipeline": child_pipeline, "dlt": child_dlt, "requests": child_requests}
    if len(sys.argv) > 1 and sys.argv[1] in commands:
        if os.environ.get(CODE_DIR):
            use_project_code(os.environ[CODE_DIR])
        print(json.dumps(commands[sys.argv[1]](*sys.argv[2:])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small", choices=("tiny", "small", "large"))
    parser.add_argument("--repeat", type=int, default=1, help="runs of each contender; their median is printed")
    parser.add_argument("--baseline", metavar="DIR", help="also run the pipeline from the project code in DIR")
    args = parser.parse_args()
    report(args.scale, run(args.scale, args.repeat, args.baseline))


if __name__ == "__main__":
    main()
