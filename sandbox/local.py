"""The embedded default: a project-local DAGSTER_HOME and a Cliniko sandbox wired to the pipeline.

Used by ``make demo`` and ``make dev``. The pipeline is configured only through the environment it
reads in production (``CLINIKO_API_URL``, ``CLINIKO_API_KEY__<TENANT>``, ``STAGING_URI``), so it never
knows it is talking to a sandbox.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox.harness import ServerProcess, running_server

PROJECT = Path(__file__).resolve().parent.parent


def dagster_home() -> Path:
    """The project-local instance folder, with the embedded default's dagster.yaml in it."""
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(PROJECT / "dagster.local.yaml", config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def tenant_key_variable(tenant: str) -> str:
    return "CLINIKO_API_KEY__" + re.sub(r"[^A-Z0-9]", "_", tenant.upper())


@contextmanager
def cliniko_sandbox(*, scale: str, seed: int = 1, extra_args: list[str] | None = None) -> Iterator[ServerProcess]:
    logs = PROJECT / ".sandbox"
    with running_server(
        "sandbox.cliniko",
        ["--account", f"demo:{seed}:{scale}:au1", *(extra_args or [])],
        log_dir=logs,
    ) as server:
        yield server


@contextmanager
def splose_sandbox(token: str, extra_args: list[str] | None = None) -> Iterator[ServerProcess]:
    logs = PROJECT / ".sandbox"
    logs.mkdir(exist_ok=True)
    args = ["--platform-token", token, "--db", str(logs / "splose-demo.db"), *(extra_args or [])]
    (logs / "splose-demo.db").unlink(missing_ok=True)
    with running_server("sandbox.splose", args, log_dir=logs) as server:
        yield server


def wire_splose(server: ServerProcess, token: str) -> None:
    """Point the pipeline at the Splose sandbox with the platform token (as production gets it: env)."""
    os.environ["SPLOSE_API_URL"] = f"{server.url}/v1"
    os.environ["SPLOSE_PLATFORM_TOKEN"] = token
