"""Real accounts import completely: dangling references, time zones, unusable fields, notes without a booking.

Each test imports a tiny clinic from the Cliniko sandbox into the Splose sandbox through a real instance.
The generated clinic has a deleted appointment type, a deleted business and a deleted practitioner that
appointments still point at (404 by id), and a practitioner no list route returns (found by id).
Assertions compare counts, ids and booleans only, so a failure never prints patient data.
"""

from __future__ import annotations

import dagster as dg
import pytest
import requests

from cliniko_assets.timezones import iana_zone
from sandbox.harness import running_server
from tests.conftest import materializations
from tests.test_import import TOKEN, Import, _rows


@pytest.fixture(scope="module")
def splose_sandbox(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("splose-sandbox")
    args = ["--platform-token", TOKEN, "--db", str(workdir / "splose.db"), "--record-v1", str(workdir / "v1.ndjson")]
    with running_server("sandbox.splose", args, log_dir=workdir) as server:
        yield server


def extracted(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Metadata of the run's cliniko/* materializations, by resource."""
    found = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            key = event.event_specific_data.materialization.asset_key
            if key.path[0] == "cliniko":
                metadata = event.event_specific_data.materialization.metadata
                found[key.path[-1]] = {k: getattr(v, "value", v) for k, v in metadata.items()}
    return found


def submit(imp: Import, mapping: dict, role: str = "admin") -> dict:
    response = requests.post(
        f"{imp.url}/v1/imports",
        headers={"Authorization": f"Bearer {imp.workspace['key']}"},
        json={"source": "cliniko", "clinikoApiKey": imp.clinic.keys[role], "mapping": mapping},
    )
    response.raise_for_status()
    return response.json()


def one(records: list[dict], state: str = "missing") -> str:
    (found,) = [str(r["id"]) for r in records if (r.get("deleted_at") if state == "missing" else r.get("_unlisted"))]
    return found


def linked(record: dict, name: str) -> str | None:
    target = record.get(name)
    return target["links"]["self"].rsplit("/", 1)[-1] if target else None


def live(records: list[dict]) -> list[dict]:
    return [r for r in records if not r.get("deleted_at")]


def test_dangling_references_are_fetched_mapped_or_defaulted_and_the_import_completes(
    clinic, splose_sandbox, instance, tmp_path, monkeypatch
):
    imp = Import(clinic, splose_sandbox.url, tmp_path, monkeypatch)
    deleted_type = one(clinic.admin.export(clinic.account, "appointment_types"))
    gone_practitioner = one(clinic.admin.export(clinic.account, "practitioners"))
    unlisted_practitioner = one(clinic.admin.export(clinic.account, "practitioners"), state="unlisted")
    request = imp.submit()

    result = imp.run(instance, request)

    assert result.success and imp.status(request["id"])["status"] == "complete"
    cliniko = extracted(result)
    truth = clinic.truth()
    for resource in ("businesses", "practitioners", "appointment_types"):
        assert clinic.staged_states(resource) == truth[resource], resource
    by_id = cliniko["references"]["by_resource"]
    assert (by_id["practitioners"]["found_by_id"], by_id["practitioners"]["not_in_cliniko"]) == (1, 1)
    assert by_id["appointment_types"]["not_in_cliniko_ids"] == [deleted_type]
    rows = _rows(result)
    assert all(row["unaccounted"] == 0 for row in rows.values())

    # The deleted type got a service of its own, and its appointments use it.
    (service,) = [s for s in imp.dump("services") if s["externalId"] == deleted_type]
    assert (service["data"]["name"], service["archived"]) == (f"Deleted appointment type {deleted_type}", True)
    appointments = {a["externalId"]: a for a in imp.dump("appointments")}
    of_type = [
        a
        for a in live(clinic.admin.export(clinic.account, "individual_appointments"))
        if linked(a, "appointment_type") == deleted_type
    ]
    imported = [appointments[str(a["id"])] for a in of_type if str(a["id"]) in appointments]
    assert imported and {a["data"]["serviceId"] for a in imported} == {service["id"]}

    # The practitioner found by id was mapped by its email; the deleted one's appointments came without one.
    assert clinic.staged_states("practitioners")["unlisted"] == 1
    assert unlisted_practitioner in imp.mapping["practitioners"]
    without = [a for a in appointments.values() if a["data"]["practitionerId"] is None]
    gone = {
        str(a["id"])
        for a in clinic.admin.export(clinic.account, "individual_appointments")
        if linked(a, "practitioner") == gone_practitioner
    }
    assert without and {a["externalId"] for a in without} <= gone
    assert rows["appointments"]["warnings_by_field"]["practitioner"] == len(without)
    assert rows["practitioners"]["skipped_by_reason"] == {"not listed by Cliniko, not mapped": 1}


def test_unusable_fields_are_dropped_counted_and_kept_verbatim(clinic, splose_sandbox, instance, tmp_path, monkeypatch):
    imp = Import(clinic, splose_sandbox.url, tmp_path, monkeypatch)
    patients = list(clinic.admin.export(clinic.account, "patients"))
    # The generated clinic's own values longer than Splose holds (an address line), on another patient.
    long_already = sum(len(p.get("address_2") or "") > 255 for p in patients)
    patient = str(
        next(
            p["id"]
            for p in patients
            if not p.get("deleted_at") and not p.get("archived_at") and len(p.get("address_2") or "") <= 255
        )
    )
    bad = {
        "email": "nobody at home",
        "date_of_birth": "1984-02-30",
        "patient_phone_numbers": [
            {"phone_type": "Mobile", "number": "61444444444"},
            {"phone_type": "Home", "number": "0412 345 678"},
            {"phone_type": "Work", "number": "ring the front desk"},
        ],
        "custom_fields": {"sections": "Insurance: yes"},
        "address_1": {"street": "1 High Street"},
        "city": "Greater Melbourne Metropolitan Area, " * 8,  # 296 characters: more than Splose's 255
    }
    clinic.admin.mutate(clinic.account, ops=[{"op": "update", "resource": "patients", "id": patient, "fields": bad}])
    request = imp.submit()

    result = imp.run(instance, request)

    assert result.success and imp.status(request["id"])["status"] == "complete"
    rows = _rows(result)
    for field in ("email", "date_of_birth", "patient_phone_numbers", "custom_fields", "address_1"):
        assert rows["clients"]["warnings_by_field"].get(field, 0) >= 1, field
    (client,) = [c for c in imp.dump("clients") if c["externalId"] == patient]
    data = client["data"]
    assert (data["email"], data["birthdate"], data["addressL1"]) == (None, None, None)
    assert [(p["code"], p["phoneNumber"]) for p in data["phoneNumbers"]] == [("+61", "444444444"), ("+61", "412345678")]
    kept = data["extraInfo"].splitlines()
    for field in ("email", "date_of_birth", "patient_phone_numbers", "custom_fields", "address_1"):
        assert sum(line.startswith(f"Cliniko {field} (unusable, not imported): ") for line in kept) == 1, field
    # Cut where Splose's field ends, kept whole in extraInfo: the client is imported, not rejected.
    assert long_already == 1  # the tiny clinic's one (a patient in 331 has it)
    assert rows["clients"]["fields_cut_to_fit"] == 1 + long_already and rows["clients"]["rejected"] == 0
    assert data["city"] == bad["city"][:254] + "…"
    assert (
        sum(line == f"city (longer than Splose's 255 characters, cut there), whole: {bad['city']}" for line in kept)
        == 1
    )
    recorded = str(materializations(result)["clients"])
    assert "nobody at home" not in recorded and "front desk" not in recorded  # names in metadata, never values
    assert "Greater Melbourne" not in recorded


def test_notes_without_a_booking_attach_to_client_and_practitioner_and_are_counted(
    clinic, splose_sandbox, instance, tmp_path, monkeypatch
):
    imp = Import(clinic, splose_sandbox.url, tmp_path, monkeypatch)
    _write_notes_for_attendees(clinic, 2)
    result = imp.run(instance, imp.submit())

    assert result.success
    exported = list(live(clinic.admin.export(clinic.account, "treatment_notes")))
    unbooked = {str(n["id"]) for n in exported if not n.get("booking") and not n.get("attendee")}
    # Written for an attendee: Cliniko shows the attendee link alone; the note joins the attendee's booking.
    for_attendee = {
        str(n["id"]): _target(n["attendee"]) for n in exported if not n.get("booking") and n.get("attendee")
    }
    booking_of = {str(a["id"]): _target(a["booking"]) for a in clinic.admin.export(clinic.account, "attendees")}
    splose_ids = {row["externalId"]: row["id"] for row in imp.dump("appointments")}
    notes = {n["externalId"]: n["data"] for n in imp.dump("progressNotes")}
    assert unbooked and unbooked <= set(notes)
    assert all(notes[n]["patientId"] and notes[n]["appointmentId"] is None for n in unbooked)
    assert for_attendee and set(for_attendee) <= set(notes)
    # Joined to the attendee's booking when Splose has it; a note for an attendee of a group deleted in Cliniko
    # (the generator writes some) stays with its client alone. The two written above, for live groups, are linked.
    expected = {n: splose_ids.get(booking_of[attendee]) for n, attendee in for_attendee.items()}
    assert {n: notes[n]["appointmentId"] for n in for_attendee} == expected
    assert sum(linked is not None for linked in expected.values()) >= 2
    assert sum(notes[n]["practitionerId"] is not None for n in unbooked) >= len(unbooked) - 1
    without_appointment = sum(n["appointmentExternalId"] is None for n in notes.values())
    assert _rows(result)["progress_notes"]["notes_without_appointment"] == without_appointment >= len(unbooked)
    (email,) = imp.outbox.iterdir()
    assert f"{without_appointment} not linked to an appointment" in email.read_text()


def test_a_key_without_settings_and_a_clinic_that_maps_unknown_types_and_leaves_a_business_unmapped(
    clinic, splose_sandbox, instance, tmp_path, monkeypatch
):
    imp = Import(clinic, splose_sandbox.url, tmp_path, monkeypatch)
    deleted_business = one(clinic.admin.export(clinic.account, "businesses"))
    deleted_type = one(clinic.admin.export(clinic.account, "appointment_types"))
    chosen = next(iter(imp.workspace["services"].values()))
    mapping = {kind: dict(entries) for kind, entries in imp.mapping.items()}
    del mapping["locations"][deleted_business]
    mapping["services"]["unknown"] = chosen
    request = submit(imp, mapping, role="practitioner")  # a practitioner's key cannot read /settings

    result = imp.run(instance, request)

    assert result.success
    status = imp.status(request["id"])
    assert status["status"] == "complete" and status["message"].startswith("Complete with warnings")
    businesses = extracted(result)["businesses"]
    assert (businesses["settings_forbidden"], businesses["account_settings_from"]) == (1, "settings/public")
    rows = _rows(result)
    assert rows["availability"]["loaded"] == rows["availability"]["cliniko"]  # zones from the public settings
    reason = f"business {deleted_business} not listed by Cliniko, not mapped"
    at_business = [
        a
        for a in live(clinic.admin.export(clinic.account, "individual_appointments"))
        if linked(a, "business") == deleted_business
    ]
    assert rows["appointments"]["skipped_by_reason"][reason] == rows["appointments"]["needs_attention"][reason]
    assert rows["appointments"]["needs_attention"][reason] == len(at_business) > 0
    assert f"{len(at_business)} skipped, {reason}" in status["message"]
    of_type = {
        str(a["id"])
        for a in live(clinic.admin.export(clinic.account, "individual_appointments"))
        if linked(a, "appointment_type") == deleted_type
    }
    services = {a["data"]["serviceId"] for a in imp.dump("appointments") if a["externalId"] in of_type}
    assert services == {chosen}
    assert deleted_type not in {s["externalId"] for s in imp.dump("services")}


def test_with_no_time_zone_known_availability_is_skipped_for_the_clinics_attention(
    clinic, splose_sandbox, instance, tmp_path, monkeypatch
):
    imp = Import(clinic, splose_sandbox.url, tmp_path, monkeypatch)
    clinic.admin.patch_settings(clinic.account, {"account": {"time_zone": None}})
    zoneless = {
        str(b["id"])
        for b in clinic.admin.export(clinic.account, "businesses")
        if not (iana_zone(b["time_zone_identifier"]) or iana_zone(b["time_zone"])) and not b.get("deleted_at")
    }
    days = [d for d in clinic.admin.export(clinic.account, "daily_availabilities") if linked(d, "business") in zoneless]
    request = imp.submit()

    result = imp.run(instance, request)

    assert result.success and zoneless and days
    rows = _rows(result)
    expected = {
        f"time zone of business {b} not known": n
        for b in zoneless
        if (n := sum(linked(d, "business") == b for d in days))
    }
    assert rows["availability"]["needs_attention"] == expected
    assert rows["availability"]["loaded"] == rows["availability"]["cliniko"] - len(days)
    status = imp.status(request["id"])
    assert status["status"] == "complete" and status["message"].startswith("Complete with warnings")
    assert all(f"{n} skipped, {reason}" in status["message"] for reason, n in expected.items())
    assert materializations(result)["locations"]["time_zones_from"].get("unknown") == len(zoneless) + 1  # + deleted one


def _target(link: dict) -> str:
    """The id a Cliniko link points at."""
    return link["links"]["self"].rsplit("/", 1)[-1]


def _write_notes_for_attendees(clinic, count: int) -> None:
    """Make ``count`` booked notes into notes written for a group appointment's attendee, as Cliniko shows one
    created with ``attendee_id``: an ``attendee`` link, no ``booking`` link, the attendee's patient."""
    groups = {str(g["id"]) for g in live(clinic.admin.export(clinic.account, "group_appointments"))}
    attendees = [
        a
        for a in live(clinic.admin.export(clinic.account, "attendees"))
        if not a.get("cancelled_at") and not a.get("archived_at") and _target(a["booking"]) in groups
    ]
    notes = [
        n
        for n in live(clinic.admin.export(clinic.account, "treatment_notes"))
        if n.get("booking") and not n.get("archived_at")
    ]
    assert len(attendees) >= count and len(notes) >= count
    ops = [
        {
            "op": "update",
            "resource": "treatment_notes",
            "id": note["id"],
            "fields": {"booking": None, "attendee": {"links": {"self": attendee["links"]["self"]}},
                       "patient": attendee["patient"]},
        }
        for note, attendee in zip(notes[:count], attendees[:count], strict=True)
    ]  # fmt: skip
    clinic.admin.mutate(clinic.account, ops=ops)
