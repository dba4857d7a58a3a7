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
SETTLE_TICKS = 5  # watch ticks after which a child seen ended is counted even if its parent's counters stand


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
    """What a child and every process under it used, read from ``/proc`` (:class:`TreeSampler`).

    ``peak_rss_mb``: the largest RSS any one process reached (a Dagster step process, typically);
    ``peak_pss_mb``: the largest total PSS of the whole tree at one sample (shared pages split between the
    processes sharing them: the tree's real footprint); ``cpu_by_pid``: user + system CPU of each process
    seen, all it used when it ended while its parent was watched, else what it was last read using;
    ``unseen_cpu_s``: what processes never seen used (reaped by a process of the tree between two reads of
    it); ``cpu_s``: the sum of both; ``ended_counted``: how many processes were counted as they ended;
    ``rss_by_pid``: the largest RSS each process reached (:meth:`peaks_by` and :meth:`cpu_by` name them).
    """

    peak_rss_mb: float = 0.0
    peak_pss_mb: float = 0.0
    cpu_s: float = 0.0
    processes: int = 0
    rss_by_pid: dict[int, float] = field(default_factory=dict)
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    ended_counted: int = 0
    unseen_cpu_s: float = 0.0

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


@dataclass
class _Process:
    """A process of the tree as last read: its own CPU, the CPU of the children it reaped (the kernel adds a
    child's, with what that child reaped, when its parent reaps it), its children, and the threads that
    started them."""

    own: float = 0.0
    reaped: float = 0.0
    children: set[int] = field(default_factory=set)
    tasks: set[str] = field(default_factory=set)
    ended: dict[int, int] = field(default_factory=dict)  # its children seen gone -> the watch tick they were
    base: float = 0.0  # ``reaped`` when its children seen gone were last counted
    counted: float = 0.0  # what its children it reaped were counted with (their own CPU and what they reaped)


