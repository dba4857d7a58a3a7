"""Collections as Cliniko documents them: envelope, links, paging, q[] filters, sorting, hidden rows."""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qsl, urlsplit

import pytest

from sandbox.cliniko.api import list_routes
from sandbox.cliniko.envelopes import MAIN_ROUTES, RATES, quirks_by_route
from sandbox.cliniko.schema import RESOURCES
from tests.sandbox.conftest import new_account

CHECKED_ROUTES = [
    f"/v1/{name}"
    for name in (
        "businesses",
        "users",
        "practitioners",
        "patients",
        "contacts",
        "individual_appointments",
        "attendees",
        "patient_attachments",
        "treatment_notes",
    )
]


def test_envelopes_show_the_account_quirks_and_next_always_keeps_the_query(api):
    quirks = api.quirks()
    query = [("q[]", "updated_at:>2000-01-01T00:00:00Z"), ("sort", "updated_at"), ("per_page", "2")]
    for route in CHECKED_ROUTES:
        body = api.get(route, query).json()
        count_key = "total_entires" if route in quirks["total_entires"] else "total_entries"
        assert set(body) == {route.rsplit("/", 1)[1], count_key, "links"}, route
        assert isinstance(body[count_key], str if route in quirks["total_as_string"] else int), route
        assert int(body[count_key]) > 2, route
        assert "previous" not in body["links"]
        self_link, next_link = (urlsplit(body["links"][name]) for name in ("self", "next"))
        for link in (self_link, next_link):
            assert (f"{link.scheme}://{link.netloc}", link.path) == (api.url, route)
        if route in quirks["bare_self"]:
            assert parse_qsl(self_link.query) == [("page", "1")], route
        else:
            assert set(query) <= set(parse_qsl(self_link.query)), route
        assert set(query) | {("page", "2")} <= set(parse_qsl(next_link.query)), route


def test_every_account_shows_each_quirk_somewhere_deterministically(api):
    routes = list_routes()
    shown = Counter()
    seeds = range(1, 41)
    for seed in seeds:
        quirks = quirks_by_route(seed, "realistic", routes)
        assert quirks == quirks_by_route(seed, "realistic", routes)
        assert all(set(quirks[quirk]) & set(MAIN_ROUTES) for quirk in RATES), seed
        shown.update({quirk: len(quirks[quirk]) for quirk in RATES})
    for quirk, rate in RATES.items():
        assert 0.8 <= shown[quirk] / (rate * len(routes) * len(seeds)) <= 1.3, quirk
    assert quirks_by_route(1, "realistic", routes) != quirks_by_route(2, "realistic", routes)
    assert all(len(r) == len(routes) for r in quirks_by_route(1, "every_quirk", routes).values())
    assert not any(quirks_by_route(1, "none", routes).values())
    assert api.quirks() == quirks_by_route(api.admin_get("accounts/main")["seed"], "realistic", routes)


def test_every_quirk_mode_on_every_route(api):
    hostile = new_account(api, envelopes="every_quirk")
    for route in ("/v1/patients", "/v1/patients/archived", "/v1/individual_appointments/cancelled"):
        body = hostile.get(route, [("q[]", "created_at:>2000-01-01T00:00:00Z"), ("per_page", "1")]).json()
        assert "total_entries" not in body and isinstance(body["total_entires"], str)
        assert parse_qsl(urlsplit(body["links"]["self"]).query) == [("page", "1")]
        assert ("q[]", "created_at:>2000-01-01T00:00:00Z") in parse_qsl(urlsplit(body["links"]["next"]).query)


