"""The import API layer: import requests, credentials, bulk upserts, references, crosswalk."""

from __future__ import annotations

import requests

from sandbox.splose.imports import CROSSWALK_PAGE_SIZE
from sandbox.splose.schemas import ENTITY_SCHEMAS
from tests.splose_sandbox.conftest import CLINIKO_KEY


def client(external_id: str, **fields) -> dict:
    return {"externalId": external_id, "firstname": "Jo", "lastname": f"Client{external_id}", **fields}


def test_import_request_lifecycle(splose, workspace):
    main, ann = workspace.location("Main Street"), workspace.practitioner("ann@example.com")
    mapping = {
        "locations": {"11": main, "12": "ignore"},
        "practitioners": {"21": ann},
        "users": {"31": ann},
        "services": {"41": workspace.service("Initial consult"), "42": "create"},
    }
    created = workspace.start_import(mapping=mapping, include=["patients", "appointments"])
    assert created["status"] == "submitted"
    assert created["workspaceId"] == workspace.id
    assert created["shard"] == "au2"
    assert created["mapping"] == mapping
    assert "clinikoApiKey" not in created

    queue = splose.as_platform().get(f"{splose.url}/v1/imports", params={"status": "submitted"}, timeout=5)
    assert created["id"] in [row["id"] for row in queue.json()["data"]]
    assert CLINIKO_KEY not in queue.text

    url = f"{splose.url}/v1/imports/{created['id']}"
    running = workspace.platform.patch(url, json={"status": "running"}, timeout=5).json()
    assert running["status"] == "running"
    assert running["completedAt"] is None
    done = workspace.platform.patch(
        url, json={"status": "complete", "counts": {"clients": 3}, "message": "all done"}, timeout=5
    ).json()
    assert (done["status"], done["counts"], done["message"]) == ("complete", {"clients": 3}, "all done")
    assert done["completedAt"] is not None
    assert done["deleteDeadline"] > done["completedAt"]
    fetched = splose.as_platform().get(url, timeout=5).json()
    assert fetched == done
    assert created["id"] not in [
        row["id"]
        for row in splose.as_platform().get(f"{splose.url}/v1/imports?status=submitted", timeout=5).json()["data"]
    ]
    assert workspace.platform.patch(url, json={"status": "exploded"}, timeout=5).status_code == 422


def test_workspace_key_can_submit_but_not_use_the_import_api(splose, workspace):
    body = {"source": "cliniko", "clinikoApiKey": CLINIKO_KEY, "mapping": {}, "include": []}
    created = workspace.v1.post(f"{splose.url}/v1/imports", json=body, timeout=5)
    assert created.status_code == 201
    import_id = created.json()["id"]
    for method, path in (
        ("GET", "/v1/imports"),
        ("GET", f"/v1/imports/{import_id}"),
        ("GET", f"/v1/imports/{import_id}/credentials"),
        ("PUT", f"/v1/imports/{import_id}/records/clients"),
        ("DELETE", f"/v1/imports/{import_id}"),
    ):
        assert workspace.v1.request(method, f"{splose.url}{path}", json={"records": []}, timeout=5).status_code == 403
    assert requests.get(f"{splose.url}/v1/imports", timeout=5).status_code == 401


def test_credentials_only_for_the_platform_token(splose, workspace):
    created = workspace.start_import(clinikoApiKey="abcdefghijklmnopqrstuvwxyz0123-uk1")
    assert created["shard"] == "uk1"
    url = f"{splose.url}/v1/imports/{created['id']}"
    secret = workspace.platform.get(f"{url}/credentials", timeout=5)
    assert secret.json() == {"clinikoApiKey": "abcdefghijklmnopqrstuvwxyz0123-uk1"}
    for read in (url, f"{splose.url}/v1/imports", f"{splose.url}/_sandbox/workspaces/{workspace.id}/dump/imports"):
        assert "abcdefghijklmnopqrstuvwxyz0123" not in splose.as_platform().get(read, timeout=5).text
    other = splose.seed()
    assert other.platform.get(f"{url}/credentials", timeout=5).status_code == 404


def test_key_without_shard_suffix_is_au1(workspace):
    assert workspace.start_import(clinikoApiKey="abcdefghijklmnopqrstuvwxyz0123")["shard"] == "au1"


def test_malformed_cliniko_key_is_422(splose, workspace):
    for bad in ("", "   ", "short-au1", "has spaces in it but is long enough", "bad/characters!!!!!!!!!!!!", None):
        body = {"source": "cliniko", "clinikoApiKey": bad, "mapping": {}, "include": []}
        response = workspace.platform.post(f"{splose.url}/v1/imports", json=body, timeout=5)
        assert response.status_code == 422, bad
        assert "clinikoApiKey" in response.json()["errors"]


