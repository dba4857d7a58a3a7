"""The import request's life: its status machine, one active import per workspace, the undo deadline, the cascade."""

from __future__ import annotations

import io
import time

import pytest

APPOINTMENT = {"start": "2024-07-01T00:00:00Z", "end": "2024-07-01T01:00:00Z"}


def conflict(response, *words: str) -> str:
    assert response.status_code == 409, response.text
    message = response.json()["message"]
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ([], ["complete", "failed", "submitted", "deleted"]),
        (["running"], ["submitted", "deleted"]),
        (["running", "complete"], ["failed", "submitted", "deleted"]),
        (["running", "failed"], ["complete", "submitted", "deleted"]),
    ],
)
def test_a_patch_off_the_status_machine_is_409_naming_both_statuses(workspace, path, refused):
    imp = workspace.start_import()
    for status in path:
        assert workspace.patch(imp["id"], status=status).status_code == 200
    current = path[-1] if path else "submitted"
    for status in refused:
        conflict(workspace.patch(imp["id"], status=status, message="nope"), repr(current), repr(status))
    after = workspace.platform.get(f"{workspace.splose.url}/v1/imports/{imp['id']}", timeout=5).json()
    assert (after["status"], after["message"]) == (current, None)


def test_retries_and_resyncs_follow_the_machine_and_completed_at_never_moves(workspace):
    imp = workspace.start_import()
    assert workspace.patch(imp["id"], status="running").json()["status"] == "running"
    progress = workspace.patch(imp["id"], status="running", counts={"clients": 5}).json()
    assert (progress["status"], progress["counts"], progress["completedAt"]) == ("running", {"clients": 5}, None)
    assert workspace.patch(imp["id"], status="failed", message="Cliniko was down").json()["status"] == "failed"
    assert workspace.patch(imp["id"], status="running").json()["status"] == "running"  # a retry
    first = workspace.patch(imp["id"], status="complete").json()
    assert first["completedAt"] is not None
    assert first["deleteDeadline"] > first["completedAt"]
    time.sleep(0.01)
    repeated = workspace.patch(imp["id"], status="complete", message="retried").json()  # a lost answer, retried
    assert (repeated["status"], repeated["message"]) == ("complete", "retried")
    assert workspace.patch(imp["id"], status="running").json()["status"] == "running"  # a re-sync
    resynced = workspace.patch(imp["id"], status="complete").json()
    assert (resynced["completedAt"], resynced["deleteDeadline"]) == (first["completedAt"], first["deleteDeadline"])
    assert repeated["completedAt"] == first["completedAt"]


def test_a_deleted_import_is_final(workspace):
    imp = workspace.start_import()
    workspace.upsert(imp["id"], "clients", [{"externalId": "1", "firstname": "Jo", "lastname": "Doe"}])
    deleted = workspace.delete(imp["id"])
    assert deleted.status_code == 200
    assert deleted.json()["status"] == "deleted"
    for status in ("running", "complete", "failed", "submitted", "deleted"):
        conflict(workspace.patch(imp["id"], status=status), "'deleted'", repr(status))
    conflict(workspace.patch(imp["id"], message="still here?"), "'deleted'")
    conflict(workspace.delete(imp["id"]), "already 'deleted'")
    conflict(workspace.put(imp["id"], "clients", []), "deleted")
    assert workspace.dump("clients") == []
    assert workspace.dump("imports")[0]["status"] == "deleted"


def test_one_active_import_per_workspace(splose, workspace):
    first = workspace.start_import()
    request = {"source": "cliniko", "clinikoApiKey": "x" * 30, "mapping": {}, "include": []}
    url = f"{splose.url}/v1/imports"
    conflict(workspace.platform.post(url, json=request, timeout=5), f"Import {first['id']}", "'submitted'")
    conflict(workspace.v1.post(url, json=request, timeout=5), f"Import {first['id']}")
    other = splose.seed()
    assert other.platform.post(url, json=request, timeout=5).status_code == 201  # another workspace is free
    workspace.patch(first["id"], status="running")
    conflict(workspace.platform.post(url, json=request, timeout=5), f"Import {first['id']}", "'running'")
    workspace.patch(first["id"], status="failed")

    second = workspace.platform.post(url, json=request, timeout=5)
    assert second.status_code == 201
    second_id = second.json()["id"]
    conflict(workspace.patch(first["id"], status="running"), f"Import {second_id}", "'submitted'")  # no retry now
    workspace.finish(second_id)
    assert workspace.patch(first["id"], status="running").status_code == 200  # the retry, once the other is done
    conflict(workspace.patch(second_id, status="running"), f"Import {first['id']}")  # nor a re-sync meanwhile
    assert [row["status"] for row in workspace.dump("imports")] == ["running", "complete"]


def test_the_undo_deadline_cannot_be_moved_and_a_late_delete_deletes_nothing(start_splose):
    with start_splose("--delete-window-hours", str(1.0 / 3600)) as splose:
        workspace = splose.seed()
        imp = workspace.start_import()
        workspace.upsert(imp["id"], "clients", [{"externalId": "1", "firstname": "Jo", "lastname": "Doe"}])
        first = workspace.finish(imp["id"])
        time.sleep(1.2)
        workspace.patch(imp["id"], status="running")  # a re-sync after the deadline ...
        again = workspace.patch(imp["id"], status="complete").json()  # ... completes again
        assert (again["completedAt"], again["deleteDeadline"]) == (first["completedAt"], first["deleteDeadline"])
        conflict(workspace.patch(imp["id"], status="deleted"), "DELETE")
        conflict(workspace.delete(imp["id"]), first["deleteDeadline"], "nothing was deleted")
        assert workspace.dump("imports")[0]["status"] == "complete"
        assert [row["externalId"] for row in workspace.dump("clients")] == ["1"]


