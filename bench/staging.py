"""Staging benchmark: a local folder against an S3-compatible bucket (moto, server mode, on 127.0.0.1).

Each measured part runs in a child process of its own (its peak RSS is its own). Printed per backend:

- an attachment streamed into staging and back (1 MiB chunks, sha256 on both ways), at two sizes: the
  peak RSS of each child, and how much of the extra bytes the bigger file added to the peak (a streamed
  file adds about nothing; a file held whole adds its size);
- an extraction's parts committed into ``data.parquet`` and read back by batches: seconds, and the S3 /
  local time ratio (moto answers from memory, so this is the request overhead, not a network's).

    .venv/bin/python bench/staging.py
    .venv/bin/python bench/staging.py --small-mib 16 --large-mib 256 --rows 400000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from bench.child import run_child, stop_on_sigterm  # noqa: E402
from sandbox.s3 import running_s3_server  # noqa: E402

MIB = 1 << 20
TENANT = "bench-clinic"


def child_file(uri: str, mib: int) -> dict:
    from splose_resources.staging import StagingStore

    store = StagingStore(uri=uri)
    chunk = os.urandom(MIB)
    written, read = hashlib.sha256(), hashlib.sha256()
    started = time.monotonic()
    with store.file_writer(TENANT, "patient_attachments", "1") as out:
        for _ in range(mib):
            written.update(chunk)
            out.write(chunk)
    with store.file_reader(TENANT, "patient_attachments", "1") as staged:
        while block := staged.read(MIB):
            read.update(block)
    assert read.hexdigest() == written.hexdigest()
    return {"seconds": time.monotonic() - started}


def child_commit(uri: str, rows: int) -> dict:
    from splose_resources.staging import StagingStore

    store = StagingStore(uri=uri)
    batch = store.batch(TENANT, "patients")
    parts = 20
    started = time.monotonic()
    for part in range(parts):
        batch.write_part(
            [
                {
                    "id": str(n),
                    "updated_at": "2024-06-01T00:00:00Z",
                    "state": "active",
                    "source": "main",
                    "record": json.dumps({"id": n, "first_name": f"name {n}", "notes": "x" * 200}),
                }
                for n in range(part, rows, parts)
            ]
        )
    committed = batch.commit(replace=True).records
    read = sum(len(records) for records in store.iter_records(TENANT, "patients", batch_size=5000))
    assert committed == read == rows
    return {"seconds": time.monotonic() - started}


def measure(uri: str, env: dict[str, str], small: int, large: int, rows: int) -> dict:
    script = str(Path(__file__))
    _, small_rss = run_child(script, ["file", uri, str(small)], env)
    large_run, large_rss = run_child(script, ["file", uri, str(large)], env)
    commit, commit_rss = run_child(script, ["commit", uri, str(rows)], env)
    return {
        "file_seconds": large_run["seconds"],
        "small_rss": small_rss,
        "large_rss": large_rss,
        "held": (large_rss - small_rss) / ((large - small) * MIB),
        "commit_seconds": commit["seconds"],
        "commit_rss": commit_rss,
    }


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small-mib", type=int, default=16)
    parser.add_argument("--large-mib", type=int, default=128)
    parser.add_argument("--rows", type=int, default=200_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-staging-") as workdir, running_s3_server(Path(workdir)) as s3:
        results = {
            "local": measure(str(Path(workdir) / "staging"), {}, options.small_mib, options.large_mib, options.rows),
            "s3": measure(
                f"s3://{s3.new_bucket()}/staging",
                s3.environment(),
                options.small_mib,
                options.large_mib,
                options.rows,
            ),
        }
    print(f"attachment {options.small_mib} MiB vs {options.large_mib} MiB; commit of {options.rows} rows in 20 parts")
    for backend, r in results.items():
        print(
            f"{backend:>5}: file {r['file_seconds']:.1f}s, peak RSS {r['small_rss'] / MIB:.0f} -> "
            f"{r['large_rss'] / MIB:.0f} MiB (share of the extra bytes held: {r['held']:.2f}); "
            f"commit+read {r['commit_seconds']:.1f}s, peak RSS {r['commit_rss'] / MIB:.0f} MiB"
        )
    local, s3 = results["local"], results["s3"]
    print(
        f"ratios s3/local: file time {s3['file_seconds'] / local['file_seconds']:.2f}, "
        f"commit+read time {s3['commit_seconds'] / local['commit_seconds']:.2f}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("file", "commit"):
        mode, uri, amount = sys.argv[1:4]
        print(json.dumps((child_file if mode == "file" else child_commit)(uri, int(amount))))
    else:
        main()
