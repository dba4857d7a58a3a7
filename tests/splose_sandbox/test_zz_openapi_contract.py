"""Every v1 response the suite received validates against the published spec's response schema.

Runs after the rest of the suite (file name order) and first walks every v1 endpoint with imported
data in every optional field, so it proves the contract on its own too.
"""

from __future__ import annotations

from tests.splose_sandbox.openapi_contract import read_records, response_schema, violations

V1_TEMPLATES = {
    ("GET", path)
    for resource in ("/locations", "/practitioners", "/services", "/patients", "/contacts", "/appointments")
    for path in (resource, f"{resource}/{{id}}")
} | {("GET", "/availabilities/{practitionerId}"), ("POST", "/patients"), ("POST", "/contacts")}


def walk_every_v1_endpoint(splose) -> None:
    workspace = splose.seed()
    imp = workspace.start_import()
    main, ann = workspace.location("Main Street"), workspace.practitioner("ann@example.com")
    phone = [{"type": "Home", "code": "+61", "phoneNumber": "290000000"}, {"type": None, "phoneNumber": "1"}]
    workspace.upsert(
        imp["id"],
        "contacts",
        [
            {
                "externalId": "c1",
                "type": "Doctor",
                "name": "Dr Greta Hall",
                "title": "Dr",
                "firstName": "Greta",
                "lastName": "Hall",
                "preferredName": "G",
                "occupation": "GP",
                "companyName": "Hall Medical",
                "providerNumber": "123456AB",
                "doctorType": "GP",
                "email": "greta@example.com",
                "addressL1": "1 Road",
                "suburb": "Newtown",
                "state": "NSW",
                "postalCode": "2042",
                "country": "Australia",
                "phoneNumbers": phone,
                "notes": "prefers fax",
            }
        ],
    )
    full_client = {
        "externalId": "p1",
        "firstname": "Harry",
        "lastname": "Potter",
        "middleName": "James",
        "preferredName": "H",
        "title": "Mr",
        "email": "harry@example.com",
        "sex": "Male",
        "genderIdentity": "Man",
        "pronouns": "he/him",
        "alert": "allergic to latex",
        "birthdate": "1980-07-31",
        "timezone": "Australia/Sydney",
        "extraInfo": "x",
        "extraBillingInfo": "y",
        "addressL1": "4 Privet Drive",
        "city": "Sydney",
        "state": "NSW",
        "postalCode": "2000",
        "country": "Australia",
        "phoneNumbers": phone,
        "privacyPolicy": "Accepted",
        "medicareNum": "2123456701",
        "irn": "1",
        "veteransFileNumber": "NX123",
        "emergencyContactName": "Ron",
        "emergencyContactNumber": "0400000000",
        "emergencyContactRelationship": "Friend",
        "communicationPreference": "SMS_EMAIL",
        "referringContactExternalId": "c1",
        "createdAt": "2019-01-01T00:00:00Z",
    }
    workspace.upsert(imp["id"], "clients", [full_client, {"externalId": "p2", "firstname": "Min", "lastname": "Imal"}])
    appointment = {
        "start": "2024-07-01T00:00:00Z",
        "end": "2024-07-01T01:00:00Z",
        "serviceId": workspace.service("Initial consult"),
        "locationId": main,
        "practitionerId": ann,
        "note": "first visit",
        "appointmentPatients": [
            {
                "externalId": "a1",
                "clientExternalId": "p1",
                "status": "Cancelled",
                "note": "n",
                "cancellationReason": "Other",
                "cancellationNote": "rain",
                "statusUpdatedAt": "2024-06-30T00:00:00Z",
            }
        ],
    }
    workspace.upsert(
        imp["id"],
        "appointments",
        [
            {"externalId": "a1", **appointment},
            {
                **appointment,
                "externalId": "a2",
                "repeatOfExternalId": "a1",
                "serviceId": None,
                "practitionerId": None,
                "appointmentPatients": [{"externalId": "a2", "clientExternalId": "p2", "status": None}],
            },
        ],
    )
    workspace.upsert(
        imp["id"],
        "availability",
        [
            {
                "externalId": "av",
                "practitionerId": ann,
                "locationId": main,
                "weekday": 2,
                "startTime": "08:00",
                "endTime": "16:00",
                "timezone": "Australia/Sydney",
            }
        ],
    )
    url = f"{splose.url}/v1"
    for resource in ("locations", "practitioners", "services", "patients", "contacts", "appointments"):
        rows = workspace.v1.get(f"{url}/{resource}", params={"include_archived": "true"}, timeout=5).json()["data"]
        assert rows, resource
        for row in rows:
            assert workspace.v1.get(f"{url}/{resource}/{row['id']}", timeout=5).status_code == 200
    workspace.v1.get(f"{url}/availabilities/{ann}", params={"startDate": "2024-07-01", "endDate": "2024-08-01"})
    recipient = workspace.v1.post(
        f"{url}/contacts", json={"type": "Standard", "name": "Plan Manager", "email": "plans@example.com"}, timeout=5
    ).json()["id"]
    workspace.v1.post(f"{url}/patients", json={"firstname": "New", "lastname": "Patient"}, timeout=5)
    workspace.v1.post(
        f"{url}/patients",
        json={
            "firstname": "Ndis",
            "lastname": "Participant",
            "invoiceRecipientId": recipient,
            "ndisNumber": "430123456",
            "ndisInfo": {"diagnosis": "Foot Injury", "startDate": "2024-02-09T00:00:00.000Z"},
        },
        timeout=5,
    )


def test_every_recorded_v1_response_matches_the_published_spec(splose, record_dir):
    walk_every_v1_endpoint(splose)
    records = read_records(record_dir)
    answered = {(record["method"], record["path_template"]) for record in records if record["status"] == 200}
    assert answered >= V1_TEMPLATES
    problems = [problem for record in records for problem in violations(record)]
    assert not problems, f"{len(problems)} violation(s):\n" + "\n".join(problems[:200])


def test_the_contract_check_catches_a_drifting_response():
    good = {"id": 1, "firstname": "A", "lastname": "B", "deletedAt": None}
    record = {"method": "GET", "path_template": "/patients/{id}", "status": 200}
    assert violations({**record, "body": good}) == []
    assert violations({**record, "body": {**good, "deletedAt": 5}})
    assert violations({**record, "body": {**good, "birthdate": 19900101}})
    assert violations({**record, "body": {k: v for k, v in good.items() if k != "deletedAt"}})
    assert violations({**record, "body": {**good, "privacyPolicy": None}}) == []
    assert violations({**record, "body": {**good, "privacyPolicy": "Maybe"}})
    assert violations({**record, "body": {**good, "communicationPreference": None}})
    assert response_schema("GET", "/patients/{id}")["properties"]["deletedAt"]["anyOf"][2]["enum"] == [None]
