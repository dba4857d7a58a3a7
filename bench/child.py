"""Running a benchmark's measured part in a child process, so its peak RSS and CPU time are its own."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
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
