"""Accounts messier than the docs: older accounts whose filters leave rows out, hard deletions, churn."""

from __future__ import annotations

import hashlib

import requests

from tests.sandbox.conftest import new_account


def test_an_older_account_ignores_the_filters_its_older_routes_stand_in_for(api):
    older = new_account(api, legacy_filters=True)
    truth = older.truth()
    patients = truth["patients"]
    assert older.admin_get(f"accounts/{older.account}")["legacy_filters"] is True
    assert older.total("/v1/patients", [("q[]", "archived_at:*")]) == patients["active"]
    assert older.total("/v1/patients/archived") == patients["archived"] + patients["merged"] > 0
    types = truth["appointment_types"]
    assert older.total("/v1/appointment_types", [("q[]", "archived_at:*")]) == types["active"]
    assert older.total("/v1/appointment_types/archived") == types["archived"] > 0
    all_rows = [("q[]", "archived_at:*"), ("q[]", "cancelled_at:*")]
    for resource in ("individual_appointments", "attendees"):
        # An older account's main list leaves every cancelled row out (archived ones too); its
        # /cancelled route serves them all, archived ones when asked for as everywhere.
        live = [r for r in older.export(resource) if not r.get("deleted_at")]
        cancelled = sum(bool(r.get("cancelled_at")) for r in live)
        assert older.total(f"/v1/{resource}", all_rows) == len(live) - cancelled
        assert older.total(f"/v1/{resource}/cancelled", all_rows[:1]) == cancelled > 0
    archived = older.items("/v1/patients/archived")[0]
    assert older.get(f"/v1/patients/{archived['id']}", {"q[]": "archived_at:*"}).status_code == 404
    # The same clinic on a newer account honours the filters.
    assert api.total("/v1/patients", [("q[]", "archived_at:*")]) > api.total("/v1/patients")


def test_an_account_with_documented_filters_refuses_the_fields_its_docs_leave_out(api):
    strict = new_account(api, documented_filters=True)
    assert strict.admin_get(f"accounts/{strict.account}")["documented_filters"] is True
    for path, item in (
        ("/v1/contacts", "archived_at:*"),
        ("/v1/patients", "deleted_at:?"),
        ("/v1/treatment_note_templates", "deleted_at:?"),
    ):
        response = strict.get(path, [("q[]", item)])
        assert response.status_code == 400, path
        assert item.split(":")[0] in response.json()["message"], path
    # What the docs list stays accepted; the same clinic on a default account accepts the others too.
    assert strict.total("/v1/patients", [("q[]", "archived_at:*")]) == api.total(
        "/v1/patients", [("q[]", "archived_at:*")]
    )
    assert api.get("/v1/contacts", [("q[]", "archived_at:*")]).status_code == 200
    # An older account refuses what only the newer docs list, e.g. archived_at on businesses.
    older = new_account(api, documented_filters=True, legacy_filters=True)
    response = older.get("/v1/businesses", [("q[]", "archived_at:*")])
    assert response.status_code == 400 and "archived_at" in response.json()["message"]
    assert older.get("/v1/businesses").status_code == 200


