"""The embedded default: a project-local DAGSTER_HOME and a Cliniko sandbox wired to the pipeline.

Used by ``make demo`` and ``make dev``. The pipeline is configured only through the environment variables
its code location reads in production (``CLINIKO_API_URL``, ``SPLOSE_API_URL``, ``SPLOSE_PLATFORM_TOKEN``,
as ``dg.EnvVar``), so it never knows it is talking to a sandbox; staging and the outbox live in the
instance's home.
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


def dagster_home(*, production: bool = False) -> Path:
    """The project-local instance folder with its dagster.yaml: the embedded default (SQLite), or with
    ``production`` the production instance config (Postgres, run queue, monitoring) in its own folder."""
    default = PROJECT / (".dagster_home_postgres" if production else ".dagster_home")
    home = Path(os.environ.get("DAGSTER_HOME") or default).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if home == default.resolve() or not config.exists():  # the project's own folders follow the project's file
        shutil.copyfile(PROJECT / ("dagster.yaml" if production else "dagster.local.yaml"), config)
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
    args = [f"--platform-token={token}", "--db", str(logs / "splose-demo.db"), *(extra_args or [])]
    (logs / "splose-demo.db").unlink(missing_ok=True)
    with running_server("sandbox.splose", args, log_dir=logs) as server:
        yield server


def wire_splose(server: ServerProcess, token: str) -> None:
    """Point the pipeline at the Splose sandbox with the platform token (as production gets it: env)."""
    os.environ["SPLOSE_API_URL"] = f"{server.url}/v1"
    os.environ["SPLOSE_PLATFORM_TOKEN"] = token
