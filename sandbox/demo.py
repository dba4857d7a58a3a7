"""``make demo``: extract a demo clinic from the Cliniko sandbox and print what was staged.

Runs on the embedded default instance (SQLite under the project-local DAGSTER_HOME), so the run and
its materializations are there to inspect in ``make dev`` afterwards.
"""

from __future__ import annotations

import argparse
import sys
import time

import dagster as dg

from sandbox.local import DEMO_TENANT, cliniko_sandbox, dagster_home, wire_tenant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="small", choices=["tiny", "small", "large"])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    home = dagster_home()
    print(f"Dagster instance: {home}")
    print(f"Starting the Cliniko sandbox with a {args.scale} demo clinic (seed {args.seed})...", flush=True)
    with cliniko_sandbox(scale=args.scale, seed=args.seed) as server:
        wire_tenant(server, DEMO_TENANT)
        from cliniko_assets.definitions import defs

        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("tenants", [DEMO_TENANT])
            print(f"Extracting tenant '{DEMO_TENANT}' (Cliniko budget: 200 requests/min)...", flush=True)
            started = time.monotonic()
            result = defs.get_job_def("cliniko_extract_job").execute_in_process(
                instance=instance,
                partition_key=DEMO_TENANT,
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            )
            elapsed = time.monotonic() - started
            rows = _rows(result)
    _print_table(rows)
    print(f"\nElapsed: {elapsed:.1f}s; run {'succeeded' if result.success else 'FAILED'} ({result.run_id})")
    return 0 if result.success and len(rows) == 14 else 1


def _rows(result) -> list[tuple[str, dict]]:
    rows = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            metadata = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            rows.append((materialization.asset_key.to_user_string(), metadata))
    return sorted(rows)


def _print_table(rows: list[tuple[str, dict]]) -> None:
    header = f"{'asset':<40}{'staged':>9}{'requests':>10}  by state"
    print("\n" + header + "\n" + "-" * len(header))
    for key, metadata in rows:
        states = ", ".join(f"{state} {count}" for state, count in metadata["by_state"].items())
        files = f" | files {metadata['files_staged']}" if "files_staged" in metadata else ""
        print(f"{key:<40}{metadata['records']:>9}{metadata['requests']:>10}  {states}{files}")
    print("-" * len(header))
    print(f"{'total':<40}{sum(m['records'] for _, m in rows):>9}{sum(m['requests'] for _, m in rows):>10}")


if __name__ == "__main__":
    sys.exit(main())
