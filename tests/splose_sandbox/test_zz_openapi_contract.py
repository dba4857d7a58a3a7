"""Every v1 response the suite received validates against the published spec's response schema.

Runs after the rest of the suite (file name order) and first walks every v1 endpoint with imported
data in every optional field, so it proves the contract on its own too.
"""

from __future__ import annotations

from tests.splose_sandbox.openapi_contract import read_records, response_schema, violations
from tests.splose_sandbox.populate import fill_every_optional_field

V1_TEMPLATES = {
    ("GET", path)
    for resource in ("/locations", "/practitioners", "/services", "/patients", "/contacts", "/appointments")
    for path in (resource, f"{resource}/{{id}}")
} | {("GET", "/availabilities/{practitionerId}"), ("POST", "/patients"), ("POST", "/contacts")}


def walk_every_v1_endpoint(splose) -> None:
    workspace = splose.seed()
    fill_every_optional_field(workspace)
    ann = workspace.practitioner("ann@example.com")
    url = f"{splose.url}/v1"
    for resource in ("locations", "practitioners", "services", "patients", "contacts", "appointments"):
        rows = workspace.v1.get(f"{url}/{resource}", params={"include_archived": "true"}, timeout=5).json()["data"]
        assert rows, resource
        for row in rows:
            assert workspace.v1.get(f"{url}/{resource}/{row['id']}", timeout=5).status_code == 200
    workspace.v1.get(f"{url}/availabilities/{ann}", params={"startDate": "2024-07-01", "endDate": "2024-08-01"})


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


def test_the_contract_check_reads_patterns_and_formats_to_the_end_of_the_string():
    """The spec's ``pattern`` is ECMA-262 (``$`` is the end of the string) and an email is one address."""
    slot = {"date": "2024-01-04", "locationId": 1, "startTime": "09:00", "endTime": "10:00", "repeatInterval": None}
    hours = {"method": "GET", "path_template": "/availabilities/{practitionerId}", "status": 200}
    assert violations({**hours, "body": {"data": [slot]}}) == []
    for field, value in (("startTime", "09:00\n"), ("endTime", "9:00"), ("startTime", "x09:00")):
        assert violations({**hours, "body": {"data": [{**slot, field: value}]}}), (field, value)
    practitioner = {
        **dict.fromkeys(["title", "profession", "description", "deletedAt"]),
        **{"id": 1, "firstname": "A", "lastname": "B", "roleName": "Practitioner"},
        **{"connections": [], "providerNumbers": []},
    }
    record = {"method": "GET", "path_template": "/practitioners/{id}", "status": 200}  # its email: format email
    assert violations({**record, "body": {**practitioner, "email": "a@b.co"}}) == []
    for email in ("a@b.co\n", "a b@c.co", "nobody"):
        assert violations({**record, "body": {**practitioner, "email": email}}) == [
            f"GET /practitioners/{{id}}: email: {email!r} is not a 'email'"
        ]
