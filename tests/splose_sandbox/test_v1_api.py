"""The public v1 layer: auth, query validation, paging, deltas, archived rows, availability."""

from __future__ import annotations

import time

import requests

from sandbox.splose.spec_facts import load_facts
from tests.splose_sandbox.conftest import PLATFORM_TOKEN


def clients(count: int, prefix: str = "p", **fields) -> list[dict]:
    return [
        {"externalId": f"{prefix}{n}", "firstname": f"First{n}", "lastname": "Client", **fields} for n in range(count)
    ]


def test_no_key_and_bad_key_are_401(splose, workspace):
    assert requests.get(f"{splose.url}/v1/patients", timeout=5).status_code == 401
    bad = splose.as_key("not-a-key").get(f"{splose.url}/v1/patients", timeout=5)
    assert bad.status_code == 401
    assert "message" in bad.json()


def test_workspace_key_sees_only_its_workspace(splose, workspace):
    other = splose.seed()
    mine = workspace.v1.get(f"{splose.url}/v1/locations", timeout=5).json()["data"]
    theirs = other.v1.get(f"{splose.url}/v1/locations", timeout=5).json()["data"]
    assert [row["title"] for row in mine] == ["Main Street"]
    assert {row["id"] for row in mine}.isdisjoint(row["id"] for row in theirs)
    foreign = workspace.v1.get(f"{splose.url}/v1/locations/{other.location('Main Street')}", timeout=5)
    assert foreign.status_code == 404


def test_platform_token_reads_v1_for_the_workspace_in_its_header(splose, workspace):
    response = workspace.platform.get(f"{splose.url}/v1/practitioners", timeout=5)
    assert response.status_code == 200
    assert {row["email"] for row in response.json()["data"]} == {"ann@example.com", "bob@example.com"}
    no_header = splose.as_key(PLATFORM_TOKEN).get(f"{splose.url}/v1/practitioners", timeout=5)
    assert no_header.status_code == 400
    unknown = splose.as_platform("no-such-clinic").get(f"{splose.url}/v1/practitioners", timeout=5)
    assert unknown.status_code == 404


def test_unknown_query_key_is_400(splose, workspace):
    response = workspace.v1.get(f"{splose.url}/v1/patients", params={"limit": 10}, timeout=5)
    assert response.status_code == 400
    assert "limit" in response.json()["message"]
    by_id = workspace.v1.get(f"{splose.url}/v1/locations/{workspace.location('Main Street')}?x=1", timeout=5)
    assert by_id.status_code == 400


def test_bad_parameter_values_are_400(splose, workspace):
    for params in ({"id_gt": "abc"}, {"include_archived": "yes"}, {"update_gt": "yesterday"}):
        assert workspace.v1.get(f"{splose.url}/v1/patients", params=params, timeout=5).status_code == 400
    # Values the spec's parameter schemas rule out: outside an enum, or not an address for format email.
    for path, params in (
        ("practitioners", {"isActive": "yes"}),
        ("appointments", {"status": "Foo"}),
        ("patients", {"email": "not-an-address"}),
        ("contacts", {"email": "dr at example"}),
    ):
        refused = workspace.v1.get(f"{splose.url}/v1/{path}", params=params, timeout=5)
        assert refused.status_code == 400, (path, params)
        assert next(iter(params)) in refused.json()["message"]
    for path, params in (
        ("practitioners", {"isActive": "false"}),
        ("appointments", {"status": "Did not arrive"}),
        ("patients", {"email": "jo@example.com"}),
    ):
        assert workspace.v1.get(f"{splose.url}/v1/{path}", params=params, timeout=5).status_code == 200, path


def test_a_path_id_of_zero_or_below_is_400_as_the_spec_bounds_it(splose, workspace):
    """Every v1 path id is ``type: integer, minimum: 0, exclusiveMinimum: true``: 0 and below are bad parameters."""
    url = f"{splose.url}/v1"
    week = {"startDate": "2024-07-01", "endDate": "2024-07-07"}
    requests = [
        (f"/{resource}/{number}", {}) for resource in ("patients", "locations", "appointments") for number in (0, -5)
    ]
    for path, params in [*requests, ("/availabilities/0", week), ("/availabilities/-5", week)]:
        answer = workspace.v1.get(f"{url}{path}", params=params, timeout=5)
        assert answer.status_code == 400, (path, answer.text)
        assert "must be greater than 0" in answer.json()["message"], path
    assert workspace.v1.get(f"{url}/patients/1", timeout=5).status_code == 404  # in range, not there


