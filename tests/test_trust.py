"""Trust: one clinic's data never reaches another, an import's status tells the truth, the clinic is told once.

Real Cliniko and Splose sandboxes on loopback and a real Dagster instance; the failure sensor is evaluated
as the daemon evaluates it. Assertions compare counts, ids, statuses and the pipeline's own messages.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import stat
from collections.abc import Callable
from datetime import datetime

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository

from cliniko_assets.definitions import defs
from cliniko_assets.lifecycle import IMPORT_ID_TAG, PARTITION_TAG
from cliniko_assets.partitions import tenants
from cliniko_assets.schedules import nightly_resync
from cliniko_assets.sensors import import_failed, import_requests, run_config_for
from sandbox.harness import running_server
from splose_resources.cliniko import FILE_MISSING, FILE_REFUSED
from splose_resources.notifier import NotifierResource
from splose_resources.splose import SploseNotFound
from tests.conftest import PROJECT, RESOURCES, Clinic, materializations, splose_from_env
from tests.loopback import JsonHandler, loopback_server
from tests.s3_server import s3_server, s3_staging  # noqa: F401 (fixtures)
from tests.test_import import (  # noqa: F401 (fixtures)
    TOKEN,
    Import,
    purge_deleted_imports,
    splose_sandbox,
    tiny_import,
)

_other_accounts = itertools.count(1)


def other_clinic(clinic: Clinic, monkeypatch) -> Clinic:
    """A second tenant with its own Cliniko account, staged under the same root as the first."""
    number = next(_other_accounts)
    account = f"other{number}"
    clinic.admin.create_account(account, seed=900 + number, scale="tiny")
    return Clinic(clinic.admin, account, f"other-{number}", clinic.staging, monkeypatch)


def cliniko_requests(clinic: Clinic) -> int:
    return clinic.admin.stats()["keys"].get(f"{clinic.account}/admin", {}).get("total", 0)


def settle(instance: dg.DagsterInstance, run_id: str, outbox) -> None:
    """Evaluate the run-failure sensor for one failed run, as the daemon does."""
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
    (failure,) = [
        entry.dagster_event
        for entry in instance.all_logs(run_id)
        if entry.dagster_event and entry.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
    ]
    context = dg.build_run_status_sensor_context(
        sensor_name="import_failed",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=run,
        resources={"splose": splose_from_env(), "notifier": NotifierResource(outbox=str(outbox))},
    )
    import_failed(context.for_run_failure())


def read_email(path) -> str:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    return f"{message['Subject']}\n{message.get_content()}"


def emails(tiny: Import) -> list[str]:
    return sorted(path.name for path in tiny.outbox.glob("*.eml")) if tiny.outbox.exists() else []


def step_failure(result: dg.ExecuteInProcessResult) -> str:
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][:1]
    return step_failure_text(failure)


def step_failure_text(failure: dg.DagsterEvent) -> str:
    data = failure.event_specific_data
    return data.user_failure_data.description if data.user_failure_data else data.error.message


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def staged_keys(request, clinic) -> Callable[[], list[str]] | None:
    """The clinic's staging on a local folder (None), or in a bucket of a real S3 server: then a listing of
    every object in the bucket."""
    if request.param == "local":
        return None
    store, bucket = request.getfixturevalue("s3_staging")
    clinic.staging = store
    server = request.getfixturevalue("s3_server")
    return lambda: server.keys(bucket)


def test_a_run_given_another_tenants_import_id_is_refused_before_any_cliniko_request(
    clinic, staged_keys, instance, splose_sandbox, tmp_path, monkeypatch
):
    tenant_a = Import(clinic, splose_sandbox.url, tmp_path, monkeypatch)
    tenant_b = Import(other_clinic(clinic, monkeypatch), splose_sandbox.url, tmp_path, monkeypatch)
    instance.add_dynamic_partitions(tenants.name, [tenant_b.clinic.tenant])
    request_b = tenant_b.submit()
    before = (cliniko_requests(tenant_a.clinic), cliniko_requests(tenant_b.clinic))

    result = tenant_a.run(instance, request_b, raise_on_error=False)

    assert not result.success
    message = step_failure(result)
    a, b = tenant_a.clinic.tenant, tenant_b.clinic.tenant
    assert f"belongs to Splose workspace '{b}', not to tenant '{a}'" in message
    assert "before any Cliniko request" in message
    assert tenant_b.clinic.keys["admin"] not in message
    assert (cliniko_requests(tenant_a.clinic), cliniko_requests(tenant_b.clinic)) == before
    staged = [(t, r) for t in (a, b) for r in RESOURCES if clinic.staging.has_data(t, r)]
    assert staged == []
    # Splose refuses it too: acting for workspace A, B's import does not exist.
    with splose_from_env().workspace(a) as workspace, pytest.raises(SploseNotFound):
        workspace.imports.credentials(request_b["id"])
    # The failure sensor leaves B's import alone and tells no one.
    settle(instance, result.run_id, tenant_a.outbox)
    assert tenant_b.status(request_b["id"])["status"] == "submitted"
    assert emails(tenant_a) == []

    # B's own run imports B, under B only.
    assert tenant_b.run(instance, request_b).success
    assert tenant_b.status(request_b["id"])["status"] == "complete"
    assert [r for r in RESOURCES if clinic.staging.has_data(a, r)] == []
    assert clinic.staging.has_tenant(b) and not clinic.staging.has_tenant(a)
    assert len(tenant_b.dump("clients")) > 0 and tenant_a.dump("clients") == []
    if staged_keys is not None:  # on S3: every object B's run wrote is under B's prefix
        keys = staged_keys()
        assert [k for k in keys if not k.startswith(f"staging/{b}/")] == [] and len(keys) > len(RESOURCES)


def test_a_load_run_on_its_own_checks_the_import_itself(clinic, instance, splose_sandbox, tmp_path, monkeypatch):
    """In a whole import the loads rely on the run's mapping step having checked the import; a load re-run
    alone (support materializing splose/clients) has no such step in its run and refuses another
    tenant's import by its own check, writing nothing."""
    tenant_a = Import(clinic, splose_sandbox.url, tmp_path, monkeypatch)
    tenant_b = Import(other_clinic(clinic, monkeypatch), splose_sandbox.url, tmp_path, monkeypatch)
    instance.add_dynamic_partitions(tenants.name, [tenant_b.clinic.tenant])
    request_a, request_b = tenant_a.submit(), tenant_b.submit()
    assert tenant_a.run(instance, request_a).success
    clients = len(tenant_a.dump("clients"))

    def clients_alone(request: dict) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            defs.assets,
            selection=["splose/clients"],
            instance=instance,
            partition_key=tenant_a.clinic.tenant,
            run_config=run_config_for(request),
            resources={**defs.resources, "staging": clinic.staging},
            raise_on_error=False,
        )

    refused = clients_alone(request_b)
    assert not refused.success
    a, b = tenant_a.clinic.tenant, tenant_b.clinic.tenant
    assert f"belongs to Splose workspace '{b}', not to tenant '{a}'" in step_failure(refused)
    assert tenant_b.dump("clients") == [] and len(tenant_a.dump("clients")) == clients
    assert tenant_b.status(request_b["id"])["status"] == "submitted"

    again = clients_alone(request_a)
    assert again.success
    (clients_row,) = [m for m in materializations(again).values()]
    assert (clients_row["unchanged"], clients_row["created"]) == (clients, 0)

    # Undone meanwhile: an earlier run's check of the import no longer holds, the load's own refuses it.
    with splose_from_env().imports() as imports:
        imports.delete_import(request_a["id"])
    undone = clients_alone(request_a)
    assert not undone.success
    assert f"Import {request_a['id']} of tenant '{a}' was deleted in Splose" in step_failure(undone)
    with splose_from_env().imports() as imports:  # no submitted request left over for the sensor tests below
        imports.update_import(request_b["id"], status="running")
        imports.update_import(request_b["id"], status="failed", message="not imported by this test")