def test_mapping_to_ids_the_workspace_lacks_is_422(splose, workspace):
    body = {
        "source": "cliniko",
        "clinikoApiKey": CLINIKO_KEY,
        "mapping": {"locations": {"1": 999999}, "services": {"2": "ignore"}},
        "include": [],
    }
    response = workspace.platform.post(f"{splose.url}/v1/imports", json=body, timeout=5)
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"mapping.locations.1", "mapping.services.2"}


def test_upsert_reports_created_updated_unchanged(workspace):
    imp = workspace.start_import()
    first = workspace.upsert(imp["id"], "clients", [client("1"), client("2")])
    assert [row["action"] for row in first["results"]] == ["created", "created"]
    again = workspace.upsert(imp["id"], "clients", [client("1"), client("2", email="jo@example.com")])
    assert [(row["action"], row["id"]) for row in again["results"]] == [
        ("unchanged", first["results"][0]["id"]),
        ("updated", first["results"][1]["id"]),
    ]
    workspace.finish(imp["id"])
    later = workspace.start_import()
    rerun = workspace.upsert(later["id"], "clients", [client("1"), client("2", email="jo@example.com")])
    assert [row["action"] for row in rerun["results"]] == ["unchanged", "unchanged"]
    rows = {row["externalId"]: row for row in workspace.dump("clients")}
    assert rows["2"]["importId"] == imp["id"]
    assert [entry["action"] for entry in rows["2"]["history"]] == ["created", "updated"]


def test_invalid_records_are_reported_without_failing_the_batch(workspace):
    imp = workspace.start_import()
    batch = workspace.upsert(
        imp["id"],
        "clients",
        [
            client("ok"),
            {"externalId": "no-last", "firstname": "A"},
            client("bad-sex", privacyPolicy="Maybe"),
            client("bad-date", birthdate="31/12/1990"),
            client("typo", firstName="x"),
            client("ok2", phoneNumbers=[{"type": "Mobile", "code": "+61", "phoneNumber": "400000000"}]),
        ],
    )
    assert [row["externalId"] for row in batch["results"]] == ["ok", "ok2"]
    messages = {row["externalId"]: row["message"] for row in batch["errors"]}
    assert messages["no-last"] == "lastname: required"
    assert "privacyPolicy" in messages["bad-sex"] and "Maybe" in messages["bad-sex"]
    assert "birthdate" in messages["bad-date"]
    assert "firstName" in messages["typo"]


def test_more_than_500_records_is_refused(workspace):
    imp = workspace.start_import()
    response = workspace.put(imp["id"], "clients", [client(str(n)) for n in range(501)])
    assert response.status_code == 413
    assert "500" in response.json()["message"]
    assert len(workspace.upsert(imp["id"], "clients", [client(str(n)) for n in range(500)])["results"]) == 500


def test_unknown_entity_is_404(workspace):
    imp = workspace.start_import()
    assert workspace.put(imp["id"], "invoices", []).status_code == 404


def test_names_and_email_addresses_follow_v1s_rules_per_record(workspace):
    """v1's patient: firstname and lastname at least one character, email an address; contacts' email too."""
    imp = workspace.start_import()
    clients = workspace.upsert(
        imp["id"],
        "clients",
        [
            client("ok", email="jo@example.com"),
            client("no-email", email=None),
            client("empty-first", firstname=""),
            {**client("empty-last"), "lastname": ""},
            client("bad-email", email="not-an-address"),
        ],
    )
    contacts = workspace.upsert(
        imp["id"],
        "contacts",
        [{"externalId": "c-ok", "email": "dr@example.com"}, {"externalId": "c-bad", "email": "dr at example"}],
    )

    assert sorted(row["externalId"] for row in clients["results"]) == ["no-email", "ok"]
    refused = {row["externalId"]: row["message"] for row in clients["errors"]}
    assert sorted(refused) == ["bad-email", "empty-first", "empty-last"]
    assert "firstname" in refused["empty-first"] and "lastname" in refused["empty-last"]
    assert "email" in refused["bad-email"]
    assert [row["externalId"] for row in contacts["results"]] == ["c-ok"]
    assert [row["externalId"] for row in contacts["errors"]] == ["c-bad"]


