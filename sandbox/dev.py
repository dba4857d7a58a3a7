"""``make dev``: the Dagster UI (webserver + daemon) with both sandboxes running.

The demo clinic's Splose workspace is set up and its import request submitted, so within 30 seconds the
import-request sensor registers the tenant and launches its import: a data engineer watches it in the
UI, and can re-materialize any asset of the tenant from there. Ctrl-C stops the UI and the sandboxes.

``make dev`` runs on the embedded default (SQLite under ``.dagster_home``); ``make dev-postgres``
(``--postgres``) runs the production instance config, ``dagster.yaml`` (Postgres storage, the queued run
coordinator with one run per tenant and a global cap, run monitoring, run retries), against the
machine's PostgreSQL, started if it is down, in a database of its own.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys

from sandbox.admin import ClinikoSandboxAdmin
from sandbox.demo import submit_import, workspace_for
from sandbox.local import PROJECT, cliniko_sandbox, dagster_home, splose_sandbox, wire_splose
from sandbox.postgres import create_database, ensure_running, instance_environment

DEV_DATABASE = "cliniko_importer_dev"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="small", choices=["tiny", "small", "large"])
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument(
        "--postgres", action="store_true", help=f"the production instance config on local Postgres ({DEV_DATABASE})"
    )
    args = parser.parse_args(argv)

    if args.postgres:
        ensure_running()
        create_database(DEV_DATABASE, exist_ok=True)
        os.environ.update(instance_environment(DEV_DATABASE))
    home = dagster_home(production=args.postgres)
    print(f"Dagster instance: {home} ({'Postgres: ' + DEV_DATABASE if args.postgres else 'SQLite'})")
    token = secrets.token_urlsafe(24)
    with cliniko_sandbox(scale=args.scale) as cliniko, splose_sandbox(token) as splose:
        wire_splose(splose, token)
        os.environ["CLINIKO_API_URL"] = f"{cliniko.url}/{{shard}}/v1"
        workspace = workspace_for(args.scale, 1)
        import_id = submit_import(ClinikoSandboxAdmin(cliniko.url), "demo", splose.url, workspace)
        print(f"Cliniko sandbox: {cliniko.url}   Splose sandbox: {splose.url}")
        print(f"Import request {import_id} submitted for workspace '{workspace}'; the sensor launches it.")
        print(f"Dagster UI: http://127.0.0.1:{args.port}  (Ctrl-C to stop)", flush=True)
        command = [
            os.path.join(os.path.dirname(sys.executable), "dagster"),
            "dev",
            "-w",
            str(PROJECT / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(args.port),
        ]
        ui = subprocess.Popen(command, cwd=PROJECT)
        try:
            return ui.wait()
        except KeyboardInterrupt:
            # dagster dev shuts its webserver, daemon and code servers down on SIGINT.
            ui.send_signal(signal.SIGINT)
            ui.wait(timeout=60)
            return 0


if __name__ == "__main__":
    sys.exit(main())
