"""A benchmark told to stop (SIGTERM: ``kill``, a CI job's timeout) stops every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from sandbox.local import PROJECT


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.NoSuchProcess:  # gone since it was listed
        return ""


def test_a_bench_stopped_with_sigterm_stops_its_sandbox_and_its_child_processes(tmp_path):
    bench = subprocess.Popen(
        [sys.executable, "bench/cpu.py", "--scale", "tiny"],
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    parent = psutil.Process(bench.pid)
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and bench.poll() is None:
            started = parent.children(recursive=True)
            if any(_command(process).endswith("cpu.py pipeline") for process in started):
                break
            time.sleep(0.1)
        names = [_command(process) for process in started]
        assert any("sandbox.cliniko" in name for name in names), names  # the sandbox, and the measured child
        assert any("bench/cpu.py" in name for name in names), names

        bench.send_signal(signal.SIGTERM)
        assert bench.wait(60) == 128 + signal.SIGTERM
        gone, alive = psutil.wait_procs(started, timeout=10)
        assert [_command(process) for process in alive if _alive(process)] == []
        assert len(gone) >= 2
    finally:
        for process in [parent, *started]:
            if _alive(process):
                process.kill()
