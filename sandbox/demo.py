"""``make demo``: import a demo clinic from the Cliniko sandbox into the Splose sandbox, end to end.

1. starts both sandboxes and generates the demo clinic in Cliniko;
2. sets up the clinic's Splose workspace (locations, practitioners, services) as a clinic would;
3. submits an import request with the clinic's mapping through the import API;
4. lets the import-request sensor register the tenant and build the run, then runs the whole graph on
   the embedded default instance (SQLite under the project-local DAGSTER_HOME);
5. prints the reconciliation (one line per row of the mission's table) and the elapsed time, and exits
   non-zero if the run failed or any record is unaccounted for.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg
import requests

from sandbox.admin import ClinikoSandboxAdmin
from sandbox.clinic_setup import import_mapping, workspace_seed
from sandbox.local import PROJECT, cliniko_sandbox, dagster_home, splose_sandbox, wire_splose

if TYPE_CHECKING:
    from cliniko_assets.reconciliation import RowReport


def workspace_for(scale: str, seed: int) -> str:
    """The demo clinic's workspace (and tenant); another scale or seed is another clinic."""
    return "demo-clinic" if (scale, seed) == ("small", 1) else f"demo-{scale}-{seed}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small", choices=["tiny", "small", "large"])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    home = dagster_home()
    token = secrets.token_urlsafe(24)
    print(f"Dagster instance: {home}")
    print(f"Starting the sandboxes with a {args.scale} demo clinic (seed {args.seed})...", flush=True)
    started = time.monotonic()
    with cliniko_sandbox(scale=args.scale, seed=args.seed) as cliniko, splose_sandbox(token) as splose:
        wire_splose(splose, token)
        workspace = workspace_for(args.scale, args.seed)
        import_id = submit_import(ClinikoSandboxAdmin(cliniko.url), "demo", splose.url, workspace)
        print(f"Import request {import_id} submitted for workspace '{workspace}'.", flush=True)
        result = run_import(cliniko.url)
    elapsed = time.monotonic() - started
    table, unaccounted = reconciliation(result)
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            failure = event.event_specific_data
            reason = failure.user_failure_data.description if failure.user_failure_data else failure.error.message
            print(f"\nStep {event.step_key} failed: {reason.strip()}")
    print("\n" + table)
    print(f"\nElapsed: {elapsed:.1f}s; run {'succeeded' if result.success else 'FAILED'} ({result.run_id})")
    if unaccounted:
        print(f"{unaccounted} record(s) unaccounted for.")
    return 0 if result.success and unaccounted == 0 else 1


def submit_import(cliniko: ClinikoSandboxAdmin, account: str, splose_url: str, workspace_id: str) -> int:
    """Set the workspace up and submit the import as the clinic does from Splose's import button."""
    workspace = requests.post(
        f"{splose_url}/_sandbox/workspaces", json=workspace_seed(cliniko, account, workspace_id), timeout=60
    )
    workspace.raise_for_status()
    seeded = workspace.json()
    request = requests.post(
        f"{splose_url}/v1/imports",
        headers={"Authorization": f"Bearer {seeded['key']}"},
        json={
            "source": "cliniko",
            "clinikoApiKey": cliniko.keys(account)["admin"],
            "mapping": import_mapping(cliniko, account, seeded),
            "include": [],
        },
        timeout=60,
    )
    request.raise_for_status()
    return int(request.json()["id"])


@dataclass
class FinishedRun:
    """What the demo reads of the run once it has ended."""

    run_id: str
    success: bool
    all_events: list[dg.DagsterEvent]


def run_import(cliniko_url: str) -> FinishedRun:
    """The run the sensor asked for, as the daemon would launch it: the code location's ``import_job`` with
    its own executor (steps side by side, each in a process of its own, the loads beside the downloads)."""
    import os

    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from cliniko_assets.definitions import splose_resource
    from cliniko_assets.sensors import import_requests

    os.environ["CLINIKO_API_URL"] = f"{cliniko_url}/{{shard}}/v1"
    with dg.DagsterInstance.get() as instance:
        sensor_result = import_requests(
            dg.build_sensor_context(instance=instance, resources={"splose": splose_resource()})
        )
        for request in sensor_result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        (run_request,) = sensor_result.run_requests
        print(f"Running the import of tenant '{run_request.partition_key}'...", flush=True)
        run_config = dict(run_request.run_config)
        # INFO: the run's progress lines (records and pages done, rate, time left) and each step's counts.
        run_config["loggers"] = {"console": {"config": {"log_level": "INFO"}}}
        # Every demo is a first import: the sandbox regenerates the clinic, so nothing staged before counts.
        run_config.setdefault("resources", {})["extraction"] = {"config": {"full_refresh": True}}
        code_location = ReconstructableRepository.for_module("cliniko_assets.definitions", "defs", str(PROJECT))
        tags = {**run_request.tags, "dagster/partition": run_request.partition_key}
        job = code_location.get_reconstructable_job("import_job")
        with dg.execute_job(job, instance=instance, run_config=run_config, tags=tags) as result:
            return FinishedRun(result.run_id, result.success, list(result.all_events))


