"""The support CLI against a real Dagster webserver: tenants, status, clear errors."""

from __future__ import annotations

import dagster as dg
import pytest

from cliniko_assets import cli
from sandbox.dagster_server import dagster_server, free_port


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    with dagster_server(tmp_path_factory.mktemp("dagster-home")) as server:
        yield server


def run_cli(capsys, url: str, *args: str) -> tuple[int, str, str]:
    code = cli.main(["--url", url, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_status_before_any_tenant_says_how_tenants_appear(webserver, capsys):
    code, out, _ = run_cli(capsys, webserver.url, "status")
    assert code == 0
    assert "No tenants yet" in out


def test_status_lists_every_tenant_and_refuses_an_unknown_one(webserver, capsys):
    with dg.DagsterInstance.from_config(str(webserver.home)) as instance:
        instance.add_dynamic_partitions("tenants", ["clinic-a", "clinic-b"])

    code, out, _ = run_cli(capsys, webserver.url, "status")
    assert code == 0
    assert out.splitlines() == ["clinic-a: no import run yet", "clinic-b: no import run yet"]

    code, out, err = run_cli(capsys, webserver.url, "status", "clinic-x")
    assert code == 2
    assert "Unknown tenant 'clinic-x'" in err and "Known tenants: clinic-a, clinic-b" in err

    code, out, _ = run_cli(capsys, webserver.url, "cancel", "clinic-a")
    assert code == 0
    assert out.strip() == "clinic-a: cancelled 0 run(s)"


def test_a_webserver_that_is_down_is_named_with_what_to_do(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run_cli(capsys, url, "status")
    assert code == 2
    assert out == ""
    assert f"Cannot reach the Dagster webserver at {url}" in err and "make dev" in err


def test_backfill_needs_tenants(webserver, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--url", webserver.url, "backfill"])
    assert "one of the arguments --all tenants is required" in capsys.readouterr().err


def test_status_shows_a_tenant_run_launched_from_the_asset_graph(webserver, capsys):
    """Assets materialized from the UI run as an asset job, not import_job; a later preview is not an import."""
    partition = {"dagster/partition": "clinic-c"}
    with dg.DagsterInstance.from_config(str(webserver.home)) as instance:
        instance.add_dynamic_partitions("tenants", ["clinic-c"])
        from_graph = instance.add_run(
            dg.DagsterRun(
                job_name="__ASSET_JOB",
                asset_selection={dg.AssetKey(["splose", "clients"])},
                status=dg.DagsterRunStatus.SUCCESS,
                tags={**partition, "splose/import_id": "41"},
            )
        )
        instance.add_run(
            dg.DagsterRun(
                job_name="__ASSET_JOB",
                asset_selection={dg.AssetKey(["splose", "import_preview"])},
                status=dg.DagsterRunStatus.FAILURE,
                tags=partition,
            )
        )

    code, out, _ = run_cli(capsys, webserver.url, "status", "clinic-c")
    assert code == 0
    assert out.splitlines()[0] == f"clinic-c: import 41, run {from_graph.run_id} success"


def test_status_says_which_run_wrote_the_report_and_that_an_import_was_undone_since(webserver, capsys):
    """A failed re-sync wrote no report: the one shown is an earlier run's, and says so. An undo after the
    import: the import is deleted in Splose, whatever its last report said."""
    partition = {"dagster/partition": "clinic-d"}
    with dg.DagsterInstance.from_config(str(webserver.home)) as instance:
        instance.add_dynamic_partitions("tenants", ["clinic-d"])
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=["splose", "import_report"],
                partition="clinic-d",
                metadata={"summary": dg.MetadataValue.md("Complete: every record is accounted for.")},
            )
        )
        failed = instance.add_run(
            dg.DagsterRun(job_name="import_job", status=dg.DagsterRunStatus.FAILURE, tags={**partition})
        )

    code, out, _ = run_cli(capsys, webserver.url, "status", "clinic-d")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"clinic-d: run {failed.run_id} failure"
    assert f"the latest import run, {failed.run_id} (failure), wrote no report" in lines[1]
    assert "Complete: every record is accounted for." in out

    with dg.DagsterInstance.from_config(str(webserver.home)) as instance:
        undo = instance.add_run(
            dg.DagsterRun(job_name="undo_import_job", status=dg.DagsterRunStatus.SUCCESS, tags={**partition})
        )

    code, out, _ = run_cli(capsys, webserver.url, "status", "clinic-d")
    assert (
        out.splitlines()[0]
        == f"clinic-d: run {failed.run_id} failure; then undone by run {undo.run_id} success: deleted in Splose"
    )
    assert "that import was undone since" in out.splitlines()[1]


def test_no_wait_is_taken_before_or_after_the_command():
    parser = cli._parser()
    assert parser.parse_args(["backfill", "--all", "--no-wait"]).no_wait is True
    assert parser.parse_args(["--no-wait", "import", "clinic-a"]).no_wait is True
    assert parser.parse_args(["resync", "clinic-a", "clinic-b"]).no_wait is False


def test_a_backfill_says_why_each_tenants_run_failed(webserver, capsys, monkeypatch):
    """The backfill's runs are listed without their events; a failed one is read again for its own message,
    as ``import`` prints it. Only the launch is stood in for (a backfill needs the daemon): the runs, their
    events and the waiting go through the webserver."""
    backfill = {"dagster/backfill": "bfclitest"}
    reason = "clinic-f: Cliniko refused the API key (401): the key was revoked. Ask the clinic for a new key."
    with dg.DagsterInstance.from_config(str(webserver.home)) as instance:
        instance.add_dynamic_partitions("tenants", ["clinic-e", "clinic-f"])
        done = instance.add_run(
            dg.DagsterRun(
                job_name="import_job",
                status=dg.DagsterRunStatus.SUCCESS,
                tags={**backfill, "dagster/partition": "clinic-e"},
            )
        )
        failed = instance.add_run(
            dg.DagsterRun(
                job_name="import_job",
                status=dg.DagsterRunStatus.STARTED,
                tags={**backfill, "dagster/partition": "clinic-f"},
            )
        )
        instance.report_run_failed(failed, reason)
    monkeypatch.setattr(cli.Dagster, "launch_backfill", lambda self, tenants: "bfclitest")

    code, out, _ = run_cli(capsys, webserver.url, "--poll-seconds", "0.2", "backfill", "clinic-e", "clinic-f")

    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "Backfill bfclitest launched for 2 tenant(s): clinic-e, clinic-f"
    assert lines[1].startswith(f"clinic-e: run {done.run_id} success")
    assert lines[2].startswith(f"clinic-f: run {failed.run_id} failure")
    assert lines[3:] == [f"  {reason}"]


def test_cancel_waits_for_a_starting_run_and_says_what_to_do_when_it_never_starts(tmp_path, monkeypatch, capsys):
    """Dagster refuses to terminate a run that is still starting: cancel asks again until it has started, and
    past the wait names the run and what to do, in one line (no traceback)."""
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
    from dagster._core.utils import make_new_run_id

    from cliniko_assets import cli_graphql

    monkeypatch.setattr(cli_graphql, "START_WAIT_SECONDS", 2.0)
    run_id = make_new_run_id()
    with dagster_server(tmp_path / "home") as server:
        with dg.DagsterInstance.from_config(str(server.home)) as instance:
            instance.add_dynamic_partitions("tenants", ["clinic-s"])
            tags = {"dagster/partition": "clinic-s"}
            instance.add_run(
                DagsterRun(job_name="import_job", run_id=run_id, status=DagsterRunStatus.STARTING, tags=tags)
            )

        code, out, err = run_cli(capsys, server.url, "cancel", "clinic-s")
        with dg.DagsterInstance.from_config(str(server.home)) as instance:
            status = instance.get_run_by_id(run_id).status

    assert code == 2 and out == "" and "Traceback" not in err, (code, err)
    assert f"Dagster would not cancel {run_id} (still starting after 2s)" in err
    assert "run 'cliniko-import cancel clinic-s' again" in err
    assert status == DagsterRunStatus.STARTING