def test_an_account_with_documented_filters_refuses_comparisons_on_the_ids_its_docs_type_as_string(api):
    strict = new_account(api, documented_filters=True)
    note = strict.items("/v1/treatment_notes", [("sort", "id"), ("per_page", "5")])[2]
    for item in (f"id:>{note['id']}", f"id:<{note['id']}", f"id:>={note['id']}", "patient_id:<1"):
        for sort in ([], [("sort", "id")]):  # keyset paging's own query included
            response = strict.get("/v1/treatment_notes", [*sort, ("q[]", item)])
            assert response.status_code == 400, item
            assert item.partition(":")[0] in response.json()["message"], item
    # String's own operators are accepted; so are comparisons where the docs type the id as a number.
    assert [r["id"] for r in strict.items("/v1/treatment_notes", [("q[]", f"id:={note['id']}")])] == [note["id"]]
    assert strict.get("/v1/treatment_notes", [("q[]", "id:?")]).status_code == 200
    assert strict.get("/v1/patients", [("q[]", "id:>1")]).status_code == 200
    assert api.get("/v1/treatment_notes", [("q[]", f"id:>{note['id']}")]).status_code == 200
    # The docs type the id filter as String on businesses, practitioners and appointment types too.
    for path in ("/v1/businesses", "/v1/practitioners", "/v1/appointment_types"):
        first = strict.items(path, [("sort", "id")])[0]
        response = strict.get(path, [("sort", "id"), ("q[]", f"id:>{first['id']}")])
        assert response.status_code == 400 and "id" in response.json()["message"], path
        assert [r["id"] for r in strict.items(path, [("q[]", f"id:={first['id']}")])] == [first["id"]], path
        assert api.get(path, [("q[]", f"id:>{first['id']}")]).status_code == 200, path


def test_an_account_without_older_routes_lists_deleted_rows_by_the_deleted_at_filter(api):
    newer = new_account(api, no_older_routes=True)
    assert newer.admin_get(f"accounts/{newer.account}")["no_older_routes"] is True
    for path in ("/v1/patients/deleted", "/v1/patients/archived", "/v1/attendees/cancelled", "/v1/attendees/deleted"):
        assert newer.get(path).status_code == 404, path
    for resource in ("individual_appointments", "group_appointments", "attendees", "treatment_notes"):
        cancelled = [("q[]", "cancelled_at:*")] if resource in ("individual_appointments", "attendees") else []
        everything = [("q[]", "archived_at:*"), *cancelled]
        deleted = {r["id"] for r in newer.export(resource) if r.get("deleted_at")}
        assert deleted, resource
        listed = {r["id"] for r in newer.items(f"/v1/{resource}", [*everything, ("q[]", "deleted_at:?")])}
        assert listed == deleted, resource
        assert newer.total(f"/v1/{resource}", [*everything, ("q[]", "deleted_at:*")]) == len(newer.export(resource))
        # A default account keeps deleted rows out of its main list whatever the filter says.
        assert api.total(f"/v1/{resource}", [*everything, ("q[]", "deleted_at:?")]) == 0, resource


def test_an_account_of_the_older_docs_lists_reference_numbers_per_practitioner_only(api):
    older = new_account(api, nested_reference_numbers=True)
    assert older.admin_get(f"accounts/{older.account}")["nested_reference_numbers"] is True
    assert older.get("/v1/practitioner_reference_numbers").status_code == 404
    numbers = older.export("practitioner_reference_numbers")
    practitioner = numbers[0]["practitioner"]["links"]["self"].rsplit("/", 1)[-1]
    nested = older.items(f"/v1/practitioners/{practitioner}/practitioner_reference_numbers")
    mine = {r["id"] for r in numbers if r["practitioner"]["links"]["self"].endswith(f"/{practitioner}")}
    assert {r["id"] for r in nested} == mine and mine
    assert older.get(f"/v1/practitioner_reference_numbers/{numbers[0]['id']}").status_code == 200
    assert api.get("/v1/practitioner_reference_numbers").status_code == 200  # a default account serves both


