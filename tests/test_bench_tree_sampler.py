"""The benches' CPU of a process tree counts every process's whole CPU, short-lived ones included.

A real process tree: a parent that forks children one after another and side by side, each burning a set
amount of CPU and writing what it used just before it exits; one child forks and reaps a child of its own.
Most of them live less than one sample interval of ``TreeSampler``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from bench.child import TreeSampler

TREE = textwrap.dedent(
    """
    import json, os, resource, sys, time

    out = sys.argv[1]

    def burn(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    def child(seconds, grandchild=0.0):
        pid = os.fork()
        if pid:
            return pid
        if grandchild:
            os.waitpid(child(grandchild), 0)
        burn(seconds)
        usage = resource.getrusage(resource.RUSAGE_SELF)  # to the microsecond (os.times: clock ticks)
        with open(f"{out}/{os.getpid()}.json", "w") as handle:  # what it used itself
            json.dump({"own": usage.ru_utime + usage.ru_stime}, handle)
        os._exit(0)

    for seconds in (0.05, 0.12, 0.3):  # one after another
        os.waitpid(child(seconds), 0)
    side_by_side = [child(seconds) for seconds in (0.08, 0.08, 0.2)]
    for pid in side_by_side:
        os.waitpid(pid, 0)
    os.waitpid(child(0.1, grandchild=0.15), 0)
    time.sleep(0.1)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_each_process_counts_all_the_cpu_it_used_however_short_it_lived(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", TREE, str(tmp_path)])
    with TreeSampler(process.pid) as sampler:
        process.wait()
    reported = {int(path.stem): json.loads(path.read_text()) for path in tmp_path.glob("*.json")}

    assert len(reported) == 8
    counted = sampler.usage.cpu_by_pid
    for pid, used in reported.items():
        # /proc counts in clock ticks of 10 ms, read twice for each figure, and a child exits after it wrote its own.
        assert counted.get(pid, 0.0) == pytest.approx(used["own"], abs=0.035), pid
    assert sampler.usage.ended_counted == 8  # each counted as it ended, none as last read
    assert sampler.usage.unseen_cpu_s == pytest.approx(0.0, abs=0.02)  # the grandchild was seen too
    assert sampler.usage.cpu_s >= sum(used["own"] for used in reported.values()) - 0.03
