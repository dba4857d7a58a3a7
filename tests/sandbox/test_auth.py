"""Who may call the sandbox's /v1 API: keys, shards, User-Agent, Accept and role permissions."""

from __future__ import annotations

import pytest


def test_admin_key_reads_patients(api):
    response = api.get("/v1/patients")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("role", ["revoked", "other_shard"])
def test_revoked_and_other_shard_keys_are_refused_like_bad_keys(api, role):
    response = api.get("/v1/patients", role=role)
    assert response.status_code == 401
    assert response.text == "HTTP Basic: Access denied."
    assert response.headers["content-type"].startswith("text/plain")


def test_missing_and_unknown_keys_are_refused(api):
    missing = api.session.get(f"{api.url}/v1/patients", headers={"User-Agent": "x (a@b.co)"})
    assert (missing.status_code, missing.text) == (401, "HTTP Basic: Access denied.")
    assert api.get("/v1/patients", key="not-a-key-au1").status_code == 401


def test_bare_key_and_shard_path_both_work(api):
    bare = api.keys["admin"].rsplit("-", 1)[0]
    assert api.get("/v1/user", key=bare).status_code == 200
    assert api.get("/au1/v1/user").status_code == 200
    own = api.get("/au1/v1/patients?per_page=1").json()
    assert own["links"]["self"].startswith(f"{api.url}/au1/v1/patients")


def test_a_key_is_refused_on_another_shards_base(api):
    assert api.get("/uk1/v1/user").status_code == 401
    assert api.get("/uk1/v1/user", key=api.keys["admin"].rsplit("-", 1)[0]).status_code == 401


def test_user_endpoint_is_the_keys_own_user(api):
    assert api.get("/v1/user").json()["role"] == "administrator"
    assert api.get("/v1/user", role="receptionist").json()["role"] == "receptionist"
    assert api.get("/v1/user", role="practitioner").json()["role"] == "practitioner"


@pytest.mark.parametrize("agent", ["", "python-requests/2.32", "No email (not-an-email)"])
def test_user_agent_without_a_contact_email_is_forbidden(api, agent):
    response = api.get("/v1/patients", headers={"User-Agent": agent})
    assert response.status_code == 403
    assert "User-Agent" in response.json()["message"]


@pytest.mark.parametrize(
    "path", ["/v1/treatment_notes", "/v1/treatment_note_templates", "/v1/patient_attachments", "/v1/settings"]
)
def test_receptionist_may_not_read_clinical_resources(api, path):
    response = api.get(path, role="receptionist")
    assert response.status_code == 403
    assert "message" in response.json()


def test_receptionist_reads_everything_else(api):
    for path in ("/v1/patients", "/v1/individual_appointments", "/v1/settings/public", "/v1/contacts"):
        assert api.get(path, role="receptionist").status_code == 200, path


def test_receptionist_cannot_reach_attachments_through_a_patient(api):
    patient = api.get("/v1/patients?per_page=1").json()["patients"][0]["id"]
    assert api.get(f"/v1/patients/{patient}/patient_attachments", role="receptionist").status_code == 403


@pytest.mark.parametrize(("accept", "status"), [("text/html", 406), ("*/*", 200), ("application/json", 200)])
def test_accept_must_allow_json(api, accept, status):
    assert api.get("/v1/patients", headers={"Accept": accept}).status_code == status