def test_a_failed_step_marks_the_import_failed_with_the_pipelines_own_message_once(tiny_import, instance):
    request = tiny_import.submit()
    tenant = tiny_import.clinic.tenant
    with tiny_import.clinic.staging.tenant_lock(tenant):  # another extraction holds the tenant's staging
        result = tiny_import.run(instance, request, raise_on_error=False)
    assert not result.success
    assert tiny_import.status(request["id"])["status"] == "running"  # set by the run once it started

    settle(instance, result.run_id, tiny_import.outbox)
    settle(instance, result.run_id, tiny_import.outbox)  # a tick evaluated again after a crash

    status = tiny_import.status(request["id"])
    expected = f"Another extraction of tenant '{tenant}' is writing its staged data; wait for it to finish."
    assert (status["status"], status["message"]) == ("failed", expected)
    (sent,) = tiny_import.outbox.glob("*.eml")
    text = read_email(sent)
    assert "needs attention" in text and expected in text and "Error occurred" not in text
    assert sent.name == f"import-{request['id']}-failed-{result.run_id}.eml"


def test_a_completed_import_is_never_downgraded_and_each_outcome_is_told_once(tiny_import, instance, tmp_path):
    request = tiny_import.submit()
    broken = tmp_path / "not-a-folder"
    broken.write_text("")
    # The first run completes the import, then cannot write the email (as if it died right there).
    first = defs.resolve_job_def("import_job").execute_in_process(
        instance=instance,
        partition_key=tiny_import.clinic.tenant,
        run_config=run_config_for(request),
        resources={"staging": tiny_import.clinic.staging, "notifier": NotifierResource(outbox=str(broken))},
        raise_on_error=False,
    )
    assert not first.success
    assert tiny_import.status(request["id"])["status"] == "complete"

    settle(instance, first.run_id, tiny_import.outbox)

    assert tiny_import.status(request["id"])["status"] == "complete"
    assert emails(tiny_import) == [f"import-{request['id']}-complete.eml"]
    assert "is complete" in read_email(tiny_import.outbox / emails(tiny_import)[0])

    # Run again (support, or a re-sync): still complete, and the clinic is not told the same thing twice.
    assert tiny_import.run(instance, request).success
    settle(instance, first.run_id, tiny_import.outbox)  # the older failure, cleaned up late
    record = tiny_import.status(request["id"])
    assert record["status"] == "complete" and record["message"].startswith("Complete")
    assert emails(tiny_import) == [f"import-{request['id']}-complete.eml"]