def test_unresolvable_references_are_rejected_per_record(workspace):
    imp = workspace.start_import()
    main, old = workspace.location("Main Street"), workspace.location("Old Rooms")
    ann = workspace.practitioner("ann@example.com")
    workspace.upsert(imp["id"], "clients", [client("1")])
    base = {
        "start": "2024-07-01T00:00:00Z",
        "end": "2024-07-01T01:00:00Z",
        "serviceId": workspace.service("Initial consult"),
        "locationId": main,
        "practitionerId": ann,
        "appointmentPatients": [{"externalId": "x", "clientExternalId": "1"}],
    }
    batch = workspace.upsert(
        imp["id"],
        "appointments",
        [
            {"externalId": "good", **base},
            {"externalId": "archived-location", **base, "locationId": old},
            {"externalId": "no-location", **base, "locationId": 987654},
            {"externalId": "no-practitioner", **base, "practitionerId": 987654},
            {"externalId": "no-client", **base, "appointmentPatients": [{"externalId": "y", "clientExternalId": "42"}]},
            {"externalId": "no-series", **base, "repeatOfExternalId": "nope"},
        ],
    )
    assert [row["externalId"] for row in batch["results"]] == ["good"]
    messages = {row["externalId"]: row["message"] for row in batch["errors"]}
    assert "archived" in messages["archived-location"]
    assert "locationId: 987654" in messages["no-location"]
    assert "practitionerId: 987654" in messages["no-practitioner"]
    assert "appointmentPatients[0].clientExternalId: '42'" in messages["no-client"]
    assert "repeatOfExternalId: 'nope'" in messages["no-series"]
    other = workspace.splose.seed()
    foreign = workspace.upsert(
        imp["id"],
        "providerNumbers",
        [
            {
                "externalId": "pn",
                "practitionerId": other.practitioner("ann@example.com"),
                "type": "Medicare",
                "number": "1",
            }
        ],
    )
    assert "is not a practitioner of workspace" in foreign["errors"][0]["message"]


def test_imported_rows_are_visible_through_v1(splose, workspace):
    imp = workspace.start_import()
    main, ann = workspace.location("Main Street"), workspace.practitioner("ann@example.com")
    services = workspace.upsert(
        imp["id"], "services", [{"externalId": "at1", "name": "Hydro group", "duration": 50, "maxPatients": 6}]
    )
    hydro = services["results"][0]["id"]
    contacts = workspace.upsert(
        imp["id"], "contacts", [{"externalId": "gp", "type": "Doctor", "firstName": "Greta", "doctorType": "GP"}]
    )
    workspace.upsert(imp["id"], "clients", [client("1", referringContactExternalId="gp"), client("2"), client("3")])
    group = {
        "externalId": "g1",
        "start": "2024-07-01T00:00:00.000Z",
        "end": "2024-07-01T00:50:00Z",
        "serviceId": hydro,
        "locationId": main,
        "practitionerId": ann,
        "maxPatients": 6,
        "note": "bring towels",
        "appointmentPatients": [
            {"externalId": "at-1", "clientExternalId": "1", "status": "Arrived"},
            {"externalId": "at-2", "clientExternalId": "2", "status": "Did not arrive"},
            {
                "externalId": "at-3",
                "clientExternalId": "3",
                "status": "Cancelled",
                "cancellationReason": "Feeling unwell",
                "cancellationNote": "called at 8am",
                "statusUpdatedAt": "2024-06-30T22:00:00Z",
            },
        ],
    }
    appointment_id = workspace.upsert(imp["id"], "appointments", [group])["results"][0]["id"]
    workspace.upsert(
        imp["id"],
        "providerNumbers",
        [{"externalId": "rn1", "practitionerId": ann, "locationId": main, "type": "DVA", "number": "D123"}],
    )

    appointment = workspace.v1.get(f"{splose.url}/v1/appointments/{appointment_id}", timeout=5).json()
    assert appointment["maxPatients"] == 6
    assert appointment["note"] == "bring towels"
    assert appointment["start"] == "2024-07-01T00:00:00.000Z"
    assert [(p["status"], p["cancellationReason"]) for p in appointment["appointmentPatients"]] == [
        ("Arrived", None),
        ("Did not arrive", None),
        ("Cancelled", "Feeling unwell"),
    ]
    service = workspace.v1.get(f"{splose.url}/v1/services/{hydro}", timeout=5).json()
    assert (service["name"], service["duration"], service["type"]) == ("Hydro group", 50, "Group")
    contact = workspace.v1.get(f"{splose.url}/v1/contacts/{contacts['results'][0]['id']}", timeout=5).json()
    assert len(contact["associatedPatientIds"]) == 1
    practitioner = workspace.v1.get(f"{splose.url}/v1/practitioners/{ann}", timeout=5).json()
    assert {"type": "DVA", "number": "D123", "locationId": main} in practitioner["providerNumbers"]
    by_status = workspace.v1.get(f"{splose.url}/v1/appointments", params={"status": "Cancelled"}, timeout=5)
    assert [row["id"] for row in by_status.json()["data"]] == [appointment_id]


