"""Cliniko's few write routes the sandbox mirrors, and the old /appointments routes."""

from __future__ import annotations

USER_AGENT = {"User-Agent": "Sandbox tests (sandbox-tests@example.com)"}


def send(api, method: str, path: str, body: dict | None = None):
    return api.session.request(
        method, f"{api.url}{path}", json=body, auth=(api.keys["admin"], ""), headers=USER_AGENT, timeout=30
    )


def test_patch_archive_and_cancel(fresh_account):
    api = fresh_account
    patient = api.items("/v1/patients")[0]
    patched = send(api, "PATCH", f"/v1/patients/{patient['id']}", {"notes": "Moved to Perth"})
    assert patched.status_code == 200
    assert patched.json()["notes"] == "Moved to Perth" and patched.json()["updated_at"] > patient["updated_at"]

    assert send(api, "POST", f"/v1/patients/{patient['id']}/archive").status_code == 204
    assert api.get(f"/v1/patients/{patient['id']}").status_code == 404
    assert patient["id"] in {p["id"] for p in api.items("/v1/patients/archived")}
    assert send(api, "POST", f"/v1/patients/{patient['id']}/unarchive").json()["archived_at"] is None

    appointment = api.items("/v1/individual_appointments")[0]
    cancel = {"cancellation_reason": 40, "cancellation_note": "Away"}
    assert send(api, "PATCH", f"/v1/individual_appointments/{appointment['id']}/cancel", cancel).status_code == 204
    cancelled = api.get(f"/v1/individual_appointments/{appointment['id']}").json()
    assert (cancelled["cancellation_reason"], cancelled["cancellation_note"]) == (40, "Away")
    assert cancelled["cancelled_at"]


def test_old_appointments_routes(api):
    modern = api.items("/v1/individual_appointments")
    old = api.items("/v1/appointments")
    assert [a["id"] for a in old] == [a["id"] for a in modern]
    first = old[0]
    assert first["appointment_start"] == modern[0]["starts_at"] and "starts_at" not in first
    assert first["links"]["self"] == f"{api.url}/v1/appointments/{first['id']}"
    assert api.get(first["links"]["self"]).json() == first
    assert len(api.items("/v1/appointments/cancelled")) == api.truth()["individual_appointments"]["cancelled"]
    patient = modern[0]["patient"]["links"]["self"]
    mine = api.items(f"{patient}/appointments")
    assert mine and all(a["patient"]["links"]["self"] == patient for a in mine)
    late = api.items("/v1/appointments", [("q[]", f"appointment_start:>={first['appointment_start']}")])
    assert first["id"] in {a["id"] for a in late}