def test_contacts_and_attachments_are_hard_deleted_without_a_trace(fresh_account):
    api = fresh_account
    contact = api.items("/v1/contacts")[0]
    attachment = api.items("/v1/patient_attachments")[0]
    location = api.get(attachment["content"]["links"]["self"], allow_redirects=False).headers["Location"]
    before = api.truth()
    ops = [
        {"op": "delete", "resource": "contacts", "id": contact["id"]},
        {"op": "delete", "resource": "patient_attachments", "id": attachment["id"]},
    ]
    changed = api.admin_post(f"accounts/{api.account}/mutate", {"ops": ops})["changed"]
    assert changed["contacts"]["deleted"] == [contact["id"]]
    for resource, record in (("contacts", contact), ("patient_attachments", attachment)):
        listed = api.items(f"/v1/{resource}", [("q[]", "archived_at:*")])
        assert record["id"] not in {r["id"] for r in listed}
        assert api.get(f"/v1/{resource}/{record['id']}", {"q[]": "archived_at:*"}).status_code == 404
        assert api.get(f"/v1/{resource}/deleted").status_code == 404  # no deletion feed, no stub
        assert api.truth()[resource]["deleted"] == before[resource]["deleted"] + 1
        exported = {r["id"]: r for r in api.export(resource)}
        assert exported[record["id"]]["deleted_at"]
    assert api.get(attachment["content"]["links"]["self"], allow_redirects=False).status_code == 404
    assert "NoSuchKey" in requests.get(location, timeout=30).text


def test_an_attachment_is_served_as_cliniko_documents_it_while_processing_and_once_processed(fresh_account):
    """Right after an upload Cliniko shows an attachment with ``processing_completed: false`` and its file
    fields null (its docs' example); it has no bytes to serve yet. Processing fills them in and, as the docs
    do not say otherwise, leaves ``updated_at`` where it was."""
    api = fresh_account
    fields = {"processing_completed": False, "content_type": None, "filename": None, "size": None}
    ops = [{"op": "create", "resource": "patient_attachments", "fields": fields}]
    created = api.admin_post(f"accounts/{api.account}/mutate", {"ops": ops})["changed"]
    (rid,) = created["patient_attachments"]["created"]
    waiting = api.get(f"/v1/patient_attachments/{rid}").json()
    assert {k: waiting[k] for k in fields} == fields
    assert rid in {a["id"] for a in api.items("/v1/patient_attachments")}
    location = api.get(waiting["content"]["links"]["self"], allow_redirects=False).headers["Location"]
    assert requests.get(location, timeout=30).status_code == 404
    assert {a["id"]: a for a in api.export("patient_attachments")}[rid]["_sha256"] is None

    ops = [{"op": "process", "resource": "patient_attachments", "id": rid}]
    changed = api.admin_post(f"accounts/{api.account}/mutate", {"ops": ops})["changed"]
    assert changed["patient_attachments"]["updated"] == [rid]
    done = api.get(f"/v1/patient_attachments/{rid}").json()
    assert done["processing_completed"] is True and done["updated_at"] == waiting["updated_at"]
    assert done["content_type"] == "application/pdf" and done["filename"] and done["size"] > 0
    data = requests.get(location, timeout=30).content
    exported = {a["id"]: a for a in api.export("patient_attachments")}[rid]
    assert len(data) == done["size"] and hashlib.sha256(data).hexdigest() == exported["_sha256"]
    wrong = {"ops": [{**ops[0], "resource": "contacts"}]}
    refused = api.session.post(f"{api.url}/_sandbox/accounts/{api.account}/mutate", json=wrong, timeout=60)
    assert (refused.status_code, refused.json()["message"]) == (400, "contacts are not processed")


def test_churn_deletes_the_oldest_records_while_a_list_is_read(fresh_account):
    api = fresh_account
    oldest = sorted(int(p["id"]) for p in api.items("/v1/patients"))[:4]
    api.admin_post(f"accounts/{api.account}/churn", {"resource": "patients", "every": 2, "deletes": 2, "limit": 4})
    totals = [api.total("/v1/patients") for _ in range(6)]
    assert totals[0] - totals[-1] == 4 and totals == sorted(totals, reverse=True)
    churned = api.admin_get(f"accounts/{api.account}/churn")["churn"]["deleted"]
    assert sorted(int(i) for i in churned) == oldest
    stubs = {s["links"]["self"].rsplit("/", 1)[1] for s in api.items("/v1/patients/deleted")}
    assert set(churned) <= stubs
    api.admin_post(f"accounts/{api.account}/churn", {})
    assert api.admin_get(f"accounts/{api.account}/churn")["churn"] is None


