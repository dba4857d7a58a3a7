"""The whole import of a tiny clinic: Cliniko sandbox -> staging -> Splose sandbox, through a real instance."""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import datetime

import dagster as dg
import pytest
import requests

from cliniko_assets.attention import ADJUSTED_LABELS
from cliniko_assets.definitions import defs
from cliniko_assets.rows import ROWS, TABLE
from cliniko_assets.sensors import import_requests, run_config_for
from cliniko_assets.transforms.salvage import ZERO_MINUTES
from sandbox.clinic_setup import import_mapping, workspace_seed
from sandbox.harness import running_server
from splose_resources.notifier import NotifierResource
from tests.conftest import materializations, other_account, splose_from_env

TOKEN = "platform-" + secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def splose_sandbox(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("splose-sandbox")
    args = ["--platform-token", TOKEN, "--db", str(workdir / "splose.db"), "--record-v1", str(workdir / "v1.ndjson")]
    with running_server("sandbox.splose", args, log_dir=workdir) as server:
        yield server


class Import:
    """A tiny clinic's Splose workspace, its import request, and runs of the import job."""

    def __init__(self, clinic, splose_url: str, tmp_path, monkeypatch) -> None:
        self.clinic = clinic
        self.url = splose_url
        monkeypatch.setenv("SPLOSE_API_URL", f"{splose_url}/v1")
        monkeypatch.setenv("SPLOSE_PLATFORM_TOKEN", TOKEN)
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
        monkeypatch.delenv(f"CLINIKO_API_KEY__{clinic.tenant.upper().replace('-', '_')}")
        seeded = requests.post(
            f"{splose_url}/_sandbox/workspaces", json=workspace_seed(clinic.admin, clinic.account, clinic.tenant)
        )
        seeded.raise_for_status()
        self.workspace = seeded.json()
        self.mapping = import_mapping(clinic.admin, clinic.account, self.workspace)
        self.outbox = tmp_path / "outbox"

    def submit(self, mapping: dict | None = None) -> dict:
        response = requests.post(
            f"{self.url}/v1/imports",
            headers={"Authorization": f"Bearer {self.workspace['key']}"},
            json={"source": "cliniko", "clinikoApiKey": self.clinic.keys["admin"], "mapping": mapping or self.mapping},
        )
        response.raise_for_status()
        return response.json()

    def run(self, instance, request: dict, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return defs.resolve_job_def("import_job").execute_in_process(
            instance=instance,
            partition_key=self.clinic.tenant,
            run_config=run_config_for(request),
            resources={"staging": self.clinic.staging, "notifier": NotifierResource(outbox=str(self.outbox))},
            raise_on_error=raise_on_error,
        )

    def dump(self, table: str) -> list[dict]:
        response = requests.get(f"{self.url}/_sandbox/workspaces/{self.clinic.tenant}/dump/{table}")
        response.raise_for_status()
        return response.json()["data"]

    def status(self, import_id: int) -> dict:
        with splose_from_env().imports() as imports:
            return imports.get_import(import_id)


@pytest.fixture
def tiny_import(clinic, splose_sandbox, tmp_path, monkeypatch) -> Import:
    return Import(clinic, splose_sandbox.url, tmp_path, monkeypatch)


def purge_deleted_imports(instance, staging) -> dg.ExecuteInProcessResult:
    """One run of the scheduled purge job, as the schedule launches it."""
    return defs.resolve_job_def("purge_deleted_imports_job").execute_in_process(
        instance=instance, resources={"staging": staging}
    )


def _rows(result) -> dict[str, dict]:
    """Each row's metadata, a row's parts (the clients found by id) added to it as the import report adds them."""
    found = materializations(result)
    rows = {name: found[name] for name in ROWS if name in found}
    for part in (row for row in TABLE if row.part_of and row.part_of in rows and row.name in found):
        whole, extra = dict(rows[part.part_of]), found[part.name]
        for key in ("cliniko", "loaded", "created", "updated", "unchanged", "skipped", "rejected", "unaccounted"):
            whole[key] += extra[key]
        whole["skipped_by_reason"] = dict(Counter(whole["skipped_by_reason"]) + Counter(extra["skipped_by_reason"]))
        rows[part.part_of] = whole
    group = found["group_appointments"]
    rows["attendees"] = {k.removeprefix("attendees_"): v for k, v in group.items() if k.startswith("attendees_")}
    return rows


def _minutes(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() / 60


def _assert_other_answers(tiny_import: Import) -> None:
    """Notes whose checkboxes were answered "other": a few words become the option "Other: <words>"; words an
    option cannot hold (255) go whole in the question's answer, the option saying "Other"."""
    notes = {n["externalId"]: n["data"] for n in tiny_import.dump("progressNotes")}
    found, right = Counter(), Counter()
    for nid, note in tiny_import.clinic.export("treatment_notes").items():
        if nid not in notes:
            continue
        for section, sent in zip(note["content"]["sections"], notes[nid]["sections"], strict=True):
            for question, imported in zip(section["questions"], sent["questions"], strict=True):
                other = (question.get("other") or {}).get("value")
                if not other:
                    continue
                written, last = "Other: " + other, imported["options"][-1]
                kind = "short" if len(written) <= 255 else "long"
                found[kind] += 1
                if kind == "short":
                    right[kind] += last == {"value": written, "selected": True} and imported["answer"] is None
                else:
                    right[kind] += last == {"value": "Other", "selected": True} and imported["answer"] == written
    assert found["short"] >= 1 and found["long"] >= 1 and right == found, (dict(found), dict(right))


def test_the_sensor_turns_a_submitted_request_into_a_tenant_run(tiny_import, instance):
    request = tiny_import.submit()
    result = import_requests(dg.build_sensor_context(instance=instance, resources={"splose": splose_from_env()}))
    (run_request,) = [r for r in result.run_requests if r.tags["splose/import_id"] == str(request["id"])]
    assert run_request.partition_key == tiny_import.clinic.tenant
    assert run_request.run_config == run_config_for(request)
    assert tiny_import.clinic.keys["admin"] not in repr(run_request)
    # Only the run itself marks the import running, once it has started.
    assert tiny_import.status(request["id"])["status"] == "submitted"


def test_a_tiny_clinic_imports_end_to_end_and_every_record_is_accounted_for(tiny_import, instance):
    request = tiny_import.submit()
    result = tiny_import.run(instance, request)

    assert result.success
    rows = _rows(result)
    assert set(rows) == set(ROWS)
    for name, row in rows.items():
        assert row["unaccounted"] == 0, name
        assert row["cliniko"] == row["loaded"] + row["skipped"] + row["rejected"], name
    truth = tiny_import.clinic.truth()
    live_patients = sum(n for state, n in truth["patients"].items() if state != "deleted")
    assert rows["clients"]["loaded"] == live_patients
    assert rows["clients"]["skipped_by_reason"] == {"deleted in Cliniko": truth["patients"].get("deleted", 0)}
    assert rows["contacts"]["loaded"] == sum(truth["contacts"].values())
    live_notes = sum(n for state, n in truth["treatment_notes"].items() if state != "deleted")
    assert rows["progress_notes"]["loaded"] == live_notes
    checks = {
        (e.event_specific_data.asset_key.path[-1], e.event_specific_data.check_name): e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert all(check.passed for check in checks.values())
    assert ("files", "checksums_match") in checks
    integrity = checks[("import_report", "referential_integrity")].metadata
    assert (
        integrity["appointments_read_back"].value
        == rows["appointments"]["loaded"] + rows["group_appointments"]["loaded"]
    )
    assert integrity["incomplete_groups"].value == 0

    # What Splose now holds.
    # Assertions compare counts and ids only, so a failure never prints patient data.
    clients = tiny_import.dump("clients")
    assert len(clients) == live_patients
    assert len({c["externalId"] for c in clients}) == len(clients)
    client_ids = {c["id"] for c in clients}
    appointments = tiny_import.dump("appointments")
    assert len(appointments) == rows["appointments"]["loaded"] + rows["group_appointments"]["loaded"]
    dangling = sum(
        entry["patientId"] not in client_ids for a in appointments for entry in a["data"]["appointmentPatients"]
    )
    assert dangling == 0
    # Every repeat of a series points at its series' first appointment, whenever that one was imported.
    by_external = {a["externalId"]: a["id"] for a in appointments}
    series = {
        rid: record["repeated_from"]["links"]["self"].rsplit("/", 1)[-1]
        for rid, record in tiny_import.clinic.export("individual_appointments").items()
        if record.get("repeated_from") and rid in by_external
    }
    expected = {rid: by_external[head] for rid, head in series.items() if head != rid and head in by_external}
    assert expected  # the clinic has series
    repeat_of = {a["externalId"]: a["data"].get("repeatOfId") for a in appointments}
    assert {rid: repeat_of[rid] for rid in expected} == expected
    unlinked = materializations(result)["appointments"]["repeats_without_their_first_appointment"]
    assert unlinked == sum(1 for rid, head in series.items() if head != rid and head not in by_external)
    # So does a repeated group appointment (one repeats a group deleted in Cliniko: it comes alone, not rejected).
    group_series = {
        rid: record["repeated_from"]["links"]["self"].rsplit("/", 1)[-1]
        for rid, record in tiny_import.clinic.export("group_appointments").items()
        if record.get("repeated_from")
    }
    assert len(group_series) == 2 and sum(head not in by_external for head in group_series.values()) == 1
    assert rows["group_appointments"]["rejected"] == 0
    assert {rid: repeat_of[rid] for rid in group_series} == {
        rid: by_external.get(head) for rid, head in group_series.items()
    }
    assert materializations(result)["group_appointments"]["repeats_without_their_first_appointment"] == 1
    # Shapes real accounts hold that Splose takes only as adapted, each imported whole (lengths and flags only).
    individual = tiny_import.clinic.export("individual_appointments")
    instant = [rid for rid, record in individual.items() if record["ends_at"] == record["starts_at"]]
    assert instant and all(rid in by_external for rid in instant)  # 0 minutes: every one imported
    splose_times = {a["externalId"]: (a["data"]["start"], a["data"]["end"]) for a in appointments}
    assert {rid: _minutes(*splose_times[rid]) for rid in instant} == {rid: 1 for rid in instant}
    patients = tiny_import.clinic.export("patients")
    long_address = [pid for pid, p in patients.items() if len(p.get("address_2") or "") > 255]
    assert len(long_address) == 1 and rows["clients"]["fields_cut_to_fit"] == 1
    (client,) = [c for c in clients if c["externalId"] in long_address]
    kept_whole = patients[long_address[0]]["address_2"] in client["data"]["extraInfo"]  # a flag: no text shown
    assert len(client["data"]["addressL2"]) == 255 and kept_whole
    _assert_other_answers(tiny_import)
    exported = tiny_import.clinic.export("patient_attachments")
    files = tiny_import.dump("files")
    assert len(files) == rows["files"]["loaded"]
    assert sum(f["data"]["sha256"] != exported[f["externalId"]]["_sha256"] for f in files) == 0
    status = tiny_import.status(request["id"])
    assert status["status"] == "complete"
    said = status["message"].splitlines()  # the 0-minute ones on a line of their own, not as a field left out
    row = "Individual appointments -> Appointments"
    assert f"{row}: {len(instant)} {ADJUSTED_LABELS[ZERO_MINUTES]}" in said
    assert not any(line.startswith(f"{row}: loaded without") and "zero_minutes" in line for line in said)
    (email,) = tiny_import.outbox.iterdir()
    assert "complete" in email.read_text()


def test_records_cliniko_will_not_list_on_an_account_make_the_import_complete_with_warnings_naming_them(
    clinic, splose_sandbox, instance, tmp_path, monkeypatch
):
    """An account that refuses undocumented filters (400) and has no /deleted routes (404): archived contacts
    cannot be listed, deleted patients and templates cannot be detected. The import completes, and says so."""
    hides = other_account(clinic, instance, monkeypatch, "hides", documented_filters=True, no_older_routes=True)
    imported = Import(hides, splose_sandbox.url, tmp_path, monkeypatch)
    request = imported.submit()
    result = imported.run(instance, request)

    assert result.success
    status = imported.status(request["id"])
    assert status["status"] == "complete"
    lines = status["message"].splitlines()
    assert lines[0] == "Complete with warnings: 3 item(s) need attention."
    assert (
        "- contacts: archived records cannot be listed: /contacts refused q[]=archived_at:* (400) and Cliniko has "
        "no older route for them, so those records, or those changes to them, are not brought across (make them "
        "in Splose by hand, and ask Cliniko support how this account lists them)"
    ) in lines
    for resource in ("patients", "treatment_note_templates"):
        assert any(
            line.startswith(f"- {resource}: deletions in Cliniko cannot be detected: /{resource}/deleted is absent")
            for line in lines
        ), resource
    report = materializations(result)["import_report"]
    assert report["warnings"] == 3 and len(report["not_detected"]) == 3
    assert hides.keys["admin"] not in status["message"]


def test_attendees_of_individual_appointments_as_real_accounts_list_them_change_no_row_but_their_own(
    clinic, splose_sandbox, instance, tmp_path, monkeypatch
):
    """A real account's /attendees holds one attendee per individual appointment too. Each is the appointment's
    own patient, imported with the appointment: the import is the same clinic's, row for row, but for those
    attendees, counted and skipped as expected."""
    rows = {}
    for name, account in (
        ("plain", other_account(clinic, instance, monkeypatch, "plain", individual_attendees=False)),
        ("attended", clinic),  # as real accounts (and the sandbox's by default)
    ):
        imported = Import(account, splose_sandbox.url, tmp_path / name, monkeypatch)
        request = imported.submit()
        result = imported.run(instance, request)
        assert result.success, name
        status = imported.status(request["id"])
        assert status["status"] == "complete" and status["message"].startswith("Complete"), name
        assert "warning" not in status["message"].lower(), name
        rows[name] = _rows(result)
    individual = len(clinic.export("individual_appointments"))
    plain, attended = rows["plain"], rows["attended"]
    for row in set(plain) - {"attendees"}:
        keys = ("cliniko", "loaded", "skipped", "rejected", "skipped_by_reason")
        assert {k: attended[row][k] for k in keys} == {k: plain[row][k] for k in keys}, row
    assert attended["attendees"]["cliniko"] == plain["attendees"]["cliniko"] + individual
    assert attended["attendees"]["loaded"] == plain["attendees"]["loaded"]
    assert attended["attendees"]["skipped_by_reason"] == {
        **plain["attendees"]["skipped_by_reason"],
        "booking is not a group appointment": individual,
    }
    assert attended["attendees"]["unaccounted"] == 0


def test_running_the_graph_again_creates_and_changes_nothing(tiny_import, instance):
    request = tiny_import.submit()
    first = _rows(tiny_import.run(instance, request))
    before = {table: len(tiny_import.dump(table)) for table in ("clients", "appointments", "progressNotes", "files")}

    second = _rows(tiny_import.run(instance, request))

    for name, row in second.items():
        assert (row["created"], row["updated"]) == (0, 0), name
        assert row["loaded"] == first[name]["loaded"], name
    after = {table: len(tiny_import.dump(table)) for table in before}
    assert after == before


def test_an_attachment_cliniko_was_still_processing_is_imported_once_processed_though_its_stamp_stays(
    tiny_import, instance
):
    """Cliniko's docs show an attachment just uploaded with ``processing_completed: false`` and its file fields
    null, and say to poll it until it is processed; they do not say processing moves ``updated_at``. Such an
    attachment is skipped with its reason while Cliniko processes it, asked for by id at the next sync, and
    imported with its bytes once processed. This one was uploaded two hours before the first sync and processed
    after it, its stamp left as it was: the re-sync's listing (from an hour before the first sync began) does
    not return it."""
    clinic = tiny_import.clinic
    processing = {"processing_completed": False, "content_type": None, "filename": None, "size": None}
    ops = [{"op": "create", "resource": "patient_attachments", "fields": processing}]
    created = clinic.admin.mutate(clinic.account, ops=ops, stamped_seconds_ago=7200)["changed"]
    (rid,) = created["patient_attachments"]["created"]
    request = tiny_import.submit()

    first = tiny_import.run(instance, request)
    clinic.admin.mutate(clinic.account, ops=[{"op": "process", "resource": "patient_attachments", "id": rid}])
    second = tiny_import.run(instance, request)

    before, after = materializations(first), materializations(second)
    assert before["patient_attachments"]["files_waiting_for_processing"] == 1
    assert before["files"]["skipped_by_reason"].get("not yet processed by Cliniko") == 1
    assert after["patient_attachments"]["mode"] == "incremental"
    attachments = after["patient_attachments"]
    assert (attachments["fetched"], attachments["files_processed_since_listed"]) == (0, 1)  # not listed again
    assert (attachments["files_waiting_for_processing"], attachments["files_downloaded"]) == (0, 1)
    assert (after["files"]["created"], after["files"]["unaccounted"]) == (1, 0)
    assert "not yet processed by Cliniko" not in after["files"]["skipped_by_reason"]
    exported = clinic.export("patient_attachments")[rid]
    (imported,) = [f for f in tiny_import.dump("files") if f["externalId"] == rid]
    assert (imported["data"]["sha256"], exported["processing_completed"]) == (exported["_sha256"], True)
    staged_state, staged = clinic.staged_records("patient_attachments")[rid]
    assert (staged["processing_completed"], staged["size"], staged_state) == (True, exported["size"], "active")


def test_an_incomplete_mapping_fails_before_any_write_listing_every_item(tiny_import, instance):
    mapping = {kind: dict(entries) for kind, entries in tiny_import.mapping.items()}
    practitioners = tiny_import.clinic.export("practitioners")
    # One Cliniko lists (an unlisted one, found by id only, is left unresolved rather than failing the check).
    unmapped_practitioner = min(p for p in mapping["practitioners"] if not practitioners[p].get("_unlisted"))
    del mapping["practitioners"][unmapped_practitioner]
    business = next(b for b, target in mapping["locations"].items() if target != "ignore")
    del mapping["locations"][business]
    request = tiny_import.submit(mapping)

    result = tiny_import.run(instance, request, raise_on_error=False)

    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "splose__mapping_check"  # the first Splose step: before contacts and clients
    message = failure.event_specific_data.error.message
    assert f"Cliniko id {unmapped_practitioner}" in message and f"Cliniko id {business}" in message
    # A person is named by id alone: a practitioner's name is personal data.
    person = practitioners[unmapped_practitioner]
    assert person["first_name"] and person["first_name"] not in message and person["last_name"] not in message
    assert "Nothing was written" in message and "run config" in message
    assert Counter(
        (e.event_specific_data.materialization.asset_key.path[0])
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    ) == Counter({"cliniko": 14})  # all but the attachments (their downloads wait for the mapping) and the
    # records found by id
    assert len(tiny_import.dump("clients")) == 0
    assert len(tiny_import.dump("services")) == len(tiny_import.workspace["services"])

    # The failure sensor marks the request failed with the reason and tells the clinic.
    from cliniko_assets.sensors import import_failed

    run = instance.get_run_by_id(result.run_id)
    run_failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    import_failed(
        dg.build_run_status_sensor_context(
            sensor_name="import_failed",
            dagster_event=run_failure,
            dagster_instance=instance,
            dagster_run=run,
            resources={"splose": splose_from_env(), "notifier": NotifierResource(outbox=str(tiny_import.outbox))},
        ).for_run_failure()
    )
    status = tiny_import.status(request["id"])
    assert status["status"] == "failed" and f"Cliniko id {business}" in status["message"]
    (email,) = tiny_import.outbox.iterdir()
    assert "needs attention" in email.read_text()


def test_the_nightly_resync_repeats_each_clinics_last_import_and_writes_nothing_new(tiny_import, instance):
    from datetime import datetime

    from cliniko_assets.schedules import nightly_resync

    request = tiny_import.submit()
    tiny_import.run(instance, request)
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 11, 24, 2), resources={"splose": splose_from_env()}
    )

    (run_request,) = list(nightly_resync(context))

    assert run_request.partition_key == tiny_import.clinic.tenant
    assert run_request.run_config["resources"] == run_config_for(request)["resources"]
    resync = defs.resolve_job_def("import_job").execute_in_process(
        instance=instance,
        partition_key=run_request.partition_key,
        run_config=run_request.run_config,
        resources={"staging": tiny_import.clinic.staging, "notifier": NotifierResource(outbox=str(tiny_import.outbox))},
    )
    rows = _rows(resync)
    assert all((row["created"], row["updated"]) == (0, 0) for row in rows.values())
    extracted = materializations(resync)
    assert {extracted[name]["mode"] for name in ("patients", "individual_appointments")} == {"incremental"}


def test_no_key_token_patient_name_or_birth_date_in_anything_an_import_recorded(tiny_import, instance, capfd):
    from dagster._serdes import serialize_value

    request = tiny_import.submit()
    assert tiny_import.run(instance, request).success
    recorded = []
    for run in instance.get_runs():
        recorded.append(serialize_value(run))
        recorded.extend(serialize_value(entry) for entry in instance.all_logs(run.run_id))
    out, err = capfd.readouterr()
    emails = [path.read_text() for path in tiny_import.outbox.iterdir()]
    everything = "\n".join([*recorded, out, err, *emails])

    assert TOKEN not in everything, "the platform token was logged or recorded"
    assert tiny_import.clinic.keys["admin"] not in everything, "the Cliniko key was logged or recorded"
    patients = list(tiny_import.clinic.admin.export(tiny_import.clinic.account, "patients"))
    names = {p[f] for p in patients for f in ("first_name", "last_name") if len(p.get(f) or "") >= 4}
    births = {p["date_of_birth"] for p in patients if p.get("date_of_birth") and p["date_of_birth"] < "2010"}
    assert len(names) > 20 and len(births) > 10
    leaked = (sum(name in everything for name in names), sum(birth in everything for birth in births))
    assert leaked == (0, 0), "patient data reached logs, metadata or the email (counts only shown)"
    assert len(everything) > 10_000


def test_deleting_an_import_in_splose_purges_its_staged_data(tiny_import, instance):
    request = tiny_import.submit()
    assert tiny_import.run(instance, request).success
    assert tiny_import.clinic.staging.has_tenant(tiny_import.clinic.tenant)
    with splose_from_env().imports() as imports:
        imports.delete_import(request["id"])

    result = purge_deleted_imports(instance, tiny_import.clinic.staging)

    assert result.success
    (output,) = [e.event_specific_data.metadata for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output["tenants_purged"].value == [tiny_import.clinic.tenant]
    logged = [e.message for e in instance.all_logs(result.run_id) if e.message]
    assert f"Purged the staged data of tenant '{tiny_import.clinic.tenant}'" in "\n".join(logged)
    assert not tiny_import.clinic.staging.has_tenant(tiny_import.clinic.tenant)
    assert len(tiny_import.dump("clients")) == 0  # Splose's undo removed what the import created