class TreeSampler:
    """Samples a process tree's memory every ``every`` seconds (with a walk of the whole tree) and its processes'
    CPU every ``watch_every`` seconds.

    A sample reads a process's CPU so far, so what it used after its last sample would be missed: a Dagster
    step that lives 0.2 s would hardly count. So each process's parent is watched for it ending: when a parent
    reaps a child, the kernel adds all the child used, and what the child's own reaped children used, to the
    parent's counters of reaped children (``cutime``/``cstime`` in ``/proc/<pid>/stat``). A jump of those
    counters once a child is gone is that child's CPU, less what its own reaped children used by the last
    time it was read (counted as theirs, or for a child never seen, in ``unseen_cpu_s``). Children gone in the
    same watch interval share the jump beyond what each was last read using, in proportion to it. The root
    (no parent in the tree) counts what it was last read using.
    """

    def __init__(self, root: int, every: float = 0.25, watch_every: float = 0.02) -> None:
        self.root = root
        self.every = every
        self.watch_every = watch_every
        self.usage = TreeUsage()
        self._processes: dict[int, _Process] = {}
        self._ended: dict[int, float] = {}  # pid -> all the CPU it used itself, counted when it ended
        self._lock = threading.Lock()
        self._tick_count = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, daemon=True),
            threading.Thread(target=self._watch_endings, daemon=True),
        ]
        self._tick = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> TreeSampler:
        self.sample()  # the root is watched before its first child can end
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        with self._lock:
            cpu = {pid: process.own for pid, process in self._processes.items()} | self._ended
        self.usage.cpu_by_pid = cpu
        self.usage.cpu_s = sum(cpu.values()) + self.usage.unseen_cpu_s
        self.usage.processes = len(cpu)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def _watch_endings(self) -> None:
        while not self._stop.wait(self.watch_every):
            self.watch()

    def sample(self) -> None:
        """Every process's memory, and the tree walked: each process's children and the threads they came from."""
        total_pss = 0.0
        tree = self._tree()
        for pid, (children, tasks) in tree.items():
            try:
                rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
                pss_kb = _pss_kb(pid)
            except (OSError, IndexError, ValueError):
                continue  # it ended meanwhile
            with self._lock:
                process = self._processes.get(pid)
                if process is None:
                    # Counted as it ended, a process is read again only if it used more since: one seen gone that
                    # runs on (moved to another thread of its parent as the thread that started it ended).
                    process = self._read(pid, _Process())
                    if process is not None and process.own > self._ended.get(pid, -1.0):
                        self._ended.pop(pid, None)
                        self._processes[pid] = process
                    else:
                        process = None
                if process is not None:
                    process.children |= children - set(process.ended)
                    process.tasks |= tasks
            rss_mb = rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20
            self.usage.rss_by_pid[pid] = max(self.usage.rss_by_pid.get(pid, 0.0), rss_mb)
            self.usage.peak_rss_mb = max(self.usage.peak_rss_mb, rss_mb)
            total_pss += pss_kb / 1024
        self.usage.peak_pss_mb = max(self.usage.peak_pss_mb, total_pss)

    def watch(self) -> None:
        """One watch tick: each process's CPU read again, and its children; a child gone is counted once its
        parent's counters had a tick to take it in (one that used no clock tick leaves them as they were)."""
        with self._lock:
            self._tick_count += 1
            for pid in list(self._processes):
                process = self._processes.get(pid)  # None: counted as it ended, earlier in this tick
                if process is None or self._read(pid, process) is None:
                    continue  # ended: counted by its parent, or (the root) as last read
                children = _children(pid, process.tasks)
                for child in process.children - children:
                    process.ended.setdefault(child, self._tick_count)
                for child in children - process.children:
                    if child not in self._processes and child not in self._ended:
                        self._processes[child] = self._read(child, _Process(tasks={str(child)})) or _Process()
                process.children = (process.children | children) - set(process.ended)
                if process.ended:
                    waited = self._tick_count - max(process.ended.values())
                    if waited >= 1 and (process.reaped > process.base or waited >= SETTLE_TICKS):
                        self._count_ended(process)

    def _count_ended(self, parent: _Process) -> None:
        ended = {pid: self._processes.pop(pid, None) or _Process() for pid in parent.ended}
        used = {pid: child.own for pid, child in ended.items()}
        left = max(parent.reaped - parent.base - sum(used.values()) - sum(c.reaped for c in ended.values()), 0.0)
        for pid, child in ended.items():
            share = used[pid] / sum(used.values()) if sum(used.values()) > 0 else 1 / len(ended)
            self._ended[pid] = used[pid] + left * share
            self.usage.unseen_cpu_s += max(child.reaped - child.counted, 0.0)  # children it reaped, never seen
        parent.counted += parent.reaped - parent.base
        self.usage.ended_counted += len(ended)
        parent.base = parent.reaped
        parent.ended.clear()

    def _read(self, pid: int, process: _Process) -> _Process | None:
        """``process`` with its CPU read again; None once it has ended (or is a zombie)."""
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            return None
        if stat[0] == b"Z":
            return None
        process.own = (int(stat[11]) + int(stat[12])) / self._tick  # utime, stime
        process.reaped = (int(stat[13]) + int(stat[14])) / self._tick  # cutime, cstime
        return process

    def _tree(self) -> dict[int, tuple[set[int], set[str]]]:
        """Every process under the root: its children and the threads they came from."""
        found: dict[int, tuple[set[int], set[str]]] = {}
        stack = [self.root]
        while stack:
            pid = stack.pop()
            children, tasks = found.setdefault(pid, (set(), {str(pid)}))
            for task in _tasks(pid):
                started = _children(pid, {task})
                if started:
                    children.update(started)
                    tasks.add(task)
                stack.extend(started)
        return found


def _children(pid: int, tasks: set[str]) -> set[int]:
    """The children of ``pid`` that its threads ``tasks`` started."""
    children: set[int] = set()
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as handle:
                children.update(int(c) for c in handle.read().split())
        except OSError:
            continue
    return children


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
