"""Running a benchmark's measured part in a child process, so its peak RSS and CPU time are its own."""

from __future__ import annotations

import bisect
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def run_child(script: str, args: list[str], env: dict[str, str]) -> tuple[dict, int]:
    """Run ``script`` in child mode; returns the JSON on its last output line and its peak RSS in bytes."""
    result, usage = run_child_usage(script, args, env)
    return result, usage.ru_maxrss * 1024


def run_child_usage(script: str, args: list[str], env: dict[str, str]) -> tuple[dict, resource.struct_rusage]:
    """Run ``script`` in child mode; returns the JSON on its last output line and the child's resource usage
    (``ru_utime + ru_stime`` its CPU seconds, ``ru_maxrss`` its peak RSS in KiB), from ``os.wait4``."""
    process = subprocess.Popen(
        [sys.executable, script, *args], env={**os.environ, **env}, stdout=subprocess.PIPE, cwd=PROJECT
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"child {args[0]} failed with status {status}")
    return json.loads(output.decode().strip().splitlines()[-1]), usage


def cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def self_cpu_seconds() -> float:
    """CPU seconds this process has used so far (user + system)."""
    return cpu_seconds(resource.getrusage(resource.RUSAGE_SELF))


class CpuClock:
    """This process's CPU seconds, sampled by a thread every ``every`` seconds, so that the CPU a run's steps
    used can be read off their start and end times (the in-process executor runs one step at a time)."""

    def __init__(self, every: float = 0.1) -> None:
        self.every = every
        self.samples: list[tuple[float, float]] = []  # (time.time(), CPU seconds so far)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> CpuClock:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            self.samples.append((time.time(), self_cpu_seconds()))
            if self._stop.wait(self.every):
                self.samples.append((time.time(), self_cpu_seconds()))
                return

    def at(self, moment: float) -> float:
        """CPU seconds used by ``moment``, from the last sample taken at or before it."""
        index = bisect.bisect_right([t for t, _ in self.samples], moment) - 1
        return self.samples[max(0, index)][1]

    def steps(self, records: list) -> dict[str, float]:
        """CPU seconds per step key, from a run's event log entries (STEP_START to its success or failure)."""
        started: dict[str, float] = {}
        used: dict[str, float] = {}
        for entry in records:
            event = entry.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type_value == "STEP_START":
                started[event.step_key] = entry.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
                used[event.step_key] = self.at(entry.timestamp) - self.at(started.pop(event.step_key))
        return used
