"""``/settings`` with its role rules, and records the list routes do not return: what a client meets."""

from __future__ import annotations

from cliniko_assets.timezones import iana_zone


def test_settings_are_for_roles_that_can_view_settings_and_public_settings_for_everyone(api):
    full = api.get("/v1/settings")
    assert full.status_code == 200
    account = full.json()["account"]
    assert iana_zone(account["time_zone"]) and account["country"] == "Australia"
    assert {"email_from", "admin"} <= set(account)
    assert full.json()["links"]["self"] == f"{api.url}/v1/settings"
    for role in ("receptionist", "practitioner"):
        assert api.get("/v1/settings", role=role).status_code == 403, role
        public = api.get("/v1/settings/public", role=role)
        assert public.status_code == 200
        assert public.json()["account"]["time_zone"] == account["time_zone"]
        assert not {"email_from", "admin"} & set(public.json()["account"])
        assert "adroll" not in public.json()["online_bookings"]
        assert public.json()["links"]["self"] == f"{api.url}/v1/settings/public"


def test_settings_can_be_patched_for_tests(fresh_account):
    fresh_account.admin_post(f"accounts/{fresh_account.account}/settings", {"account": {"time_zone": None}})
    account = fresh_account.get("/v1/settings").json()["account"]
    assert account["time_zone"] is None and account["country"] == "Australia"


def test_the_admin_api_reads_the_settings_without_spending_the_keys_budget(fresh_account):
    label = f"{fresh_account.account}/admin"
    before = fresh_account.admin_get("stats")["keys"].get(label, {}).get("total", 0)
    read = fresh_account.admin_get(f"accounts/{fresh_account.account}/settings")
    assert fresh_account.admin_get("stats")["keys"].get(label, {}).get("total", 0) == before
    served = fresh_account.get("/v1/settings").json()
    assert read["account"] == served["account"] and read["account"]["country"] == "Australia"
    assert fresh_account.admin_get("stats")["keys"][label]["total"] == before + 1


def test_a_practitioner_no_list_returns_is_still_there_by_id(api):
    truth = api.truth()["practitioners"]
    listed = {str(p["id"]) for p in api.items("/v1/practitioners") + api.items("/v1/practitioners/inactive")}
    unlisted = [p for p in api.export("practitioners") if p.get("_unlisted")]
    assert truth["unlisted"] == len(unlisted) == 1
    (practitioner,) = unlisted
    assert str(practitioner["id"]) not in listed
    by_id = api.get(practitioner["links"]["self"])
    assert by_id.status_code == 200 and by_id.json()["id"] == practitioner["id"]


def test_deleted_types_businesses_and_practitioners_answer_404_even_with_the_archived_filter(api):
    for resource, link in (
        ("appointment_types", "appointment_type"),
        ("businesses", "business"),
        ("practitioners", "practitioner"),
    ):
        assert api.truth()[resource]["missing"] == 1, resource
        (gone,) = [r for r in api.export(resource) if r.get("deleted_at")]
        assert api.get(f"/v1/{resource}/{gone['id']}", {"q[]": "archived_at:*"}).status_code == 404
        everything = api.items(f"/v1/{resource}", [("q[]", "archived_at:*")] if resource != "practitioners" else [])
        assert str(gone["id"]) not in {str(r["id"]) for r in everything}
        pointing = [
            a for a in api.items("/v1/individual_appointments") if a[link]["links"]["self"].endswith(f"/{gone['id']}")
        ]
        assert pointing, resource
