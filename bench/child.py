"""Running a benchmark's measured part in a child process, so its peak RSS is its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def run_child(script: str, args: list[str], env: dict[str, str]) -> tuple[dict, int]:
    """Run ``script`` in child mode; returns the JSON on its last output line and its peak RSS in bytes."""
    process = subprocess.Popen(
        [sys.executable, script, *args], env={**os.environ, **env}, stdout=subprocess.PIPE, cwd=PROJECT
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"child {args[0]} failed with status {status}")
    return json.loads(output.decode().strip().splitlines()[-1]), usage.ru_maxrss * 1024