def test_a_deleted_import_is_never_resynced_or_staged_again(tiny_import, instance):
    request = tiny_import.submit()
    assert tiny_import.run(instance, request).success
    tenant = tiny_import.clinic.tenant
    with splose_from_env().imports() as imports:
        imports.delete_import(request["id"])
    assert purge_deleted_imports(instance, tiny_import.clinic.staging).success
    assert not tiny_import.clinic.staging.has_tenant(tenant)

    schedule_context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 11, 25, 2), resources={"splose": splose_from_env()}
    )
    assert list(nightly_resync(schedule_context)) == []

    # Even a run forced with the old run config stops before Cliniko and stages nothing.
    before = cliniko_requests(tiny_import.clinic)
    forced = tiny_import.run(instance, request, raise_on_error=False)
    assert not forced.success
    assert f"Import {request['id']} of tenant '{tenant}' was deleted" in step_failure(forced)
    assert cliniko_requests(tiny_import.clinic) == before
    assert not tiny_import.clinic.staging.has_tenant(tenant)
    settle(instance, forced.run_id, tiny_import.outbox)
    assert tiny_import.status(request["id"])["status"] == "deleted"
    assert emails(tiny_import) == [f"import-{request['id']}-complete.eml"]


def test_one_import_per_workspace_the_second_waits_for_the_first(tiny_import, instance, capfd):
    first = tiny_import.submit()
    assert tiny_import.run(instance, first).success
    tenant = tiny_import.clinic.tenant
    # A re-sync of the first import is launched in Dagster (Splose still says complete until it starts)...
    queued = instance.create_run_for_job(
        defs.resolve_job_def("import_job"),
        run_config=run_config_for(first),
        tags={PARTITION_TAG: tenant, IMPORT_ID_TAG: str(first["id"])},
        status=dg.DagsterRunStatus.NOT_STARTED,
    )
    second = tiny_import.submit()  # ...when the clinic submits a new import
    context = dg.build_sensor_context(instance=instance, resources={"splose": splose_from_env()})

    capfd.readouterr()
    result = import_requests(context)

    assert [r.tags[IMPORT_ID_TAG] for r in result.run_requests] == []
    assert tiny_import.status(second["id"])["status"] == "submitted"
    tick_log = capfd.readouterr().err  # what the daemon keeps as the tick's log
    assert f"Import {second['id']} waits: import {first['id']} of workspace '{tenant}' is in progress" in tick_log

    instance.report_run_canceled(queued)
    result = import_requests(dg.build_sensor_context(instance=instance, resources={"splose": splose_from_env()}))
    assert [r.tags[IMPORT_ID_TAG] for r in result.run_requests] == [str(second["id"])]


