"""Running a benchmark's measured part in a child process, so its peak RSS and CPU time are its own."""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.harness import stop_process_group

PROJECT = Path(__file__).resolve().parent.parent
STOP_SECONDS = 10  # how long a child interrupted with its processes gets to stop before they are killed


def stop_on_sigterm() -> None:
    """A bench told to stop (``kill``, a CI job's timeout) stops what it started, as Ctrl-C does: SIGTERM
    raises ``SystemExit``, so every sandbox and child process is stopped on the way out."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


@contextlib.contextmanager
def _child(script: str, args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """``script`` in child mode, in a process group of its own: if the bench stops before the child is done,
    the whole group (the child, Dagster's fork server, its step processes) is interrupted, then killed."""
    process = subprocess.Popen(
        [sys.executable, script, *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        cwd=PROJECT,
        start_new_session=True,
    )
    try:
        yield process
    except BaseException:
        stop_process_group(process, STOP_SECONDS)
        raise


def run_child(script: str, args: list[str], env: dict[str, str]) -> tuple[dict, int]:
    """Run ``script`` in child mode; returns the JSON on its last output line and its peak RSS in bytes."""
    result, usage = run_child_usage(script, args, env)
    return result, usage.ru_maxrss * 1024


def run_child_usage(script: str, args: list[str], env: dict[str, str]) -> tuple[dict, resource.struct_rusage]:
    """Run ``script`` in child mode; returns the JSON on its last output line and the child's resource usage
    (``ru_utime + ru_stime`` its CPU seconds, ``ru_maxrss`` its peak RSS in KiB), from ``os.wait4``."""
    with _child(script, args, env) as process:
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"child {args[0]} failed with status {status}")
    return json.loads(output.decode().strip().splitlines()[-1]), usage


@dataclass
class TreeUsage:
    """What a child and every process under it used, sampled every ``every`` seconds from ``/proc``.

    ``peak_rss_mb``: the largest RSS any one process reached (a Dagster step process, typically);
    ``peak_pss_mb``: the largest total PSS of the whole tree at one sample (shared pages split between the
    processes sharing them: the tree's real footprint); ``cpu_s``: user + system CPU of every process seen,
    each at its last sample (a process's last fraction of a sample interval is missed), and ``cpu_by_pid`` the
    same per process; ``rss_by_pid``: the largest RSS each process reached (:meth:`peaks_by` and
    :meth:`cpu_by` name them).
    """

    peak_rss_mb: float = 0.0
    peak_pss_mb: float = 0.0
    cpu_s: float = 0.0
    processes: int = 0
    rss_by_pid: dict[int, float] = field(default_factory=dict)
    cpu_by_pid: dict[int, float] = field(default_factory=dict)

    def peaks_by(self, names: dict[int, str], other: str = "run") -> dict[str, float]:
        """The largest RSS (MB) reached under each name of ``names`` (pid -> name, e.g. a Dagster step's key);
        processes not named count as ``other``. Largest first."""
        peaks: dict[str, float] = {}
        for pid, rss in self.rss_by_pid.items():
            name = names.get(pid, other)
            peaks[name] = max(peaks.get(name, 0.0), rss)
        return dict(sorted(peaks.items(), key=lambda item: -item[1]))

    def cpu_by(self, names: dict[int, str], other: str = "run") -> dict[str, float]:
        """CPU seconds used under each name of ``names`` (pid -> name), summed; processes not named count as
        ``other``."""
        used: dict[str, float] = {}
        for pid, cpu in self.cpu_by_pid.items():
            name = names.get(pid, other)
            used[name] = used.get(name, 0.0) + cpu
        return used


class TreeSampler:
    def __init__(self, root: int, every: float = 0.25) -> None:
        self.root = root
        self.every = every
        self.usage = TreeUsage()
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.usage.cpu_s = sum(self._cpu.values())
        self.usage.cpu_by_pid = dict(self._cpu)
        self.usage.processes = len(self._cpu)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def sample(self) -> None:
        total_pss = 0.0
        for pid in self._tree():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
                pss_kb = _pss_kb(pid)
            except (OSError, IndexError, ValueError):
                continue  # it ended meanwhile
            self._cpu[pid] = (int(stat[11]) + int(stat[12])) / self._tick  # utime, stime: its own CPU only
            rss_mb = rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20
            self.usage.rss_by_pid[pid] = max(self.usage.rss_by_pid.get(pid, 0.0), rss_mb)
            self.usage.peak_rss_mb = max(self.usage.peak_rss_mb, rss_mb)
            total_pss += pss_kb / 1024
        self.usage.peak_pss_mb = max(self.usage.peak_pss_mb, total_pss)

    def _tree(self) -> list[int]:
        found, stack = [], [self.root]
        while stack:
            pid = stack.pop()
            found.append(pid)
            for task in _tasks(pid):
                try:
                    stack.extend(int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
                except OSError:
                    continue
        return found


def _tasks(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def _pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def run_child_tree(script: str, args: list[str], env: dict[str, str]) -> tuple[dict, TreeUsage]:
    """Run ``script`` in child mode like :func:`run_child_usage`, measuring the child and every process under
    it (Dagster runs each step in a process of its own, which ``os.wait4`` of the child does not count)."""
    with _child(script, args, env) as process, TreeSampler(process.pid) as sampler:
        output = process.stdout.read()
        _, status, _ = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"child {args[0]} failed with status {status}")
    return json.loads(output.decode().strip().splitlines()[-1]), sampler.usage


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


def use_project_code(directory: str) -> None:
    """Import the project's packages from ``directory`` (another checkout) from now on, in a child that is
    about to run them: modules of theirs already imported (by a sandbox helper, say) are forgotten first."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("cliniko_assets", "splose_resources")]:
        del sys.modules[name]
    sys.path.insert(0, directory)


def embedded_instance(code: Path = PROJECT) -> dict:
    """The ``instance_class`` of the embedded default's instance config (``dagster.local.yaml``) of the
    checkout at ``code``, so a bench's instance stores its runs as ``make demo``'s does (none, Dagster's
    own, for a checkout whose config names none)."""
    import yaml

    config = yaml.safe_load((code / "dagster.local.yaml").read_text())
    return {"instance_class": config["instance_class"]} if "instance_class" in config else {}