def test_appointment_id_filters_take_any_integral_number_as_the_spec_types_them_number(splose, workspace):
    """``patientId`` and ``practitionerId`` of ``GET /appointments`` are ``type: number``, as ``locationId`` is."""
    ann, main = workspace.practitioner("ann@example.com"), workspace.location("Main Street")
    imp = workspace.start_import()
    workspace.upsert(imp["id"], "clients", [{"externalId": "1", "firstname": "Jo", "lastname": "Doe"}])
    visit = {"start": "2024-07-01T00:00:00Z", "end": "2024-07-01T01:00:00Z", "locationId": main}
    workspace.upsert(
        imp["id"],
        "appointments",
        [
            {**visit, "externalId": "a1", "practitionerId": ann,
             "appointmentPatients": [{"externalId": "a1", "clientExternalId": "1"}]},
            {**visit, "externalId": "a2", "appointmentPatients": [{"externalId": "a2", "clientExternalId": "1"}]},
        ],
    )  # fmt: skip
    patient = workspace.dump("clients")[0]["id"]
    url = f"{splose.url}/v1/appointments"
    for name, value, expected in (
        ("practitionerId", f"{ann}.0", 1),
        ("practitionerId", f"{ann}e0", 1),
        ("practitionerId", str(ann), 1),
        ("practitionerId", f"{ann}.5", 0),
        ("patientId", f"{patient}.0", 2),
        ("patientId", f"{patient}.00", 2),
    ):
        answer = workspace.v1.get(url, params={name: value}, timeout=5)
        assert answer.status_code == 200, (name, value, answer.text)
        assert len(answer.json()["data"]) == expected, (name, value)
    for name, value in (("practitionerId", "abc"), ("patientId", "1e400"), ("patientId", "nan"), ("patientId", "1_0")):
        assert workspace.v1.get(url, params={name: value}, timeout=5).status_code == 400, (name, value)


def test_pages_of_fifty_follow_next_and_previous_links(splose, workspace):
    imp = workspace.start_import()
    created = workspace.upsert(imp["id"], "clients", clients(120))["results"]
    ids = [row["id"] for row in created]

    first = workspace.v1.get(f"{splose.url}/v1/patients", timeout=5).json()
    assert [row["id"] for row in first["data"]] == ids[:50]
    assert "previousPage" not in first["links"]
    assert first["links"]["nextPage"] == f"/v1/patients?id_gt={ids[49]}"  # path and query, as the spec shows
    second = workspace.v1.get(splose.url + first["links"]["nextPage"], timeout=5).json()
    assert [row["id"] for row in second["data"]] == ids[50:100]
    third = workspace.v1.get(splose.url + second["links"]["nextPage"], timeout=5).json()
    assert [row["id"] for row in third["data"]] == ids[100:]
    assert "nextPage" not in third["links"]

    back = workspace.v1.get(splose.url + third["links"]["previousPage"], timeout=5).json()
    assert [row["id"] for row in back["data"]] == ids[50:100]
    by_id_lt = workspace.v1.get(f"{splose.url}/v1/patients", params={"id_lt": ids[10]}, timeout=5).json()
    assert [row["id"] for row in by_id_lt["data"]] == ids[:10]
    by_id_gt = workspace.v1.get(f"{splose.url}/v1/patients", params={"id_gt": ids[115]}, timeout=5).json()
    assert [row["id"] for row in by_id_gt["data"]] == ids[116:]


def test_links_keep_the_other_query_parameters(splose, workspace):
    imp = workspace.start_import()
    workspace.upsert(imp["id"], "clients", clients(60))
    first = workspace.v1.get(f"{splose.url}/v1/patients", params={"lastname": "Client"}, timeout=5).json()
    assert "lastname=Client" in first["links"]["nextPage"]
    assert len(workspace.v1.get(splose.url + first["links"]["nextPage"], timeout=5).json()["data"]) == 10


def test_update_gt_and_update_lt_select_by_update_time(splose, workspace):
    imp = workspace.start_import()
    workspace.upsert(imp["id"], "clients", clients(3))
    since = max(row["updatedAt"] for row in workspace.v1.get(f"{splose.url}/v1/patients", timeout=5).json()["data"])
    time.sleep(0.01)
    workspace.upsert(imp["id"], "clients", [{**clients(3)[1], "email": "changed@example.com"}])
    changed = workspace.v1.get(f"{splose.url}/v1/patients", params={"update_gt": since}, timeout=5).json()["data"]
    assert [row["email"] for row in changed] == ["changed@example.com"]
    older = workspace.v1.get(f"{splose.url}/v1/patients", params={"update_lt": changed[0]["updatedAt"]}, timeout=5)
    assert [row["firstname"] for row in older.json()["data"]] == ["First0", "First2"]
    for spelling in ("2024-07-01", "2024-07-01T00:00:00Z", "2024-07-01T00:00:00.000Z"):
        everything = workspace.v1.get(f"{splose.url}/v1/patients", params={"update_gt": spelling}, timeout=5)
        assert len(everything.json()["data"]) == 3
    # The three forms the API documents, and no other: an offset, other fractions or no zone are a 400.
    for spelling in ("2024-07-01T00:00:00+00:00", "2024-07-01T00:00:00.1Z", "2024-07-01T00:00:00.000000Z",
                     "2024-07-01T00:00:00", "2024-07-01T00:00Z"):  # fmt: skip
        refused = workspace.v1.get(f"{splose.url}/v1/patients", params={"update_gt": spelling}, timeout=5)
        assert refused.status_code == 400, spelling