def test_delete_cascades_to_records_of_other_imports_that_refer_to_what_it_deleted(workspace):
    main = workspace.location("Main Street")
    first = workspace.start_import()
    workspace.upsert(first["id"], "contacts", [{"externalId": "gp", "firstName": "Greta"}])
    workspace.upsert(
        first["id"],
        "clients",
        [
            {"externalId": "1", "firstname": "Jo", "lastname": "Doe", "referringContactExternalId": "gp"},
            {"externalId": "2", "firstname": "Al", "lastname": "Ive"},
        ],
    )
    workspace.finish(first["id"])

    resync = workspace.start_import()
    workspace.upsert(resync["id"], "clients", [{"externalId": "3", "firstname": "Cy", "lastname": "New"}])
    visit = {**APPOINTMENT, "locationId": main}
    workspace.upsert(
        resync["id"],
        "appointments",
        [
            {**visit, "externalId": "a1", "appointmentPatients": [{"externalId": "a1", "clientExternalId": "1"}]},
            {
                **visit,
                "externalId": "a2",
                "repeatOfExternalId": "a1",
                "appointmentPatients": [{"externalId": "a2", "clientExternalId": "3"}],
            },
            {**visit, "externalId": "a3", "appointmentPatients": [{"externalId": "a3", "clientExternalId": "3"}]},
        ],
    )
    note = {"status": "draft", "sections": []}
    workspace.upsert(
        resync["id"],
        "progressNotes",
        [
            {**note, "externalId": "n1", "clientExternalId": "3", "appointmentExternalId": "a2"},
            {**note, "externalId": "n2", "clientExternalId": "3", "appointmentExternalId": "a3"},
        ],
    )
    uploaded = workspace.platform.post(
        f"{workspace.splose.url}/v1/imports/{resync['id']}/files",
        data={"externalId": "f1", "clientExternalId": "1"},
        files={"file": ("scan.pdf", io.BytesIO(b"%PDF"), "application/pdf")},
        timeout=10,
    )
    assert uploaded.status_code == 200, uploaded.text
    workspace.finish(resync["id"])

    deleted = workspace.delete(first["id"])

    assert deleted.status_code == 200, deleted.text
    # a1 is client 1's appointment, a2 repeats a1, n1 is a2's note, f1 is client 1's file.
    assert deleted.json()["cascadedRecords"] == {"appointments": 2, "progressNotes": 1, "files": 1}
    assert deleted.json()["deletedRecords"] == {
        "contacts": 1,
        "clients": 2,
        "appointments": 2,
        "progressNotes": 1,
        "files": 1,
    }
    assert [row["externalId"] for row in workspace.dump("clients")] == ["3"]
    assert [row["externalId"] for row in workspace.dump("appointments")] == ["a3"]
    assert [row["externalId"] for row in workspace.dump("progressNotes")] == ["n2"]
    assert workspace.dump("files") == []
    assert list((workspace.splose.db.parent / "splose-files" / workspace.id).iterdir()) == []
    live = {row["id"] for table in ("clients", "appointments") for row in workspace.dump(table)}
    note_refs = {row["data"]["appointmentId"] for row in workspace.dump("progressNotes")}
    appointments = workspace.dump("appointments")
    patient_refs = {p["patientId"] for row in appointments for p in row["data"]["appointmentPatients"]}
    assert note_refs | patient_refs <= live


def test_delete_keeps_a_record_made_through_v1_and_clears_its_reference_to_what_it_deleted(workspace):
    url = f"{workspace.splose.url}/v1"
    imp = workspace.start_import()
    workspace.upsert(imp["id"], "contacts", [{"externalId": "gp", "firstName": "Greta"}])
    workspace.finish(imp["id"])
    gp = workspace.dump("contacts")[0]["id"]
    walk_in = {"firstname": "Walk", "lastname": "In", "invoiceRecipientId": gp}  # the clinic's own, billed to gp
    created = workspace.v1.post(f"{url}/patients", json=walk_in, timeout=5)
    assert created.status_code == 200, created.text
    other = workspace.v1.post(f"{url}/patients", json={"firstname": "Al", "lastname": "Ive"}, timeout=5).json()
    time.sleep(0.01)  # updatedAt has millisecond resolution: the undo's change is stamped after both creates

    deleted = workspace.delete(imp["id"])

    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deletedRecords"] == {"contacts": 1}
    assert deleted.json()["cascadedRecords"] == {}
    assert deleted.json()["clearedReferences"] == {"clients": 1}
    kept = workspace.v1.get(f"{url}/patients/{created.json()['id']}", timeout=5)
    assert kept.status_code == 200, kept.text
    assert (kept.json()["firstname"], kept.json()["invoiceRecipientId"]) == ("Walk", None)
    changed = workspace.v1.get(f"{url}/patients", params={"update_gt": other["updatedAt"]}, timeout=5)
    assert [row["id"] for row in changed.json()["data"]] == [created.json()["id"]]
    assert workspace.v1.get(f"{url}/patients/{other['id']}", timeout=5).json() == other
    assert workspace.dump("contacts") == []
    history = {row["id"]: row["history"] for row in workspace.dump("clients")}
    assert [(entry["importId"], entry["action"]) for entry in history[created.json()["id"]]] == [
        (imp["id"], "referenceCleared")
    ]
