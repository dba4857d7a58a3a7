"""``make dev``: the Dagster UI (webserver + daemon) on the embedded default, with the sandbox running.

The demo clinic's tenant partition is registered, so a data engineer can open the UI, pick the
tenant and materialize. Ctrl-C stops the UI and the sandbox.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

import dagster as dg

from sandbox.local import DEMO_TENANT, PROJECT, cliniko_sandbox, dagster_home, wire_tenant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="small", choices=["tiny", "small", "large"])
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)

    dagster_home()
    with cliniko_sandbox(scale=args.scale) as server:
        wire_tenant(server, DEMO_TENANT)
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("tenants", [DEMO_TENANT])
        print(f"Cliniko sandbox: {server.url}  (tenant '{DEMO_TENANT}' registered)")
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