def test_archived_rows_need_include_archived(splose, workspace):
    imp = workspace.start_import()
    workspace.upsert(imp["id"], "clients", [*clients(2), {**clients(1, "gone")[0], "archived": True}])
    default = workspace.v1.get(f"{splose.url}/v1/patients", timeout=5).json()["data"]
    everything = workspace.v1.get(f"{splose.url}/v1/patients", params={"include_archived": "true"}, timeout=5)
    assert len(default) == 2
    archived = [row for row in everything.json()["data"] if row["archived"]]
    assert len(archived) == 1
    assert archived[0]["deletedAt"] is not None
    locations = workspace.v1.get(f"{splose.url}/v1/locations", params={"include_archived": "true"}, timeout=5)
    assert {row["title"] for row in locations.json()["data"]} == {"Main Street", "Old Rooms"}


def test_practitioners_show_inactive_ones_and_provider_numbers(splose, workspace):
    rows = workspace.v1.get(f"{splose.url}/v1/practitioners", timeout=5).json()["data"]
    by_email = {row["email"]: row for row in rows}
    assert by_email["bob@example.com"]["isActive"] is False
    assert by_email["ann@example.com"]["providerNumbers"] == [
        {"type": "Medicare", "number": "2423451T", "locationId": workspace.location("Main Street")}
    ]
    inactive = workspace.v1.get(f"{splose.url}/v1/practitioners", params={"isActive": "false"}, timeout=5)
    assert [row["email"] for row in inactive.json()["data"]] == ["bob@example.com"]


def test_availability_expands_weekly_rows_and_caps_the_range(splose, workspace):
    imp = workspace.start_import()
    ann, main = workspace.practitioner("ann@example.com"), workspace.location("Main Street")
    weekly = {"practitionerId": ann, "locationId": main, "timezone": "Australia/Sydney"}
    workspace.upsert(
        imp["id"],
        "availability",
        [
            {"externalId": "mon", **weekly, "weekday": 1, "startTime": "09:00", "endTime": "12:30"},
            {
                "externalId": "wed",
                **weekly,
                "weekday": 3,
                "startTime": "13:00",
                "endTime": "17:00",
                "repeatInterval": "Fortnightly",
                "startDate": "2024-07-03",
            },
        ],
    )
    url = f"{splose.url}/v1/availabilities/{ann}"
    response = workspace.v1.get(url, params={"startDate": "2024-07-01", "endDate": "2024-07-21"}, timeout=5)
    assert response.status_code == 200
    assert [(row["date"], row["startTime"], row["endTime"]) for row in response.json()["data"]] == [
        ("2024-07-01", "09:00", "12:30"),
        ("2024-07-03", "13:00", "17:00"),
        ("2024-07-08", "09:00", "12:30"),
        ("2024-07-15", "09:00", "12:30"),
        ("2024-07-17", "13:00", "17:00"),
    ]
    too_long = workspace.v1.get(url, params={"startDate": "2024-01-01", "endDate": "2024-06-01"}, timeout=5)
    assert too_long.status_code == 400
    missing = workspace.v1.get(url, params={"startDate": "2024-01-01"}, timeout=5)
    assert missing.status_code == 400
    elsewhere = workspace.v1.get(
        url, params={"startDate": "2024-07-01", "endDate": "2024-07-07", "locationId": main + 1000}, timeout=5
    )
    assert elsewhere.json()["data"] == []


def test_post_patient_and_contact_create_single_rows(splose, workspace):
    patient = workspace.v1.post(
        f"{splose.url}/v1/patients",
        json={"firstname": "Walk", "lastname": "In", "phoneNumbers": [{"type": "Mobile", "phoneNumber": "0400"}]},
        timeout=5,
    )
    assert patient.status_code == 200
    assert workspace.v1.get(f"{splose.url}/v1/patients/{patient.json()['id']}", timeout=5).json()["lastname"] == "In"
    missing = workspace.v1.post(f"{splose.url}/v1/patients", json={"firstname": "Only"}, timeout=5)
    assert missing.status_code == 400
    contact = workspace.v1.post(
        f"{splose.url}/v1/contacts",
        json={"name": "Plan Manager", "type": "Standard", "email": "plans@example.com"},
        timeout=5,
    )
    assert contact.status_code == 200
    assert (contact.json()["name"], contact.json()["country"]) == ("Plan Manager", "Australia")  # the spec's default


