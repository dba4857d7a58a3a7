"""Removing imported records by external id (``POST /v1/imports/{id}/records/{entity}/remove``), on the real
Splose sandbox over loopback, through the client where a pipeline would call it."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import requests

from splose_resources.splose import RejectedRecord, SploseConflict, SploseImportClient, SploseResource, UpsertedRecord
from tests.splose_sandbox.conftest import (  # noqa: F401 (fixtures)
    PLATFORM_TOKEN,
    Workspace,
    record_dir,
    splose,
    start_splose,
    workspace,
)

REMOVE_ROUTE = "POST /v1/imports/{id}/records/{entity}/remove"
VISIT = {"start": "2024-07-01T00:00:00Z", "end": "2024-07-01T01:00:00Z"}


@pytest.fixture
def client(splose, workspace, tmp_path) -> Iterator[SploseImportClient]:
    resource = SploseResource(
        api_url=f"{splose.url}/v1", platform_token=PLATFORM_TOKEN, rate_limit_state_dir=str(tmp_path / "limits")
    )
    with resource.imports(workspace_id=workspace.id) as imports:
        yield imports


def clients(*external_ids: str) -> list[dict]:
    return [
        {"externalId": external_id, "firstname": "Jo", "lastname": f"Doe{external_id}"} for external_id in external_ids
    ]


def appointment(workspace: Workspace, external_id: str, *client_ids: str, **fields: object) -> dict:
    patients = [{"externalId": f"{external_id}-{client_id}", "clientExternalId": client_id} for client_id in client_ids]
    place = {"locationId": workspace.location("Main Street")}
    return {**VISIT, **place, "externalId": external_id, "appointmentPatients": patients, **fields}


def load(workspace: Workspace, import_id: int, entity: str, records: list[dict]) -> dict[str, int]:
    """Upsert ``records``, every one accepted; their Splose ids by external id."""
    answer = workspace.upsert(import_id, entity, records)
    assert answer["errors"] == [], answer["errors"]
    return {row["externalId"]: row["id"] for row in answer["results"]}


def note(external_id: str, client_id: str, **fields: object) -> dict:
    return {"externalId": external_id, "clientExternalId": client_id, "status": "draft", "sections": [], **fields}


def post_remove(workspace: Workspace, import_id: int, entity: str, body, session=None) -> requests.Response:
    session = session or workspace.platform
    url = f"{workspace.splose.url}/v1/imports/{import_id}/records/{entity}/remove"
    return session.post(url, json=body, timeout=30)


def removals_counted(workspace: Workspace) -> int:
    return requests.get(f"{workspace.splose.url}/_sandbox/stats", timeout=10).json()["routes"].get(REMOVE_ROUTE, 0)


def external_ids(workspace: Workspace, table: str) -> list[str]:
    return [row["externalId"] for row in workspace.dump(table)]


def test_removed_absent_and_a_repeated_id_whichever_import_made_the_record(workspace, client):
    first = workspace.start_import()
    made = load(workspace, first["id"], "clients", clients("1", "2", "3"))
    workspace.finish(first["id"])
    resync = workspace.start_import()["id"]
    counted = removals_counted(workspace)

    result = client.remove(resync, "clients", ["1", "gone", "1", "2"])

    assert result.removed == [UpsertedRecord("1", made["1"], "removed"), UpsertedRecord("2", made["2"], "removed")]
    assert result.absent == ["gone"]
    assert [error.external_id for error in result.errors] == ["1"]
    assert "appears more than once" in result.errors[0].message
    assert result.batches == 1
    assert removals_counted(workspace) == counted + 1
    assert external_ids(workspace, "clients") == ["3"]
    assert client.crosswalk(resync, "clients") == {"3": made["3"]}
    assert client.counts(resync)["clients"] == 1

    again = client.remove(resync, "clients", ["1"])
    assert (again.removed, again.absent, again.errors) == ([], ["1"], [])
    recreated = workspace.upsert(resync, "clients", clients("1"))["results"]
    assert recreated[0]["action"] == "created"
    assert recreated[0]["id"] not in made.values()
    assert client.crosswalk(resync, "clients") == {"1": recreated[0]["id"], "3": made["3"]}


def test_the_client_sends_batches_of_at_most_the_batch_size(workspace, client):
    imp = workspace.start_import()["id"]
    load(workspace, imp, "clients", clients("1", "2", "3", "4", "5"))
    counted = removals_counted(workspace)

    result = client.remove(imp, "clients", iter(["1", "2", "3", "4", "9"]), batch_size=2)

    assert (result.batches, removals_counted(workspace)) == (3, counted + 3)
    assert [record.external_id for record in result.removed] == ["1", "2", "3", "4"]
    assert result.absent == ["9"]
    assert external_ids(workspace, "clients") == ["5"]
    assert client.remove(imp, "clients", []).batches == 0
    with pytest.raises(ValueError, match="unknown import entity 'patients'"):
        client.remove(imp, "patients", ["5"])


def test_a_client_still_referred_to_stays_with_the_kinds_and_counts_of_its_referrers(workspace, client):
    imp = workspace.start_import()["id"]
    load(workspace, imp, "clients", clients("1", "2"))
    load(
        workspace,
        imp,
        "appointments",
        [
            appointment(workspace, "a1", "1"),
            appointment(workspace, "a2", "1", "2", maxPatients=2),
        ],
    )
    load(workspace, imp, "progressNotes", [note("n1", "2")])

    refused = client.remove(imp, "clients", ["1", "2"])

    assert refused.removed == []
    assert refused.errors == [
        RejectedRecord("1", "still referred to by 2 appointments: remove those first"),
        RejectedRecord("2", "still referred to by 1 appointments and 1 progressNotes: remove those first"),
    ]
    assert external_ids(workspace, "clients") == ["1", "2"]

    assert [r.external_id for r in client.remove(imp, "appointments", ["a1", "a2"]).removed] == ["a1", "a2"]
    partly = client.remove(imp, "clients", ["1", "2"])
    assert [record.external_id for record in partly.removed] == ["1"]
    assert partly.errors == [RejectedRecord("2", "still referred to by 1 progressNotes: remove those first")]
    assert [r.external_id for r in client.remove(imp, "progressNotes", ["n1"]).removed] == ["n1"]
    assert [r.external_id for r in client.remove(imp, "clients", ["2"]).removed] == ["2"]
    assert client.counts(imp) == {entity: 0 for entity in client.counts(imp)}


def test_records_removed_together_may_refer_to_each_other_and_one_kept_keeps_what_it_refers_to(workspace, client):
    imp = workspace.start_import()["id"]
    load(workspace, imp, "clients", clients("1"))
    load(
        workspace,
        imp,
        "appointments",
        [appointment(workspace, "a1", "1"), appointment(workspace, "a2", "1", repeatOfExternalId="a1")],
    )
    load(
        workspace,
        imp,
        "appointments",
        [appointment(workspace, "b1", "1"), appointment(workspace, "b2", "1", repeatOfExternalId="b1")],
    )
    load(workspace, imp, "progressNotes", [note("n", "1", appointmentExternalId="b2")])

    alone = client.remove(imp, "appointments", ["a1"])
    assert alone.errors == [RejectedRecord("a1", "still referred to by 1 appointments: remove those first")]
    together = client.remove(imp, "appointments", ["a2", "a1"])
    assert ([r.external_id for r in together.removed], together.errors) == (["a2", "a1"], [])

    chained = client.remove(imp, "appointments", ["b1", "b2"])  # the note keeps b2, and b2 keeps b1
    assert chained.removed == []
    assert chained.errors == [
        RejectedRecord("b1", "still referred to by 1 appointments: remove those first"),
        RejectedRecord("b2", "still referred to by 1 progressNotes: remove those first"),
    ]
    assert external_ids(workspace, "appointments") == ["b1", "b2"]


def test_a_record_the_clinic_made_through_v1_keeps_what_it_refers_to(workspace, client):
    imp = workspace.start_import()["id"]
    gp = load(workspace, imp, "contacts", [{"externalId": "gp", "firstName": "Greta"}])["gp"]
    walk_in = {"firstname": "Walk", "lastname": "In", "invoiceRecipientId": gp}
    assert workspace.v1.post(f"{workspace.splose.url}/v1/patients", json=walk_in, timeout=5).status_code == 200

    refused = client.remove(imp, "contacts", ["gp"])

    assert refused.errors == [RejectedRecord("gp", "still referred to by 1 clients: remove those first")]
    assert external_ids(workspace, "contacts") == ["gp"]
    assert workspace.dump("clients")[0]["data"]["invoiceRecipientId"] == gp


def test_removing_a_file_removes_its_bytes_and_unblocks_its_client(workspace, client):
    imp = workspace.start_import()["id"]
    load(workspace, imp, "clients", clients("1"))
    uploaded = workspace.platform.post(
        f"{workspace.splose.url}/v1/imports/{imp}/files",
        data={"externalId": "f1", "clientExternalId": "1"},
        files={"file": ("scan.pdf", io.BytesIO(b"%PDF-1.7 scan"), "application/pdf")},
        timeout=10,
    )
    assert uploaded.status_code == 200, uploaded.text
    stored = workspace.splose.db.parent / "splose-files" / workspace.id / str(uploaded.json()["id"])
    assert stored.read_bytes() == b"%PDF-1.7 scan"
    assert client.remove(imp, "clients", ["1"]).errors == [
        RejectedRecord("1", "still referred to by 1 files: remove those first")
    ]

    removed = client.remove(imp, "files", ["f1"])

    assert removed.removed == [UpsertedRecord("f1", uploaded.json()["id"], "removed")]
    assert not stored.exists()
    assert client.crosswalk(imp, "files") == {}
    assert client.counts(imp)["files"] == 0
    assert [r.external_id for r in client.remove(imp, "clients", ["1"]).removed] == ["1"]


def test_another_workspaces_record_with_the_same_external_id_is_untouched(splose, workspace, client):
    other = splose.seed()
    other_import = other.start_import()["id"]
    load(other, other_import, "clients", clients("1"))
    imp = workspace.start_import()["id"]
    load(workspace, imp, "clients", clients("1"))

    assert [r.external_id for r in client.remove(imp, "clients", ["1"]).removed] == ["1"]
    assert external_ids(workspace, "clients") == []
    assert external_ids(other, "clients") == ["1"]
    assert post_remove(workspace, other_import, "clients", {"externalIds": ["1"]}).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "externalIds"),
        ({"externalIds": "1"}, "externalIds"),
        ({"externalIds": []}, "externalIds"),
        ({"externalIds": ["1", 2]}, "externalIds[1]"),
        ({"externalIds": ["1", None]}, "externalIds[1]"),
        ({"externalIds": ["", "1"]}, "externalIds[0]"),
        ({"externalIds": ["1", "\ud800"]}, "externalIds[1]"),
        ({"externalIds": ["1"], "dryRun": True}, "dryRun"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field_and_removes_nothing(workspace, body, field):
    imp = workspace.start_import()["id"]
    load(workspace, imp, "clients", clients("1"))

    response = post_remove(workspace, imp, "clients", body)

    assert response.status_code == 400, response.text
    assert field in response.json()["errors"], response.text
    assert external_ids(workspace, "clients") == ["1"]


def test_a_body_that_is_no_object_too_many_ids_or_an_unknown_entity_is_refused(workspace):
    imp = workspace.start_import()["id"]
    load(workspace, imp, "clients", clients("1"))

    assert post_remove(workspace, imp, "clients", ["1"]).status_code == 400
    too_many = post_remove(workspace, imp, "clients", {"externalIds": ["1", *map(str, range(500))]})
    assert too_many.status_code == 413, too_many.text
    assert "At most 500" in too_many.json()["message"]
    unknown = post_remove(workspace, imp, "patients", {"externalIds": ["1"]})
    assert unknown.status_code == 404
    assert "'patients'" in unknown.json()["message"]
    assert external_ids(workspace, "clients") == ["1"]
    full = post_remove(workspace, imp, "clients", {"externalIds": ["1", *map(str, range(2, 501))]})
    assert full.status_code == 200, full.text
    assert len(full.json()["results"]) == 500
    assert external_ids(workspace, "clients") == []


def test_a_workspace_key_is_refused(workspace):
    imp = workspace.start_import()["id"]
    load(workspace, imp, "clients", clients("1"))

    response = post_remove(workspace, imp, "clients", {"externalIds": ["1"]}, session=workspace.v1)

    assert response.status_code == 403, response.text
    assert external_ids(workspace, "clients") == ["1"]


def test_a_deleted_import_removes_nothing(workspace, client):
    first = workspace.start_import()["id"]
    load(workspace, first, "clients", clients("1"))
    workspace.finish(first)
    resync = workspace.start_import()["id"]
    assert workspace.delete(resync).status_code == 200

    with pytest.raises(SploseConflict, match="deleted"):
        client.remove(resync, "clients", ["1"])
    response = post_remove(workspace, resync, "clients", {"externalIds": ["1"]})
    assert response.status_code == 409, response.text
    assert external_ids(workspace, "clients") == ["1"]
