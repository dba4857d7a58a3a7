"""Ground truth, exports and run-time changes: what an importer's counts are checked against."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

from sandbox.cliniko.schema import RESOURCES


def is_set(value) -> bool:
    return value not in (None, "")


def state_of(resource: str, r: dict) -> str:
    """The importer's counting rules, written out independently of the sandbox's own."""
    deleted, archived, cancelled = (is_set(r.get(k)) for k in ("deleted_at", "archived_at", "cancelled_at"))
    if resource == "users":
        return "active" if r["user_active"] else "inactive"
    if resource in ("businesses", "practitioners", "appointment_types") and deleted:
        return "missing"  # no deletion feed: listed nowhere, 404 by id, only ever seen as a link
    if resource == "practitioners":
        return "unlisted" if r.get("_unlisted") else "active" if r["active"] else "inactive"
    if resource == "patients":
        return (
            "deleted" if deleted else ("merged" if is_set(r.get("merged_at")) else "archived") if archived else "active"
        )
    if resource == "individual_appointments":
        for flag, name in ((deleted, "deleted"), (archived, "archived"), (cancelled, "cancelled")):
            if flag:
                return name
        return "did_not_arrive" if r["did_not_arrive"] else "arrived" if r["patient_arrived"] else "booked"
    if resource == "attendees":
        for flag, name in ((deleted, "deleted"), (archived, "archived"), (cancelled, "cancelled")):
            if flag:
                return name
        return "arrived" if r["arrived"] else "booked"
    if resource == "treatment_notes":
        return "deleted" if deleted else "archived" if archived else "draft" if r["draft"] else "final"
    if deleted:
        return "deleted"
    return "archived" if archived else "active"


def derived_truth(api) -> dict[str, dict[str, int]]:
    return {resource: Counter(state_of(resource, r) for r in api.export(resource)) for resource in RESOURCES}


def nonzero(truth: dict) -> dict:
    return {r: {s: n for s, n in states.items() if n} for r, states in truth.items()}


def test_truth_matches_the_export(api):
    truth = api.truth()
    assert set(truth) == set(RESOURCES)
    assert nonzero(truth) == nonzero(derived_truth(api))
    for resource, states in truth.items():
        assert sum(states.values()) == len(api.export(resource)), resource


def test_tiny_clinic_has_every_state_worth_importing(api):
    truth = api.truth()
    wanted = {
        "businesses": {"archived", "active", "missing"},
        "users": {"inactive", "active"},
        "practitioners": {"inactive", "active", "unlisted", "missing"},
        "appointment_types": {"archived", "active", "missing"},
        "patients": {"deleted", "merged", "archived", "active"},
        "contacts": {"archived", "active"},
        "individual_appointments": {"deleted", "archived", "cancelled", "did_not_arrive", "arrived", "booked"},
        "group_appointments": {"deleted", "archived", "active"},
        "attendees": {"deleted", "cancelled", "arrived", "booked"},
        "patient_attachments": {"archived", "active"},
        "treatment_note_templates": {"deleted", "active"},
        "treatment_notes": {"deleted", "archived", "draft", "final"},
    }
    for resource, states in wanted.items():
        assert states <= {s for s, n in truth[resource].items() if n}, resource


def test_export_renders_records_like_the_api(api):
    exported = {p["id"]: p for p in api.export("patients")}
    listed = api.items("/v1/patients")
    assert all(exported[p["id"]] == p for p in listed)
    deleted = [p for p in exported.values() if is_set(p["deleted_at"])]
    assert deleted and all(p["first_name"] for p in deleted)


def test_generated_data_has_documented_variants(api):
    patients = api.export("patients")
    assert any(p["archived_at"] == "" for p in patients)
    assert any(not p["patient_phone_numbers"] and p["date_of_birth"] is None for p in patients)
    assert any("pronouns" not in p for p in patients)
    names = " ".join(p["first_name"] for p in patients)
    assert any(ch in names for ch in "éëþāø王")
    notes = api.export("treatment_notes")
    types = {q["type"] for n in notes for s in n["content"]["sections"] for q in s["questions"]}
    assert types == {"text", "paragraph", "checkboxes", "radiobuttons", "date"}
    assert any("<p>" in q.get("answer", "") for n in notes for s in n["content"]["sections"] for q in s["questions"])
    assert any(n.get("attendee") for n in notes) and any("booking" not in n for n in notes)
    appointments = api.export("individual_appointments")
    assert any(a["repeat_rule"] for a in appointments) and any(a["repeated_from"] for a in appointments)


def test_random_mutation_changes_truth_export_and_incremental_lists(fresh_account):
    api = fresh_account
    before = api.truth()
    since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    time.sleep(1)  # stamps have second precision: keep the mutation clear of `since`
    changed = api.admin_post(
        f"accounts/{api.account}/mutate", {"seed": 5, "updates": 12, "creates": 8, "archives": 4, "deletes": 4}
    )["changed"]
    after = api.truth()
    assert after != before
    assert nonzero(after) == nonzero(derived_truth(api))
    totals = Counter()
    # An individual appointment's attendee changes with it (as in a real account): not one of the random picks.
    attendee_of = {r["booking"]["links"]["self"].rsplit("/", 1)[-1]: str(r["id"]) for r in api.export("attendees")}
    follows = Counter(
        (kind, attendee_of[aid]) for kind, ids in changed.get("individual_appointments", {}).items() for aid in ids
    )
    assert all(rid in changed["attendees"][kind] for kind, rid in follows), follows
    for resource, kinds in changed.items():
        for kind, ids in kinds.items():
            totals[kind] += len(ids) - (
                sum(n for (k, _), n in follows.items() if k == kind) if resource == "attendees" else 0
            )
            assert all(isinstance(i, str) and i.isdigit() for i in ids)
        exported = {str(r["id"]): r for r in api.export(resource)}
        for rid in (i for ids in kinds.values() for i in ids):
            assert exported[rid]["updated_at"] > since, (resource, rid)
        recent = [{**r, "id": str(r["id"])} for r in api.items(f"/v1/{resource}", [("q[]", f"updated_at:>{since}")])]
        visible = {
            rid
            for rid in kinds["updated"] + kinds["created"]
            if state_of(resource, exported[rid]) in ("active", "booked", "arrived", "did_not_arrive", "draft", "final")
        }
        assert visible <= {r["id"] for r in recent}, resource
        assert {r["id"] for r in recent} <= {i for ids in kinds.values() for i in ids}, resource
    assert totals == {"updated": 12, "created": 8, "archived": totals["archived"], "deleted": totals["deleted"]}
    assert totals["archived"] + totals["deleted"] == 8


def test_explicit_ops(fresh_account):
    api = fresh_account
    patient = str(api.items("/v1/patients")[0]["id"])
    appointment = str(api.items("/v1/individual_appointments")[0]["id"])
    number = str(api.items("/v1/practitioner_reference_numbers")[0]["id"])
    contact = str(api.items("/v1/contacts")[0]["id"])
    before = api.truth()
    changed = api.admin_post(
        f"accounts/{api.account}/mutate",
        {
            "ops": [
                {"op": "update", "resource": "patients", "id": patient, "fields": {"first_name": "Renamed"}},
                {"op": "cancel", "resource": "individual_appointments", "id": appointment},
                {"op": "delete", "resource": "practitioner_reference_numbers", "id": number},
                {"op": "delete", "resource": "contacts", "id": contact},
            ]
        },
    )["changed"]
    assert changed["patients"]["updated"] == [patient]
    assert changed["practitioner_reference_numbers"]["deleted"] == [number]
    assert changed["contacts"]["deleted"] == [contact]
    assert api.get(f"/v1/patients/{patient}").json()["first_name"] == "Renamed"
    assert appointment in {str(a["id"]) for a in api.items("/v1/individual_appointments/cancelled")}
    assert number not in {str(n["id"]) for n in api.export("practitioner_reference_numbers")}
    assert api.get(f"/v1/practitioner_reference_numbers/{number}").status_code == 404
    after = api.truth()
    assert after["practitioner_reference_numbers"]["active"] == before["practitioner_reference_numbers"]["active"] - 1
    assert after["contacts"]["deleted"] == before["contacts"]["deleted"] + 1
    assert after["contacts"]["active"] + after["contacts"]["archived"] == (
        before["contacts"]["active"] + before["contacts"]["archived"] - 1
    )
    assert after["individual_appointments"]["cancelled"] == before["individual_appointments"]["cancelled"] + 1


def test_deleting_a_patient_moves_it_to_the_deleted_stubs(fresh_account):
    api = fresh_account
    patient = api.items("/v1/patients")[0]
    api.admin_post(
        f"accounts/{api.account}/mutate", {"ops": [{"op": "delete", "resource": "patients", "id": patient["id"]}]}
    )
    stubs = api.items("/v1/patients/deleted", [("q[]", f"updated_at:>={patient['updated_at']}")])
    assert patient["links"]["self"] in {s["links"]["self"] for s in stubs}
    assert api.get(patient["links"]["self"]).status_code == 404


def test_accounts_can_be_added_on_other_shards(api):
    created = api.admin_post("accounts", {"name": "kiwi", "seed": 9, "scale": "tiny", "shard": "uk2"})
    assert created["shard"] == "uk2" and created["keys"]["admin"].endswith("-uk2")
    kiwi = api.for_account("kiwi")
    assert kiwi.get("/uk2/v1/patients").status_code == 200
    assert kiwi.get("/v1/patients").status_code == 401  # /v1 is au1 here
    listed = {a["name"] for a in api.admin_get("accounts")["accounts"]}
    assert {"main", "kiwi"} <= listed