@pytest.fixture
def capped_splose(tmp_path):
    """A Splose sandbox that turns away files over 5 MB (the tiny clinic has one)."""
    workdir = tmp_path / "capped"
    workdir.mkdir()
    args = ["--platform-token", TOKEN, "--db", str(workdir / "splose.db"), "--file-size-cap-mb", "5"]
    with running_server("sandbox.splose", args, log_dir=workdir) as server:
        yield server


def _with_a_big_file_to_import(clinic: Clinic, instance, monkeypatch) -> Clinic:
    """``clinic``, or a tiny clinic of another seed, whose file over 5 MB belongs to a patient not deleted (the
    generator gives it a random patient: for some seeds, one whose files are skipped as "client not imported")."""
    for seed in (None, *range(700, 720)):
        if seed is not None:
            account = f"bigfile{seed}"
            clinic.admin.create_account(account, seed=seed, scale="tiny")
            clinic = Clinic(clinic.admin, account, f"bigfile-{seed}", clinic.staging, monkeypatch)
            instance.add_dynamic_partitions(tenants.name, [clinic.tenant])
        deleted = {str(p["id"]) for p in clinic.admin.export(clinic.account, "patients") if p.get("deleted_at")}
        big = [a for a in clinic.admin.export(clinic.account, "patient_attachments") if a["size"] > 5 * 1024 * 1024]
        if big and big[0]["patient"]["links"]["self"].rsplit("/", 1)[-1] not in deleted:
            return clinic
    raise AssertionError("no tiny clinic of 21 seeds has a big file of a live patient")


def test_unreadable_and_rejected_files_make_it_complete_with_warnings_naming_them(
    clinic, instance, capped_splose, tmp_path, monkeypatch
):
    clinic = _with_a_big_file_to_import(clinic, instance, monkeypatch)
    tiny = Import(clinic, capped_splose.url, tmp_path, monkeypatch)
    attachments = list(clinic.admin.export(clinic.account, "patient_attachments"))
    deleted = {str(p["id"]) for p in clinic.admin.export(clinic.account, "patients") if p.get("deleted_at")}
    usable = [
        a
        for a in attachments
        if a["size"] < 5_000_000
        and a["processing_completed"] is not False
        and a["patient"]["links"]["self"].rsplit("/", 1)[-1] not in deleted
    ]
    missing, refused, garbage = (str(a["id"]) for a in usable[:3])
    big = next(str(a["id"]) for a in attachments if a["size"] > 5 * 1024 * 1024)
    broken = {missing: "missing", refused: "forbidden", garbage: "garbage"}
    clinic.admin.configure(faults={"file_host": broken})
    request = tiny.submit()
    try:
        result = tiny.run(instance, request)
    finally:
        clinic.admin.clear_faults()

    assert result.success
    found = materializations(result)
    assert found["patient_attachments"]["files_failed"] == 3
    assert sorted(found["patient_attachments"]["failed_files"]) == sorted(
        [
            f"{missing}: {FILE_MISSING}",
            f"{refused}: {FILE_REFUSED}",
            f"{garbage}: file unreadable: its bytes differ from the size Cliniko records",
        ]
    )
    files = found["files"]
    assert files["rejected"] == 1 and files["rejected_ids"] == [big]
    record = tiny.status(request["id"])
    assert record["status"] == "complete"
    message = record["message"]
    assert message.startswith("Complete with warnings: 4 item(s) need attention.")
    assert "Patient attachments -> Files: 1 rejected by Splose" in message
    assert f"Patient attachments -> Files: 1 skipped, {FILE_MISSING}" in message
    assert f"Patient attachments -> Files: 1 skipped, {FILE_REFUSED}" in message
    assert "All records accounted for" not in message
    assert f"splose/import_report, partition '{clinic.tenant}'" in message
    attention = found["import_report"]["needs_attention"]["Patient attachments -> Files"]
    assert attention[FILE_MISSING] == {"count": 1, "cliniko_ids": [missing]}
    assert attention["rejected"] == {"count": 1, "cliniko_ids": [big]}
    (sent,) = tiny.outbox.glob("*.eml")
    text = read_email(sent)
    assert "4 item(s) need your attention" in text and FILE_REFUSED in text

    # Everything staged and told is private.
    private = [tiny.outbox, *tiny.outbox.rglob("*"), *(p for p in tmp_path.rglob("*") if "staging" in p.parts)]
    loose = [p for p in private if stat.S_IMODE(p.stat().st_mode) != (0o700 if p.is_dir() else 0o600)]
    assert loose == [] and len(private) > 40