def test_progress_notes_keep_structure_and_refuse_unsafe_html(workspace):
    imp = workspace.start_import()
    ann = workspace.practitioner("ann@example.com")
    workspace.upsert(imp["id"], "clients", [client("1")])
    template = {
        "externalId": "t1",
        "name": "SOAP",
        "sections": [
            {
                "name": "Subjective",
                "questions": [
                    {"name": "Complaint", "type": "paragraph"},
                    {"name": "Pain", "type": "radiobuttons", "options": ["Low", "High"]},
                ],
            }
        ],
    }
    assert workspace.upsert(imp["id"], "progressNoteTemplates", [template])["errors"] == []

    def note(external_id: str, answer: str) -> dict:
        return {
            "externalId": external_id,
            "clientExternalId": "1",
            "practitionerId": ann,
            "templateExternalId": "t1",
            "title": "Visit",
            "status": "final",
            "finalizedAt": "2024-07-01T01:00:00Z",
            "sections": [
                {
                    "name": "Subjective",
                    "questions": [
                        {"name": "Complaint", "type": "paragraph", "answer": answer},
                        {
                            "name": "Pain",
                            "type": "radiobuttons",
                            "answer": None,
                            "options": [{"value": "Low", "selected": False}, {"value": "High", "selected": True}],
                        },
                    ],
                }
            ],
        }

    batch = workspace.upsert(
        imp["id"],
        "progressNotes",
        [
            note("n1", '<p>Sore <b>knee</b></p><ul><li>left</li></ul><a href="https://x.example">ref</a>'),
            note("n2", "<p>hi</p><script>alert(1)</script>"),
            note("n3", '<p onclick="x()">hi</p>'),
        ],
    )
    assert [row["externalId"] for row in batch["results"]] == ["n1"]
    messages = {row["externalId"]: row["message"] for row in batch["errors"]}
    assert "<script>" in messages["n2"]
    assert "onclick" in messages["n3"]
    stored = workspace.dump("progressNotes")[0]
    assert stored["data"]["sections"][0]["questions"][1]["options"][1] == {"value": "High", "selected": True}
    assert stored["data"]["templateId"] == workspace.dump("progressNoteTemplates")[0]["id"]


def test_crosswalk_pages_through_every_external_id_with_its_content_hash(splose, workspace):
    imp = workspace.start_import()
    created = []
    for start in range(0, CROSSWALK_PAGE_SIZE + 500, 500):
        batch = [{**client(str(n)), "contentHash": f"h{n}"} for n in range(start, start + 500)]
        created += workspace.upsert(imp["id"], "clients", batch)["results"]
    url = f"{splose.url}/v1/imports/{imp['id']}/records/clients"
    first = workspace.platform.get(url, timeout=30).json()
    assert len(first["data"]) == CROSSWALK_PAGE_SIZE
    second = workspace.platform.get(splose.url + first["links"]["nextPage"], timeout=30).json()
    assert "nextPage" not in second["links"]
    walked = first["data"] + second["data"]
    expected = [
        {"externalId": row["externalId"], "id": row["id"], "contentHash": f"h{row['externalId']}"} for row in created
    ]
    assert walked == expected
    workspace.finish(imp["id"])
    later = workspace.start_import()
    seen_by_later = workspace.platform.get(f"{splose.url}/v1/imports/{later['id']}/records/clients", timeout=30)
    assert seen_by_later.json()["data"] == first["data"]


def test_a_content_hash_is_kept_with_the_crosswalk_and_never_decides_the_action(splose, workspace):
    imp = workspace.start_import()
    url = f"{splose.url}/v1/imports/{imp['id']}/records/clients"
    first = workspace.upsert(imp["id"], "clients", [{**client("a"), "contentHash": "one"}, client("b")])
    assert [r["action"] for r in first["results"]] == ["created", "created"]
    again = workspace.upsert(imp["id"], "clients", [{**client("a"), "contentHash": "two"}])
    assert [r["action"] for r in again["results"]] == ["unchanged"]
    bad = workspace.upsert(
        imp["id"], "clients", [{**client("c"), "contentHash": "x" * 129}, {**client("d"), "contentHash": 7}]
    )
    assert [e["externalId"] for e in bad["errors"]] == ["c", "d"] and all(
        "contentHash" in e["message"] for e in bad["errors"]
    )
    rows = workspace.platform.get(url, timeout=10).json()["data"]
    assert {row["externalId"]: row["contentHash"] for row in rows} == {"a": "two", "b": None}


def test_counts_give_every_entity_of_the_source_in_one_call(splose, workspace):
    imp = workspace.start_import()
    workspace.upsert(imp["id"], "clients", [client("a"), client("b")])
    body = workspace.platform.get(f"{splose.url}/v1/imports/{imp['id']}/counts", timeout=10).json()
    assert body["data"]["clients"] == 2
    assert body["data"]["appointments"] == body["data"]["files"] == 0
    assert set(body["data"]) == {*ENTITY_SCHEMAS, "files"}