def test_post_patient_accepts_every_field_the_spec_request_allows(splose, workspace):
    url = f"{splose.url}/v1"
    recipient = workspace.v1.post(
        f"{url}/contacts", json={"type": "Standard", "name": "Plan Co", "email": "plan@example.com"}, timeout=5
    ).json()["id"]
    ndis_info = {
        "diagnosis": "Foot Injury",
        "nomineeEmail": "nominee@example.com",
        "fundManagement": "Plan-managed",
        "nomineeLastName": "Clark",
        "nomineeFirstName": "Chris",
        "nomineeMobileCode": "+61",
        "nomineeMobileNumber": "433555111",
        "startDate": "2024-02-09T00:00:00.000Z",
        "endDate": "2024-02-18",
    }
    body = {
        **dict.fromkeys(("middleName", "preferredName", "sex", "genderIdentity", "pronouns", "alert"), "x"),
        **dict.fromkeys(("extraInfo", "extraBillingInfo", "addressL1", "addressL2", "addressL3", "city"), "y"),
        **dict.fromkeys(("state", "postalCode", "country", "medicareNum", "irn", "veteransFileNumber"), "z"),
        **dict.fromkeys(("emergencyContactNumber", "emergencyContactName", "emergencyContactRelationship"), "e"),
        "firstname": "Harry",
        "lastname": "Potter",
        "title": None,
        "email": "harry@example.com",
        "invoiceRecipientId": recipient,
        "birthdate": "1996-07-30",
        "timezone": "Australia/Adelaide",
        "phoneNumbers": [{"type": None, "code": None, "phoneNumber": "401234567"}],
        "privacyPolicy": "",
        "ndisNumber": "430123456",
        "ndisInfo": ndis_info,
        "communicationPreference": "SMS",
        "archived": False,
        "createdAt": "2023-07-30T09:00:00Z",
        "updatedAt": "2023-07-30",
    }
    spec = load_facts()["paths"]["/patients"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body) == set(spec["properties"])  # every field the published request schema has

    created = workspace.v1.post(f"{url}/patients", json=body, timeout=5)

    assert created.status_code == 200, created.text
    shown = workspace.v1.get(f"{url}/patients/{created.json()['id']}", timeout=5).json()
    assert shown == created.json()
    assert (shown["invoiceRecipientId"], shown["ndisNumber"], shown["ndisInfo"]) == (recipient, "430123456", ndis_info)
    assert (shown["communicationPreference"], shown["birthdate"], shown["createdAt"]) == (
        "SMS",
        "1996-07-30",
        "2023-07-30T09:00:00.000Z",
    )
    assert shown["updatedAt"] != "2023-07-30"  # the server keeps its own update time


def test_post_patient_refuses_what_the_spec_or_splose_forbids(splose, workspace):
    url = f"{splose.url}/v1/patients"
    base = {"firstname": "Jo", "lastname": "Doe"}
    refusals = {
        "unknown field": {**base, "referringContactExternalId": "gp"},
        "invoiceRecipientId": {**base, "invoiceRecipientId": 987654321},
        "communicationPreference": {**base, "communicationPreference": None},
        "birthdate": {**base, "birthdate": "30/07/1996"},
        "timezone": {**base, "timezone": "Mars/Olympus"},
        "ndisInfo.startDate": {**base, "ndisInfo": {"startDate": "soon"}},
        "ndisInfo.unknown": {**base, "ndisInfo": {"planNumber": "1"}},
    }
    for name, body in refusals.items():
        answer = workspace.v1.post(url, json=body, timeout=5)
        assert answer.status_code == 400, name
        assert name.split(".")[-1] in answer.json()["message"] or name == "unknown field", name
    assert workspace.v1.get(url, timeout=5).json()["data"] == []


def test_post_contact_requires_the_spec_required_fields(splose, workspace):
    url = f"{splose.url}/v1/contacts"
    full = {"type": "Doctor", "name": "Dr Greta Hall", "email": "greta@example.com", "doctorType": "GP"}
    for missing in ("type", "name", "email"):
        answer = workspace.v1.post(url, json={k: v for k, v in full.items() if k != missing}, timeout=5)
        assert answer.status_code == 400, missing
        assert answer.json()["message"] == f"{missing}: required"
    for field, value in (("email", "not-an-email"), ("doctorType", "Surgeon"), ("notes", "x"), ("name", None)):
        assert workspace.v1.post(url, json={**full, field: value}, timeout=5).status_code == 400, field
    assert workspace.v1.get(url, timeout=5).json()["data"] == []
    created = workspace.v1.post(url, json=full, timeout=5)
    assert created.status_code == 200
    assert (created.json()["doctorType"], created.json()["phoneNumbers"]) == ("GP", [])