def test_every_retry_is_logged_naming_the_request_never_a_secret(clinic, instance):
    from cliniko_assets.definitions import cliniko_resource

    # Faults that always spoil the answer (the sandbox counts a truncation drawn for a redirect, which it
    # cannot truncate, so truncations are left to the extraction's own fault tests).
    faults = {"error_rate": 0.1, "drop_rate": 0.04, "storm_429": {"every": 20, "length": 2}}
    clinic.admin.configure(faults=faults, fault_seed=5)
    clinic.admin.reset_stats()
    try:
        result = clinic.extract(instance, cliniko=cliniko_resource(max_attempts=12))
        stats = clinic.admin.stats()["keys"][f"{clinic.account}/admin"]
    finally:
        clinic.admin.clear_faults()
    assert result.success
    lines = [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if entry.user_message.startswith("Retrying the Cliniko ")
    ]
    answered_badly = sum(stats["injected"].values()) + stats["rate_limited"]
    assert answered_badly >= 10
    assert len(lines) == answered_badly
    assert all(f"of tenant '{clinic.tenant}': attempt " in line and "; waiting " in line for line in lines)
    assert not [line for line in lines if any(key in line for key in clinic.keys.values()) or "http" in line]


def test_a_failed_run_that_does_not_report_the_import_leaves_its_status_alone(tiny_import, instance):
    request = tiny_import.submit()
    with tiny_import.clinic.staging.tenant_lock(tiny_import.clinic.tenant):
        extraction = defs.resolve_job_def("cliniko_extract_job").execute_in_process(
            instance=instance,
            partition_key=tiny_import.clinic.tenant,
            run_config=run_config_for(request),
            resources={"staging": tiny_import.clinic.staging},
            raise_on_error=False,
        )
    assert not extraction.success
    assert tiny_import.status(request["id"])["status"] == "submitted"  # an extraction alone never moves it

    settle(instance, extraction.run_id, tiny_import.outbox)

    assert tiny_import.status(request["id"])["status"] == "submitted"
    assert emails(tiny_import) == []


def test_a_failed_resync_keeps_the_import_complete_and_says_so_once(tiny_import, instance):
    request = tiny_import.submit()
    assert tiny_import.run(instance, request).success
    with tiny_import.clinic.staging.tenant_lock(tiny_import.clinic.tenant):
        resync = tiny_import.run(instance, request, raise_on_error=False)
    assert not resync.success
    assert tiny_import.status(request["id"])["status"] == "running"  # complete -> running: a re-sync started

    settle(instance, resync.run_id, tiny_import.outbox)
    settle(instance, resync.run_id, tiny_import.outbox)

    record = tiny_import.status(request["id"])
    assert record["status"] == "complete"
    assert record["message"].startswith(f"Complete; the latest sync (run {resync.run_id[:8]}) failed")
    assert emails(tiny_import) == [
        f"import-{request['id']}-complete.eml",
        f"import-{request['id']}-failed-{resync.run_id}.eml",
    ]
    told = read_email(tiny_import.outbox / f"import-{request['id']}-failed-{resync.run_id}.eml")
    assert told.startswith("Your Cliniko sync needs attention") and "is writing its staged data" in told


class _Capture(JsonHandler):
    """Anything a run sends where run config pointed it."""

    seen: list[str] = []

    def do_GET(self):
        type(self).seen.append(f"{self.command} {self.path}")
        self.answer(200, {})

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET


