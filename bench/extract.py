"""Extraction benchmark: the pipeline's extraction against a plain sequential ``requests`` loop.

For each scale, one Cliniko sandbox serves a generated clinic and both contenders extract it, one
after the other, in the same run of this script. Printed per scale:

- records/s of each contender, and their time ratio (sequential / pipeline);
- the fraction of the request budget the pipeline used (sandbox's counts per busy window, the last
  window excluded) and the 429s each contender met;
- peak RSS of each contender's process.

``small`` runs in real time (200 requests / 60 s, 150 ms latency). ``large`` is time-scaled: the
budget window and the latency are both divided by ``--time-scale``, so ratios mean what they would
in real time while the run takes minutes instead of hours.

    .venv/bin/python bench/extract.py                 # small and large
    .venv/bin/python bench/extract.py --scales small
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench.child import run_child, stop_on_sigterm  # noqa: E402
from cliniko_assets.catalog import CATALOG  # noqa: E402
from sandbox.admin import ClinikoSandboxAdmin  # noqa: E402
from sandbox.harness import running_server  # noqa: E402

USER_AGENT = "Splose Cliniko importer benchmark (integrations@splose.com)"
TENANT = "bench-clinic"


def child_pipeline(window: float, concurrency: int) -> dict:
    import dagster as dg

    from cliniko_assets.definitions import cliniko_resource, staging_resource
    from cliniko_assets.extract import ExtractionSettings
    from cliniko_assets.file_step import EXTRACTION, EXTRACTION_ASSETS
    from cliniko_assets.mapping import ImportRequestResource
    from splose_resources.splose import SploseResource

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", [TENANT])
        started = time.monotonic()
        result = dg.materialize(
            EXTRACTION_ASSETS,
            selection=EXTRACTION,
            instance=instance,
            partition_key=TENANT,
            resources={
                "cliniko": cliniko_resource(window_seconds=window, concurrency=concurrency),
                "extraction": ExtractionSettings(),
                "staging": staging_resource(),
                "splose": SploseResource(),  # a local development run: Splose is never asked
                "import_request": ImportRequestResource(local_development=True),
            },
        )
        elapsed = time.monotonic() - started
    records = 0
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            records += event.event_specific_data.materialization.metadata["records"].value
    return {"seconds": elapsed, "records": records, "success": result.success}


def child_sequential(base_url: str, key: str, download_dir: str) -> dict:
    """What a plain client does: one request at a time, follow links.next, sleep through 429s."""
    session = requests.Session()
    session.trust_env = False
    session.auth = (key, "")
    session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
    anonymous = requests.Session()
    anonymous.trust_env = False
    records = throttled = 0
    started = time.monotonic()

    def get(url: str) -> requests.Response:
        nonlocal throttled
        while True:
            response = session.get(url, allow_redirects=False, timeout=60)
            if response.status_code == 429:
                throttled += 1
                time.sleep(max(0.0, float(response.headers.get("X-RateLimit-Reset", time.time() + 1)) - time.time()))
                continue
            if response.status_code >= 500:
                time.sleep(1)
                continue
            return response

    for spec in CATALOG:
        for stream in spec.streams:
            if stream.fallback_for:
                continue  # older routes for accounts whose filters leave rows out; the sandbox honours them
            query = "&".join([f"q%5B%5D={f.replace(':', '%3A').replace('*', '%2A')}" for f in stream.filters])
            url: str | None = f"{base_url}{stream.path}?{query}&per_page=100"
            while url:
                body = get(url).json()
                batch = body[spec.list_key]
                records += len(batch)
                if spec.has_files and stream.name == "main":
                    # The same files the pipeline stages: every processed attachment, archived ones too.
                    for record in batch:
                        if record.get("processing_completed") is False:
                            continue
                        redirect = get(f"{base_url}/patient_attachments/{record['id']}/content")
                        content = anonymous.get(redirect.headers["Location"], stream=True, timeout=60)
                        digest = hashlib.sha256()
                        with open(Path(download_dir) / str(record["id"]), "wb") as out:
                            for chunk in content.iter_content(1 << 16):
                                digest.update(chunk)
                                out.write(chunk)
                url = body.get("links", {}).get("next")
    return {"seconds": time.monotonic() - started, "records": records, "throttled": throttled}


def budget_fraction(stats: dict, label: str, limit: int) -> tuple[float, float, int]:
    """Requests per budget window, as the sandbox counted them: over every window but the last, and over
    the windows the extraction spanned whole (the first and the last are partial: the run starts and
    ends inside them, so the first one's share depends on when in the window the run happened to start).
    """
    entry = stats["keys"][label]
    windows = [count for _, count in sorted(entry["windows"].items(), key=lambda kv: float(kv[0]))]
    but_last = windows[:-1] if len(windows) > 1 else windows
    full = windows[1:-1] if len(windows) > 2 else windows
    return (
        sum(but_last) / (limit * len(but_last)) if but_last else 0.0,
        sum(full) / (limit * len(full)) if full else 0.0,
        entry["rate_limited"],
    )


def bench_scale(scale: str, time_scale: float, concurrency: int) -> dict:
    window = 60 / time_scale
    latency = 150 / time_scale
    with tempfile.TemporaryDirectory(prefix=f"bench-{scale}-") as workdir:
        args = [
            "--account", f"bench:1:{scale}:au1", "--latency-ms", f"{latency:.3f}", "--jitter-ms", f"{latency / 3:.3f}",
            "--rate-limit", "200", "--rate-window", f"{window:g}", "--data-dir", workdir,
        ]  # fmt: skip
        print(f"[{scale}] starting the sandbox (generating the clinic if not cached)...", flush=True)
        with running_server("sandbox.cliniko", args, log_dir=workdir) as server:
            admin = ClinikoSandboxAdmin(server.url)
            key = admin.keys("bench")["admin"]
            env = {
                "CLINIKO_API_URL": f"{server.url}/v1",
                "CLINIKO_API_KEY__BENCH_CLINIC": key,
                "STAGING_URI": str(Path(workdir) / "staging"),
                "RATE_LIMIT_STATE_DIR": str(Path(workdir) / "rate"),
            }
            print(f"[{scale}] pipeline extraction...", flush=True)
            admin.reset_stats()
            pipeline, pipeline_rss = run_child(__file__, ["pipeline", f"{window:g}", str(concurrency)], env)
            but_last, full_windows, pipeline_429 = budget_fraction(admin.stats(), "bench/admin", 200)
            print(f"[{scale}] sequential loop...", flush=True)
            downloads = Path(workdir) / "sequential"
            downloads.mkdir()
            admin.reset_stats()
            sequential, sequential_rss = run_child(
                __file__, ["sequential", f"{server.url}/v1", key, str(downloads)], env
            )
    return {
        "scale": scale,
        "time_scale": time_scale,
        "pipeline_records_per_s": pipeline["records"] / pipeline["seconds"],
        "sequential_records_per_s": sequential["records"] / sequential["seconds"],
        "pipeline_seconds": pipeline["seconds"],
        "sequential_seconds": sequential["seconds"],
        "speedup": sequential["seconds"] / pipeline["seconds"],
        "budget_used_but_last": but_last,
        "budget_used_full_windows": full_windows,
        "pipeline_429": pipeline_429,
        "sequential_429": sequential["throttled"],
        "pipeline_peak_rss_mb": pipeline_rss / 2**20,
        "sequential_peak_rss_mb": sequential_rss / 2**20,
        "records": pipeline["records"],
    }


def main() -> None:
    stop_on_sigterm()
    if len(sys.argv) > 1 and sys.argv[1] == "pipeline":
        print(json.dumps(child_pipeline(float(sys.argv[2]), int(sys.argv[3]))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "sequential":
        print(json.dumps(child_sequential(*sys.argv[2:5])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="small,large")
    parser.add_argument("--large-time-scale", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    rows = [
        bench_scale(scale, args.large_time_scale if scale == "large" else 1.0, args.concurrency)
        for scale in args.scales.split(",")
    ]
    print()
    print(f"{'scale':<7}{'records':>10}{'pipeline rec/s':>16}{'sequential rec/s':>18}{'speedup':>9}"
          f"{'budget (all but last / full windows)':>38}{'429 p/s':>9}{'RSS MB p/s':>14}")  # fmt: skip
    for r in rows:
        print(
            f"{r['scale']:<7}{r['records']:>10}{r['pipeline_records_per_s']:>16.1f}"
            f"{r['sequential_records_per_s']:>18.1f}{r['speedup']:>8.2f}x"
            f"{r['budget_used_but_last']:>29.1%} / {r['budget_used_full_windows']:<6.1%}"
            f"{r['pipeline_429']:>5}/{r['sequential_429']:<3}"
            f"{r['pipeline_peak_rss_mb']:>7.0f}/{r['sequential_peak_rss_mb']:<6.0f}"
        )
    print("\n(time-scaled rows divide the budget window and the latency by the same factor; records/s there are")
    print(" in scaled time. speedup = sequential time / pipeline time, both measured above in this run.)")


if __name__ == "__main__":
    main()
