"""The mapping's resolution: references the list routes did not return never fail it; zones and regions."""

from __future__ import annotations

from typing import Any

from cliniko_assets.mapping import CREATE, ImportMapping, Usage
from cliniko_assets.mapping_check import mapped_ids, unmapped_listed
from cliniko_assets.mapping_resolution import business_zone, clinic_region, resolve_mapping
from cliniko_assets.mapping_rows import service_for_type, unknown_type_service

BASE = "https://api.au1.cliniko.com/v1"
LOCATIONS = [{"id": 11, "title": "Healthy Times"}, {"id": 12, "title": "Old", "archived": True}]
PEOPLE = [{"id": 55, "email": "john@example.com"}, {"id": 56, "email": "andy@example.com"}]
SERVICES = [{"id": 77, "name": "Initial Consultation"}, {"id": 78, "name": "Unknown types"}]


def link(path: str) -> dict[str, Any]:
    return {"links": {"self": f"{BASE}/{path}"}}


def usage(*records: dict[str, Any]) -> Usage:
    found = Usage()
    for record in records:
        found.add(record)
    return found


def booking(business: str, practitioner: str, appointment_type: str, minutes: int = 45, **fields: Any) -> dict:
    return {
        "starts_at": "2016-07-21T03:45:00Z",
        "ends_at": f"2016-07-21T{3 + (45 + minutes) // 60:02d}:{(45 + minutes) % 60:02d}:00Z",
        "business": link(f"businesses/{business}"),
        "practitioner": link(f"practitioners/{practitioner}"),
        "appointment_type": link(f"appointment_types/{appointment_type}"),
        **fields,
    }


BUSINESSES = [
    {"id": "514810976554457178", "business_name": "Healthy Times", "country": "Australia", "_state": "active"},
    {"id": "3", "links": {"self": f"{BASE}/businesses/3"}, "_state": "missing"},
]
PRACTITIONERS = [
    {"id": "514810972972521916", "first_name": "Randy", "user": link("users/1"), "_state": "active"},
    {"id": "456", "first_name": "Natasha", "user": link("users/9"), "_state": "unlisted"},
]
TYPES = [
    {"id": "514810976034364376", "name": "Initial Consultation", "duration_in_minutes": 60, "_state": "active"},
    {"id": "2", "links": {"self": f"{BASE}/appointment_types/2"}, "_state": "missing"},
]


def resolve(mapping: dict[str, dict[str, str]], *records: dict, **kwargs: Any):
    return resolve_mapping(
        ImportMapping(**mapping),
        businesses=BUSINESSES,
        users=[{"id": 1, "email": "john@example.com"}],
        practitioners=PRACTITIONERS,
        appointment_types=TYPES,
        usage=usage(*records),
        splose_locations=LOCATIONS,
        splose_practitioners=PEOPLE,
        splose_services=SERVICES,
        **kwargs,
    )


LISTED = {
    "locations": {"514810976554457178": "11"},
    "practitioners": {"514810972972521916": "55"},
    "services": {"514810976034364376": "77"},
}
DANGLING = (
    booking("3", "456", "2", minutes=30),
    booking("3", "456", "2", minutes=30),
    booking("1", "1", "7", max_attendees=13),
)


def test_references_the_lists_did_not_return_never_fail_the_mapping() -> None:
    resolved = resolve(LISTED, *DANGLING)
    assert resolved.problems == []
    assert {kind: sorted(ids) for kind, ids in resolved.unresolved.items()} == {
        "business": ["1", "3"],
        "practitioner": ["1", "456"],
    }
    assert resolved.not_listed == {
        "business": {"3": "missing", "1": "missing"},
        "practitioner": {"456": "unlisted", "1": "missing"},
        "appointment type": {"2": "missing", "7": "missing"},
    }
    # By default each type Cliniko no longer lists gets a service of its own.
    assert sorted(resolved.services_to_create) == ["2", "7"]
    assert resolved.proposals["locations"]["3"] == "ignore" and resolved.proposals["services"]["2"] == CREATE


def test_dangling_ids_are_mapped_like_any_other() -> None:
    mapping = {
        "locations": {**LISTED["locations"], "3": "11", "1": "ignore"},
        "practitioners": {**LISTED["practitioners"], "456": "56", "1": "55"},
        "services": {**LISTED["services"], "2": "77", "7": "ignore"},
    }
    resolved = resolve(mapping, *DANGLING)
    assert resolved.problems == [] and resolved.unresolved == {}
    assert resolved.locations == {"514810976554457178": 11, "3": 11, "1": None}
    assert resolved.practitioners == {"514810972972521916": 55, "456": 56, "1": 55}
    assert (resolved.services, resolved.services_ignored) == ({"514810976034364376": 77, "2": 77}, ["7"])


def test_the_unknown_key_sends_every_unknown_type_to_one_service() -> None:
    to_existing = resolve({**LISTED, "services": {**LISTED["services"], "unknown": "78"}}, *DANGLING)
    assert {tid: to_existing.services[tid] for tid in ("2", "7")} == {"2": 78, "7": 78}
    shared = resolve({**LISTED, "services": {**LISTED["services"], "unknown": "create"}}, *DANGLING)
    assert (shared.services_to_unknown, shared.services_to_create) == (["2", "7"], [])
    ignored = resolve({**LISTED, "services": {**LISTED["services"], "unknown": "ignore"}}, *DANGLING)
    assert ignored.services_ignored == ["2", "7"]
    wrong = resolve({**LISTED, "services": {**LISTED["services"], "unknown": "999"}}, *DANGLING)
    assert [p.line() for p in wrong.problems] == [
        "- setting 'unknown or deleted appointment types' (Cliniko id unknown): mapped to service 999, which the "
        "Splose workspace does not have"
    ]


