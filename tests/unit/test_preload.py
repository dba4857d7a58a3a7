"""What a run's fork server loads before it forks the steps (``cliniko_assets.preload``)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from sandbox.local import PROJECT

# In a process of its own (the preload changes the process it is imported into): a step forked after the
# preload opens the embedded SQLite instance and its run's event shard; how many migration scripts Alembic
# read in the step, and the head revision it compared with.
STEP = textwrap.dedent(
    """
    import json, os, sys
    if sys.argv[1] == "preloaded":
        import cliniko_assets.preload
    import dagster as dg
    from alembic.script import Script, ScriptDirectory
    from dagster._core.storage.sql import get_alembic_config
    import dagster._core.storage.event_log.sqlite.sqlite_event_log as event_log

    read = Script._from_path
    scripts = []

    def counted(cls, scriptdir, path):
        scripts.append(path)
        return read.__func__(cls, scriptdir, path)

    Script._from_path = classmethod(counted)
    ref = dg.DagsterInstance.get().get_ref()
    out, into = os.pipe()
    pid = os.fork()
    if pid == 0:
        instance = dg.DagsterInstance.from_ref(ref)
        with instance.event_log_storage.run_connection("a-run"):
            pass
        head = ScriptDirectory.from_config(get_alembic_config(event_log.__file__)).as_revision_number("head")
        os.write(into, json.dumps({"scripts_read": len(scripts), "head": head}).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    print(os.read(out, 10_000).decode())
    """
)


def step_opening_the_instance(tmp_path: Path, mode: str) -> dict:
    home = tmp_path / mode
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {"DAGSTER_HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT)}
    done = subprocess.run(
        [sys.executable, "-c", STEP, mode], env=env, cwd=PROJECT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_step_forked_after_the_preload_reads_no_migration_script_to_open_the_sqlite_instance(tmp_path):
    alone = step_opening_the_instance(tmp_path, "alone")
    preloaded = step_opening_the_instance(tmp_path, "preloaded")
    # Without the preload, a step reads Dagster's migration scripts once per database it checks.
    assert alone["scripts_read"] >= 2 * 50
    # With it, the scripts were read once in the fork server, and the step compares with the same head.
    assert preloaded["scripts_read"] == 0
    assert preloaded["head"] == alone["head"]