def reconciliation(result: FinishedRun) -> tuple[str, int]:
    from cliniko_assets.reconciliation import RowReport
    from cliniko_assets.rows import ROWS, reconciled_rows

    metadata, extracted = materialized(result)
    # Each load's rows as it reported them (`rows`), each table row with its parts, as the import report has it.
    rows = reconciled_rows(
        {row: RowReport.from_json(data) for meta in metadata.values() for row, data in (meta.get("rows") or {}).items()}
    )
    header = f"{'row':<55}{'Cliniko':>9}{'loaded':>9}{'rejected':>10}  skipped by reason"
    lines = [header, "-" * len(header)]
    unaccounted = 0
    for name, label in ROWS.items():
        report = rows.get(name)
        if report is None:
            lines.append(f"{label:<55}{'not loaded':>9}")
            unaccounted += 1
            continue
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(report.skipped.items())) or "-"
        lines.append(f"{label:<55}{report.cliniko:>9}{report.loaded:>9}{report.rejected:>10}  {skipped}")
        unaccounted += abs(report.unaccounted)
    handled = [*row_notes(rows.values()), *reference_notes(metadata, extracted)]
    if handled:
        lines += ["", "How the odd records were handled:", *(f"  {line}" for line in handled)]
    return "\n".join(lines), unaccounted


def materialized(result: FinishedRun) -> tuple[dict[str, dict], dict[str, dict]]:
    """Metadata of the run's splose/* and cliniko/* materializations, by asset name."""
    found: dict[str, dict[str, dict]] = {"splose": {}, "cliniko": {}}
    for event in result.all_events:
        if event.event_type_value != "ASSET_MATERIALIZATION":
            continue
        materialization = event.event_specific_data.materialization
        group, name = materialization.asset_key.path[0], materialization.asset_key.path[-1]
        if group in found:
            found[group][name] = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    return found["splose"], found["cliniko"]


def row_notes(rows: Iterable[RowReport]) -> list[str]:
    from cliniko_assets.attention import needs_attention, row_notes

    lines = []
    for report in rows:
        lines += [f"NEEDS ATTENTION: {line}" for line in needs_attention(report)] + row_notes(report)
    return lines


def reference_notes(rows: dict[str, dict], extracted: dict[str, dict]) -> list[str]:
    """Records the list routes did not return, and where time zones came from."""
    locations, services = rows.get("locations", {}), rows.get("services", {})
    unresolved = locations.get("unresolved_references") or {}
    lines = []
    for kind, states in (locations.get("not_listed_by_cliniko") or {}).items():
        found, left = Counter(states.values()), len(unresolved.get(kind, []))
        lines.append(
            f"{kind.capitalize()} ids not listed by Cliniko: {len(states)} ({found['unlisted']} found by id, "
            f"{found['missing']} not in Cliniko); {len(states) - left} mapped, {left} left unmapped"
        )
    if created := services.get("types_not_listed_created"):
        lines.append(f"Appointment types Cliniko no longer lists: {created} given a service of their own")
    found_by_id = extracted.get("references", {}).get("by_resource") or {}
    for resource in ("patients", "treatment_note_templates"):
        if missing := found_by_id.get(resource, {}).get("not_in_cliniko"):
            lines.append(f"{resource.replace('_', ' ').capitalize()} referenced but not in Cliniko: {missing}")
    settings = extracted.get("businesses", {}).get("account_settings_from")
    if zones := locations.get("time_zones_from") or {}:
        where = ", ".join(f"{n} from {source}" for source, n in sorted(zones.items()))
        lines.append(f"Business time zones: {where} (the account's from GET /{settings})")
    if region := locations.get("default_phone_region"):
        lines.append(f"Phone numbers read with {region} as the clinic's country")
    return lines


if __name__ == "__main__":
    sys.exit(main())
