"""Data for contract tests: a workspace with a value in every optional field the sandbox can hold."""

from __future__ import annotations

from tests.splose_sandbox.conftest import Workspace


def fill_every_optional_field(workspace: Workspace) -> None:
    """Import a contact, clients, appointments and availability with every optional field set, and create
    a contact and two patients through v1."""
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
    recipient = workspace.v1.post(
        f"{workspace.splose.url}/v1/contacts",
        json={"type": "Standard", "name": "Plan Manager", "email": "plans@example.com"},
        timeout=5,
    ).json()["id"]
    workspace.v1.post(
        f"{workspace.splose.url}/v1/patients", json={"firstname": "New", "lastname": "Patient"}, timeout=5
    )
    workspace.v1.post(
        f"{workspace.splose.url}/v1/patients",
        json={
            "firstname": "Ndis",
            "lastname": "Participant",
            "invoiceRecipientId": recipient,
            "ndisNumber": "430123456",
            "ndisInfo": {"diagnosis": "Foot Injury", "startDate": "2024-02-09T00:00:00.000Z"},
        },
        timeout=5,
    )