def test_run_config_cannot_set_where_the_services_are_their_secrets_or_the_staging_root(
    tiny_import, instance, tmp_path
):
    # A launchpad's run config could point the Splose client (with the platform token, which reads any
    # workspace's Cliniko key) or the Cliniko client (with the clinic's key) at any host, or put a clinic's
    # staging under another's root. Each is refused before anything is sent; nothing reaches the host.
    tenant = tiny_import.clinic.tenant
    request = tiny_import.submit()
    config = run_config_for(request)
    job = defs.resolve_job_def("import_job")
    before = cliniko_requests(tiny_import.clinic)
    with loopback_server(_Capture) as url:
        for key, field, value in (
            ("splose", "api_url", f"{url}/v1"),
            ("splose", "platform_token", {"env": "SPLOSE_PLATFORM_TOKEN"}),
            ("cliniko", "api_url", url),
            ("staging", "uri", str(tmp_path / "clinic-other")),
            ("notifier", "smtp_host", "127.0.0.1"),
        ):
            resources = {**config.get("resources", {}), key: {"config": {field: value}}}
            result = job.execute_in_process(
                instance=instance,
                partition_key=tenant,
                run_config={**config, "resources": resources},
                raise_on_error=False,
            )
            assert not result.success, (key, field)
            (failure,) = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
            message = failure.event_specific_data.error.message
            assert f"sets resources.{key}.config.{field}" in message and "never a run's" in message, message
            assert tiny_import.clinic.keys["admin"] not in message and TOKEN not in message
            # Not retried by Dagster's run retries (dagster.yaml): the same config would be refused again.
            assert instance.get_run_by_id(result.run_id).tags.get("dagster/max_retries") == "0", (key, field)
    assert _Capture.seen == []
    assert cliniko_requests(tiny_import.clinic) == before
    assert not (tmp_path / "clinic-other").exists()
    assert tiny_import.status(request["id"])["status"] == "submitted"

    # A run whose config sets a resource's other fields alone (Dagster rebuilds that resource from them, every
    # other field at its default) still goes where the deployment does: the sandboxes, the clinic's staging.
    resources = {**config.get("resources", {}), "cliniko": {"config": {"concurrency": 3}}, "splose": {"config": {}}}
    result = job.execute_in_process(
        instance=instance, partition_key=tenant, run_config={**config, "resources": resources}
    )
    assert result.success
    assert cliniko_requests(tiny_import.clinic) > before
    assert tiny_import.status(request["id"])["status"] == "complete"
    assert len(tiny_import.dump("clients")) > 0


def test_a_reexecution_of_one_tenants_run_for_another_is_refused_and_no_import_is_complete_unextracted(
    tiny_import, instance, splose_sandbox, tmp_path, monkeypatch
):
    # Tenant A's run fails at the mapping check, after its extraction. Re-executed from failure with the
    # partition changed to B (the launchpad allows it), the new run would skip B's extraction and load and
    # report B from A's plan: B's import "complete" with nothing in it. Refused, naming both tenants.
    tenant_b = Import(other_clinic(tiny_import.clinic, monkeypatch), splose_sandbox.url, tmp_path, monkeypatch)
    instance.add_dynamic_partitions(tenants.name, [tenant_b.clinic.tenant])
    a, b = tiny_import.clinic.tenant, tenant_b.clinic.tenant
    mapping = {kind: dict(entries) for kind, entries in tiny_import.mapping.items()}
    mapping["locations"].pop(next(b for b, t in mapping["locations"].items() if t != "ignore"))
    request_a, request_b = tiny_import.submit(mapping), tenant_b.submit()
    job = ReconstructableRepository.for_module(
        "cliniko_assets.definitions", "defs", str(PROJECT)
    ).get_reconstructable_job("import_job")
    with dg.execute_job(
        job, instance=instance, run_config=run_config_for(request_a), tags={PARTITION_TAG: a}
    ) as parent:
        assert not parent.success
    before = cliniko_requests(tenant_b.clinic)
    with dg.execute_job(
        job,
        instance=instance,
        reexecution_options=dg.ReexecutionOptions.from_failure(parent.run_id, instance),
        run_config={},  # the parent's import id cleared: the run would take tenant B's latest import
        tags={PARTITION_TAG: b},
    ) as child:
        assert not child.success
        failures = [step_failure_text(e) for e in child.all_events if e.event_type_value == "STEP_FAILURE"]
    refusal = f"re-executes run {parent.run_id[:8]} of tenant '{a}' with partition '{b}'"
    assert failures and all(refusal in failure for failure in failures), failures
    assert cliniko_requests(tenant_b.clinic) == before
    assert tenant_b.status(request_b["id"])["status"] == "submitted" and tenant_b.dump("clients") == []

    # B's loads and report alone (a selection without the extraction): the report refuses to call it complete.
    result = defs.resolve_job_def("import_job").execute_in_process(
        instance=instance,
        partition_key=b,
        run_config=run_config_for(request_b),
        asset_selection=[
            k for k in defs.resolve_job_def("import_job").asset_layer.executable_asset_keys if k.path[0] == "splose"
        ],
        raise_on_error=False,
    )
    assert not result.success
    assert "cannot be reported complete: its Cliniko data was never extracted for this tenant" in step_failure(result)
    assert tenant_b.status(request_b["id"])["status"] != "complete"