def test_a_listed_record_with_data_still_has_to_be_mapped() -> None:
    resolved = resolve({}, booking("514810976554457178", "514810972972521916", "514810976034364376"))
    assert sorted(p.cliniko_id for p in resolved.problems) == [
        "514810972972521916",
        "514810976034364376",
        "514810976554457178",
    ]


def test_the_mapping_check_asks_only_about_the_listed_items_left_unmapped_and_checks_every_entry() -> None:
    records = {"businesses": BUSINESSES, "practitioners": PRACTITIONERS, "appointment_types": TYPES, "users": []}
    mapping = ImportMapping(practitioners={"514810972972521916": "55"}, services={"2": "create", "unknown": "ignore"})
    assert unmapped_listed(records, mapping) == {
        "businesses": {"514810976554457178"},  # the missing business 3 is no list's: never asked about
        "practitioners": set(),  # Natasha (456) is unlisted
        "appointment_types": {"514810976034364376"},
    }
    through_user = ImportMapping(users={"1": "55"})
    assert unmapped_listed(records, through_user)["practitioners"] == set()  # Randy, through his user
    # Every entry of the mapping is checked against the workspace, listed by Cliniko or not, used or not.
    wrong = ImportMapping(locations={"3": "99"}, practitioners={"456": "55"}, services={"2": "create"})
    resolved = resolve_mapping(
        wrong,
        businesses=BUSINESSES[:1],
        users=[],
        practitioners=PRACTITIONERS[:1],
        appointment_types=TYPES[:1],
        usage=mapped_ids(wrong),
        splose_locations=LOCATIONS,
        splose_practitioners=PEOPLE,
        splose_services=SERVICES,
    )
    assert [(p.kind, p.cliniko_id) for p in resolved.problems] == [("business", "3")]


def test_a_problem_found_after_the_check_says_what_may_already_be_written() -> None:
    resolved = resolve({}, booking("514810976554457178", "514810972972521916", "514810976034364376"))
    assert "Nothing was written." in resolved.failure_message("clinic-a")
    late = resolved.failure_message("clinic-a", checked_before=True)
    assert "Nothing was written." not in late and "contacts and clients may have been" in late


def test_services_for_deleted_types_are_shaped_like_their_appointments() -> None:
    found = usage(*DANGLING)
    stub = {"id": "2", "_state": "missing"}
    assert service_for_type(stub, found) == {
        "externalId": "2",
        "name": "Deleted appointment type 2",
        "description": "Cliniko appointment type 2, which Cliniko no longer has; its appointments point at it.",
        "duration": 30,
        "color": None,
        "maxPatients": 1,
        "archived": True,
        "category": None,
    }
    assert service_for_type({"id": "7", "_state": "missing"}, found)["maxPatients"] == 13
    shared = unknown_type_service(found, ["2", "7"])
    assert (shared["externalId"], shared["duration"], shared["maxPatients"]) == ("unknown", 30, 13)
    assert service_for_type(TYPES[0], found)["name"] == "Initial Consultation"


def test_zones_come_from_the_identifier_then_the_label_then_the_account() -> None:
    assert business_zone({"time_zone_identifier": "Australia/Perth", "time_zone": "Sydney"}, "Hawaii") == (
        "Australia/Perth",
        "time_zone_identifier",
    )
    assert business_zone({"time_zone_identifier": None, "time_zone": "Sydney"}, "Hawaii") == (
        "Australia/Sydney",
        "time_zone",
    )
    assert business_zone({}, "Eastern Time (US & Canada)") == ("America/New_York", "account")
    assert business_zone({"time_zone": "Gondor"}, None) == (None, "unknown")
    resolved = resolve(LISTED, *DANGLING, account_time_zone="Eastern Time (US & Canada)")
    assert resolved.business_time_zones == {
        "514810976554457178": "America/New_York",
        "3": "America/New_York",
        "1": "America/New_York",
    }
    assert resolved.time_zones_by_source() == {"account": 3}
    assert resolve(LISTED, *DANGLING).business_time_zones == {}


def test_the_clinics_region_is_its_businesses_country_else_the_accounts() -> None:
    assert clinic_region(BUSINESSES, "United States") == "AU"
    assert clinic_region([{"country": "New Zealand"}, {"country_code": "AU"}, {"country_code": "NZ"}], None) == "NZ"
    assert clinic_region([BUSINESSES[1]], "United States") == "US"
    assert resolve(LISTED, *DANGLING).default_region == "AU"


def test_the_resolution_round_trips_through_its_saved_form_and_gives_the_transforms_their_context() -> None:
    import dataclasses

    from cliniko_assets.mapping import ResolvedMapping

    resolved = resolve(LISTED, *DANGLING, missing={"patients": ["82"]})
    data = dataclasses.asdict(resolved)
    data.pop("problems")
    ctx = ResolvedMapping(**data).context({"clients": frozenset({"1"})})
    assert ctx.unresolved == {"business": frozenset({"1", "3"}), "practitioner": frozenset({"1", "456"})}
    assert (ctx.missing, ctx.default_region) == ({"patients": frozenset({"82"})}, "AU")