def test_last_page_has_previous_but_no_next(api):
    total = api.total("/v1/patients")
    last = -(-total // 10)
    body = api.get("/v1/patients", {"per_page": 10, "page": last}).json()
    assert "next" not in body["links"]
    assert ("page", str(last - 1)) in parse_qsl(urlsplit(body["links"]["previous"]).query)
    assert len(body["patients"]) == total - (last - 1) * 10


def test_paging_visits_every_record_once(api):
    ids = [p["id"] for p in api.items("/v1/individual_appointments")]
    assert len(ids) == len(set(ids)) == api.total("/v1/individual_appointments")


def test_empty_list_shape(api):
    plain = new_account(api, envelopes="none")
    body = plain.get("/v1/patients", {"q[]": "first_name:=Nobody-by-this-name"}).json()
    assert body == {"patients": [], "total_entries": 0, "links": {"self": body["links"]["self"]}}


@pytest.mark.parametrize("per_page", ["0", "101", "many"])
def test_per_page_outside_1_to_100_is_a_bad_request(api, per_page):
    response = api.get("/v1/patients", {"per_page": per_page})
    assert response.status_code == 400
    assert "per_page" in response.json()["message"]


def test_per_page_defaults_to_50_and_allows_100(api):
    assert len(api.get("/v1/individual_appointments").json()["individual_appointments"]) == 50
    assert len(api.get("/v1/individual_appointments", {"per_page": 100}).json()["individual_appointments"]) == 100


def test_updated_at_filter_returns_only_newer_records(api):
    everything = api.items("/v1/individual_appointments")
    cutoff = sorted(a["updated_at"] for a in everything)[len(everything) // 2]
    newer = api.items("/v1/individual_appointments", [("q[]", f"updated_at:>{cutoff}")])
    assert {a["id"] for a in newer} == {a["id"] for a in everything if a["updated_at"] > cutoff}
    assert newer


def test_archived_filters_show_archived_patients(api):
    truth = api.truth()["patients"]
    assert api.total("/v1/patients") == truth["active"]
    assert (
        api.total("/v1/patients", [("q[]", "archived_at:*")]) == truth["active"] + truth["archived"] + truth["merged"]
    )
    archived = api.items("/v1/patients", [("q[]", "archived_at:?")])
    assert len(archived) == truth["archived"] + truth["merged"]
    assert all(p["archived_at"] for p in archived)
    merged = [p for p in archived if p["merged_at"]]
    assert merged and all(p["merged_with_patient"]["links"]["self"] for p in merged)
    assert api.total("/v1/patients/archived") == len(archived)


def test_id_equals_accepts_a_list(api):
    ids = [str(p["id"]) for p in api.get("/v1/patients", {"per_page": 5}).json()["patients"]]
    chosen = ids[1:4]
    found = api.items("/v1/patients", [("q[]", f"id:={','.join(chosen)}")])
    assert sorted(str(p["id"]) for p in found) == sorted(chosen)


def test_string_contains_and_filters_are_anded(api):
    patients = api.items("/v1/patients")
    name = patients[0]["last_name"]
    fragment = name[1:4]
    found = api.items("/v1/patients", [("q[]", f"last_name:~{fragment}")])
    assert {p["id"] for p in found} == {p["id"] for p in patients if fragment.lower() in p["last_name"].lower()}
    first = patients[0]["first_name"]
    both = api.items("/v1/patients", [("q[]", f"last_name:~{fragment}"), ("q[]", f"first_name:={first}")])
    assert {p["id"] for p in both} == {p["id"] for p in found if p["first_name"] == first}


def test_plain_q_only_obeys_the_last_one(api):
    first = api.get("/v1/patients", {"per_page": 1}).json()["patients"][0]
    params = [("q", "id:=1"), ("q", f"id:={first['id']}")]
    assert [p["id"] for p in api.get("/v1/patients", params).json()["patients"]] == [first["id"]]


@pytest.mark.parametrize(
    "bad", ["favourite_colour:=blue", "updated_at:=2024-01-01T00:00:00Z", "id:~1", "updated_at:>soon"]
)
def test_unknown_fields_and_bad_operators_are_bad_requests(api, bad):
    response = api.get("/v1/patients", {"q[]": bad})
    assert response.status_code == 400
    assert response.json()["message"]


def test_sort_with_directions_and_integer_id_tiebreak(api):
    desc = api.items("/v1/individual_appointments", [("sort", "starts_at:desc")])
    starts = [a["starts_at"] for a in desc]
    assert starts == sorted(starts, reverse=True)
    default = api.items("/v1/individual_appointments")
    keys = [(a["created_at"], int(a["id"])) for a in default]
    assert keys == sorted(keys)
    by_id = api.items("/v1/individual_appointments", [("sort", "id")])
    assert [int(a["id"]) for a in by_id] == sorted(int(a["id"]) for a in by_id)
    two = api.items("/v1/individual_appointments", [("sort", "practitioner_id,starts_at:desc")])
    pairs = [(a["practitioner"]["links"]["self"].rsplit("/", 1)[1], a["starts_at"]) for a in two]
    assert pairs == sorted(pairs, key=lambda p: (int(p[0]), [-ord(c) for c in p[1]]))


def test_order_desc_is_still_accepted(api):
    rows = api.get("/v1/patients", {"order": "desc", "per_page": 100}).json()["patients"]
    assert [p["created_at"] for p in rows] == sorted((p["created_at"] for p in rows), reverse=True)


def test_cancelled_appointments_are_hidden_unless_asked_for(api):
    truth = api.truth()["individual_appointments"]
    visible = truth["booked"] + truth["arrived"] + truth["did_not_arrive"]
    assert api.total("/v1/individual_appointments") == visible
    assert api.total("/v1/individual_appointments", [("q[]", "cancelled_at:*")]) == visible + truth["cancelled"]
    cancelled = api.items("/v1/individual_appointments/cancelled")
    assert len(cancelled) == truth["cancelled"]
    assert {a["cancellation_reason"] for a in cancelled} >= {10, 20, 30, 31, 40, 50, 60}
    assert all(a["cancelled_at"] and a["cancellation_reason_description"] for a in cancelled)
    assert api.total("/v1/individual_appointments", [("q[]", "cancelled_at:?")]) == truth["cancelled"]


def test_deleted_records_only_in_deleted_routes(api):
    truth = api.truth()
    stubs = api.items("/v1/patients/deleted")
    assert len(stubs) == truth["patients"]["deleted"]
    assert all(set(s) == {"deleted_at", "links"} and s["deleted_at"] for s in stubs)
    for resource in (
        "individual_appointments",
        "group_appointments",
        "attendees",
        "treatment_notes",
        "treatment_note_templates",
    ):
        deleted = api.items(f"/v1/{resource}/deleted")
        assert len(deleted) == truth[resource]["deleted"], resource
        assert all(r["deleted_at"] and r["id"] for r in deleted)
        live = {
            r["id"]
            for r in api.items(
                f"/v1/{resource}",
                [("q[]", "archived_at:*")]
                if resource in ("individual_appointments", "group_appointments", "attendees", "treatment_notes")
                else [],
            )
        }
        assert not live & {r["id"] for r in deleted}


def test_get_by_id_hides_archived_and_deleted(api):
    archived = api.items("/v1/patients", [("q[]", "archived_at:?")])[0]
    assert api.get(f"/v1/patients/{archived['id']}").status_code == 404
    assert api.get(f"/v1/patients/{archived['id']}", {"q[]": "archived_at:*"}).json()["id"] == archived["id"]
    deleted = api.items("/v1/patients/deleted")[0]["links"]["self"]
    assert api.get(deleted).status_code == 404
    assert api.get("/v1/patients/123").json() == {"message": "Not found"}


def test_inactive_practitioners_have_their_own_route(api):
    truth = api.truth()["practitioners"]
    active = api.items("/v1/practitioners")
    inactive = api.items("/v1/practitioners/inactive")
    assert (len(active), len(inactive)) == (truth["active"], truth["inactive"])
    assert all(p["active"] for p in active) and not any(p["active"] for p in inactive)


def test_ids_are_strings_of_mixed_lengths(api):
    ids = [a["id"] for a in api.items("/v1/individual_appointments")]
    assert all(isinstance(i, str) and i.isdigit() for i in ids)
    lengths = {len(i) for i in ids}
    assert min(lengths) <= 9 and max(lengths) == 19


def test_bookings_mix_both_appointment_kinds_in_one_id_space(api):
    individual = {a["id"] for a in api.items("/v1/individual_appointments")}
    group = {g["id"] for g in api.items("/v1/group_appointments")}
    assert not individual & group
    bookings = {b["id"] for b in api.items("/v1/bookings")}
    assert bookings == individual | group
    one_group = next(iter(group))
    assert api.get(f"/v1/bookings/{one_group}").json()["id"] == one_group


def test_nested_routes_filter_by_parent(api):
    group = api.items("/v1/group_appointments")[0]
    attendees = api.items(group["attendees"]["links"]["self"])
    assert attendees and all(a["booking"]["links"]["self"].endswith(f"/bookings/{group['id']}") for a in attendees)
    practitioner = api.items("/v1/practitioners")[0]
    numbers = api.items(f"/v1/practitioners/{practitioner['id']}/practitioner_reference_numbers")
    assert numbers and all(n["practitioner"]["links"]["self"] == practitioner["links"]["self"] for n in numbers)
    business = api.items("/v1/businesses")[0]
    assert api.items(f"/v1/businesses/{business['id']}/practitioners")


def test_every_resource_lists_and_fetches_by_id(api):
    for resource in RESOURCES:
        first = api.get(f"/v1/{resource}", {"per_page": 1}).json()[resource][0]
        assert first["links"]["self"] == f"{api.url}/v1/{resource}/{first['id']}"
        assert api.get(first["links"]["self"]).json() == first


def test_date_wildcards_booleans_and_arrays(api):
    patients = api.items("/v1/patients")
    may = api.items("/v1/patients", [("q[]", "date_of_birth:=****-05-**")])
    assert {p["id"] for p in may} == {p["id"] for p in patients if (p["date_of_birth"] or "")[5:7] == "05"}
    no_birthday = api.items("/v1/patients", [("q[]", "date_of_birth:!?")])
    assert {p["id"] for p in no_birthday} == {p["id"] for p in patients if p["date_of_birth"] is None}
    drafts = api.items("/v1/treatment_notes", [("q[]", "draft:=true")])
    assert drafts and all(n["draft"] for n in drafts)
    group = api.items("/v1/group_appointments")[0]
    patient = group["patient_ids"][0]
    with_patient = api.items("/v1/group_appointments", [("q[]", f"patient_ids:~{patient}")])
    assert group["id"] in {g["id"] for g in with_patient}
    assert all(patient in g["patient_ids"] for g in with_patient)
    booked = {b["id"] for b in api.items("/v1/bookings", [("q[]", f"patient_ids:~{patient}")])}
    assert group["id"] in booked


def test_filters_a_resource_does_not_document_are_refused(api):
    response = api.get("/v1/daily_availabilities", {"q[]": "archived_at:*"})
    assert response.status_code == 400
    assert "archived_at" in response.json()["message"]