def test_an_account_lists_one_attendee_per_individual_appointment_as_real_accounts_do(api):
    real = new_account(api)  # by default
    assert real.admin_get(f"accounts/{real.account}")["individual_attendees"] is True
    appointments = {r["id"]: r for r in real.export("individual_appointments")}
    groups = {r["id"] for r in real.export("group_appointments")}
    attendees = real.export("attendees")

    def booking(attendee: dict) -> str:
        return attendee["booking"]["links"]["self"].rsplit("/", 1)[-1]

    individual = {booking(a): a for a in attendees if booking(a) not in groups}
    assert individual.keys() == appointments.keys() and len(individual) == len(attendees) - sum(
        booking(a) in groups for a in attendees
    )
    for aid, appointment in appointments.items():
        attendee = individual[aid]
        assert attendee["patient"] == appointment["patient"], aid
        for field in ("cancelled_at", "archived_at", "deleted_at"):
            assert attendee[field] == appointment[field], (aid, field)
    assert len({a["id"] for a in attendees}) == len(attendees)
    # Listed as Cliniko lists attendees: deleted ones only on /deleted, cancelled ones with cancelled_at:*.
    everything = [("q[]", "archived_at:*"), ("q[]", "cancelled_at:*")]
    assert real.total("/v1/attendees", everything) == sum(not a["deleted_at"] for a in attendees)
    one = next(a for a in appointments.values() if not (a["deleted_at"] or a["archived_at"] or a["cancelled_at"]))
    nested = real.items(f"/v1/individual_appointments/{one['id']}/attendees")
    assert [r["id"] for r in nested] == [individual[one["id"]]["id"]]
    assert sum(real.truth()["attendees"].values()) == len(attendees)
    # Turned off, an account's /attendees holds the attendees of group appointments only.
    groups_only = new_account(api, individual_attendees=False)
    plain = groups_only.export("individual_appointments")[0]
    assert groups_only.items(f"/v1/individual_appointments/{plain['id']}/attendees") == []
    group_ids = {r["id"] for r in groups_only.export("group_appointments")}
    assert {booking(a) in group_ids for a in groups_only.export("attendees")} == {True}


def test_an_individual_appointments_attendee_is_made_and_changed_with_it(fresh_account):
    api = fresh_account
    live = [a for a in api.export("individual_appointments") if not (a["deleted_at"] or a["cancelled_at"])]
    cancelled, deleted = live[0]["id"], live[1]["id"]
    ops = [
        {"op": "create", "resource": "individual_appointments"},
        {"op": "cancel", "resource": "individual_appointments", "id": cancelled},
        {"op": "delete", "resource": "individual_appointments", "id": deleted},
    ]
    changed = api.admin_post(f"accounts/{api.account}/mutate", {"ops": ops})["changed"]
    (created,) = changed["individual_appointments"]["created"]
    assert len(changed["attendees"]["created"]) == 1 and len(changed["attendees"]["updated"]) == 1
    assert len(changed["attendees"]["deleted"]) == 1
    appointments = {a["id"]: a for a in api.export("individual_appointments")}
    by_booking = {a["booking"]["links"]["self"].rsplit("/", 1)[-1]: a for a in api.export("attendees")}
    for aid in (created, cancelled, deleted):
        attendee, appointment = by_booking[aid], appointments[aid]
        assert attendee["patient"] == appointment["patient"], aid
        for name in ("cancelled_at", "deleted_at", "updated_at"):
            assert attendee[name] == appointment[name], (aid, name)
    assert by_booking[cancelled]["cancelled_at"] and by_booking[deleted]["deleted_at"]
    assert (
        api.get(f"/v1/individual_appointments/{created}/attendees").json()["attendees"][0]["id"]
        == (by_booking[created]["id"])
    )
