"""``cliniko-import``: the support CLI. Talks to a running Dagster webserver over its GraphQL API.

Every action is something the UI can do too: read a tenant's runs and report, launch the import (or the
preview, or the undo) of a tenant with nothing but its partition key, backfill several tenants, cancel
a tenant's runs. The CLI holds no secret and never talks to Cliniko or Splose itself: the code location
does, with the keys it reads at run time.

    cliniko-import status [TENANT]        latest import, run and per-row counts (every tenant without TENANT)
    cliniko-import preview TENANT         what an import would bring, before any Splose write
    cliniko-import import TENANT          run the tenant's import now
    cliniko-import resync TENANT...       re-sync tenants (incremental extraction, idempotent loads)
    cliniko-import backfill --all|TENANT...   one backfill over tenants, one run each
    cliniko-import cancel TENANT          cancel the tenant's queued and running runs
    cliniko-import delete-import TENANT   undo the tenant's latest import (within Splose's 48-hour window)

The webserver is ``--url`` or ``DAGSTER_WEBSERVER_URL`` (default http://127.0.0.1:3000).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cliniko_assets.cli_graphql import (
    IMPORT_JOB,
    PREVIEW_JOB,
    UNDO_JOB,
    Dagster,
    RunSummary,
    TenantNotFound,
    WebserverError,
)

DEFAULT_URL = "http://127.0.0.1:3000"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


@dataclass
class Options:
    dagster: Dagster
    wait: bool
    poll_seconds: float
    out: Callable[[str], None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        dagster = Dagster.connect(args.url or os.environ.get("DAGSTER_WEBSERVER_URL") or DEFAULT_URL)
        options = Options(dagster, wait=not args.no_wait, poll_seconds=args.poll_seconds, out=print)
        return COMMANDS[args.command](options, args)
    except (CliError, WebserverError, TenantNotFound) as error:
        print(f"cliniko-import: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cliniko-import", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help=f"the Dagster webserver (default $DAGSTER_WEBSERVER_URL or {DEFAULT_URL})")
    parser.add_argument("--no-wait", action="store_true", help="return once launched instead of waiting")
    parser.add_argument("--poll-seconds", type=float, default=3.0, help=argparse.SUPPRESS)
    # Also after the command (``backfill --all --no-wait``); given there, it is not reset by the default above.
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--no-wait", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="latest import, run and counts").add_argument("tenant", nargs="?")
    for name, text in (
        ("preview", "what an import would bring, before any write"),
        ("import", "run the tenant's import now"),
        ("cancel", "cancel the tenant's queued and running runs"),
        ("delete-import", "undo the tenant's latest import (48-hour window)"),
    ):
        commands.add_parser(name, help=text, parents=[after]).add_argument("tenant")
    commands.add_parser("resync", help="re-sync tenants", parents=[after]).add_argument("tenants", nargs="+")
    backfill = commands.add_parser("backfill", help="one backfill over tenants, one run each", parents=[after])
    which = backfill.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every tenant")
    which.add_argument("tenants", nargs="*", default=[])
    return parser


def status(options: Options, args: argparse.Namespace) -> int:
    tenants = [options.dagster.require_tenant(args.tenant)] if args.tenant else options.dagster.tenants()
    if not tenants:
        options.out("No tenants yet: an import request submitted in Splose registers its workspace as a tenant.")
        return 0
    for tenant in tenants:
        run, undone = options.dagster.latest_import_and_undo(tenant)
        undo = f"; then undone by run {_run_ref(undone)}: deleted in Splose" if undone else ""
        options.out(f"{tenant}: {_run_line(run)}{undo}")
        if args.tenant:
            found = options.dagster.latest_report_of_run(tenant)
            if found is None:
                options.out("  no import report yet")
                continue
            text, report_run, when = found
            heading = f"  import report of run {report_run or '(none)'} ({when})"
            if run is not None and report_run != run.run_id:
                heading += f"; the latest import run, {run.run_id} ({run.status.lower()}), wrote no report"
            if undone:
                heading += "; that import was undone since"
            options.out(f"{heading}:\n{text}")
    return 0


def preview(options: Options, args: argparse.Namespace) -> int:
    tenant = options.dagster.require_tenant(args.tenant)
    run = _launch_and_wait(options, tenant, PREVIEW_JOB, "preview")
    if run.status == "SUCCESS":
        options.out(options.dagster.latest_preview(tenant) or "  the preview recorded nothing")
    return 0 if run.status == "SUCCESS" else 1


def run_import(options: Options, args: argparse.Namespace) -> int:
    tenant = options.dagster.require_tenant(args.tenant)
    run = _launch_and_wait(options, tenant, IMPORT_JOB, "import")
    if run.status == "SUCCESS":
        options.out(options.dagster.latest_report(tenant) or "")
    return 0 if run.status in ("SUCCESS", "LAUNCHED") else 1


def resync(options: Options, args: argparse.Namespace) -> int:
    tenants = [options.dagster.require_tenant(t) for t in args.tenants]
    runs = [options.dagster.launch(tenant, IMPORT_JOB, tags={"splose/resync": "cli"}) for tenant in tenants]
    for tenant, run_id in zip(tenants, runs, strict=True):
        options.out(f"{tenant}: re-sync launched as run {run_id}")
    if not options.wait:
        return 0
    finished = [_wait(options, run_id) for run_id in runs]
    for run in finished:
        _report_finished(options, run)
    return 0 if all(run.status == "SUCCESS" for run in finished) else 1


def backfill(options: Options, args: argparse.Namespace) -> int:
    tenants = options.dagster.tenants() if args.all else [options.dagster.require_tenant(t) for t in args.tenants]
    if not tenants:
        raise CliError("no tenants to backfill: name them, or use --all once tenants exist.")
    backfill_id = options.dagster.launch_backfill(tenants)
    options.out(f"Backfill {backfill_id} launched for {len(tenants)} tenant(s): {', '.join(tenants)}")
    if not options.wait:
        return 0
    runs = options.dagster.wait_for_backfill(backfill_id, len(tenants), options.poll_seconds)
    for run in runs:
        _report_finished(options, run)
    return 0 if len(runs) == len(tenants) and all(run.status == "SUCCESS" for run in runs) else 1


def cancel(options: Options, args: argparse.Namespace) -> int:
    tenant = options.dagster.require_tenant(args.tenant)
    cancelled = options.dagster.cancel_runs(tenant)
    options.out(f"{tenant}: cancelled {len(cancelled)} run(s)" + (f": {', '.join(cancelled)}" if cancelled else ""))
    return 0


def delete_import(options: Options, args: argparse.Namespace) -> int:
    tenant = options.dagster.require_tenant(args.tenant)
    run = _launch_and_wait(options, tenant, UNDO_JOB, "undo of the latest import")
    return 0 if run.status in ("SUCCESS", "LAUNCHED") else 1


def _launch_and_wait(options: Options, tenant: str, job: str, what: str) -> RunSummary:
    run_id = options.dagster.launch(tenant, job)
    options.out(f"{tenant}: {what} launched as run {run_id}")
    if not options.wait:
        return RunSummary(run_id=run_id, status="LAUNCHED", tenant=tenant)
    run = _wait(options, run_id)
    _report_finished(options, run)
    return run


def _wait(options: Options, run_id: str) -> RunSummary:
    while True:
        run = options.dagster.run(run_id)
        if run.status in FINISHED:
            return run
        time.sleep(options.poll_seconds)


def _report_finished(options: Options, run: RunSummary) -> None:
    """A finished run's line and, when it did not succeed, why: each failed step's own message (a run listed
    without its events is read again for them)."""
    options.out(f"{run.tenant}: {_run_line(run)}")
    if run.status == "SUCCESS":
        return
    failures = run.failures or options.dagster.run(run.run_id).failures
    for message in failures:
        options.out(f"  {message}")


def _run_line(run: RunSummary | None) -> str:
    if run is None:
        return "no import run yet"
    import_id = f"import {run.import_id}, " if run.import_id else ""
    return f"{import_id}run {_run_ref(run)}"


def _run_ref(run: RunSummary) -> str:
    return f"{run.run_id} {run.status.lower()}" + (f" ({run.when})" if run.when else "")


COMMANDS: dict[str, Callable[[Options, argparse.Namespace], int]] = {
    "status": status,
    "preview": preview,
    "import": run_import,
    "resync": resync,
    "backfill": backfill,
    "cancel": cancel,
    "delete-import": delete_import,
}


if __name__ == "__main__":
    sys.exit(main())
