"""Start a sandbox server as a child process and stop it again (tests, demo, benchmarks)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class SandboxStartError(RuntimeError):
    pass


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen
    log_path: Path

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def stop_process_group(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGINT to ``process``'s group (started with ``start_new_session``: it and everything it started), as
    Ctrl-C would; SIGKILL to whatever of the group is still there after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
        while time.monotonic() < deadline:
            process.poll()  # reap the leader itself
            os.killpg(process.pid, 0)  # raises once every process of the group is gone
            time.sleep(0.5)
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def start_server(
    module: str,
    args: list[str] | None = None,
    *,
    env: dict[str, str] | None = None,
    startup_timeout: float = 900,
    log_dir: str | os.PathLike | None = None,
) -> ServerProcess:
    """Run ``python -m <module> --port 0 --ready-file F <args>`` and wait until it is ready.

    The server's output goes to a log file next to the ready file, never to the caller's output.
    ``startup_timeout`` is generous because a large generated clinic takes minutes to build.
    """
    workdir = Path(log_dir or tempfile.mkdtemp(prefix="sandbox-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / f"{module.replace('.', '_')}-{os.getpid()}-{time.monotonic_ns()}.ready"
    log_path = ready.with_suffix(".log")
    cmd = [sys.executable, "-m", module, "--port", "0", "--ready-file", str(ready), *(args or [])]
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
    )
    log.close()
    deadline = time.monotonic() + startup_timeout
    server = ServerProcess(url="", process=process, log_path=log_path)
    while time.monotonic() < deadline:
        if ready.exists():
            server.url = json.loads(ready.read_text())["url"]
            return server
        if process.poll() is not None:
            raise SandboxStartError(f"{module} exited with {process.returncode}:\n{server.log_tail()}")
        time.sleep(0.05)
    server.stop()
    raise SandboxStartError(f"{module} did not become ready in {startup_timeout:.0f}s:\n{server.log_tail()}")


@contextlib.contextmanager
def running_server(module: str, args: list[str] | None = None, **kwargs) -> Iterator[ServerProcess]:
    server = start_server(module, args, **kwargs)
    try:
        yield server
    finally:
        server.stop()
