"""Extraction against Cliniko as messy as it is: deletions during the crawl, odd envelopes, wrong counts,
older accounts whose filters leave rows out, and contacts and attachments removed without a trace."""

from __future__ import annotations

import pytest
import requests

from cliniko_assets.catalog import BY_NAME
from cliniko_assets.definitions import cliniko_resource
from tests.conftest import RESOURCES, Clinic, materializations, other_account

APPOINTMENTS = "individual_appointments"
FULL_REFRESH = {"resources": {"extraction": {"config": {"full_refresh": True}}}}
LIVE = {"booked", "arrived", "did_not_arrive", "cancelled", "archived"}


def _offset_crawl(clinic: Clinic, cliniko_url: str, path: str, per_page: int) -> set[str]:
    """What a client that pages by number (following links.next) sees of a route."""
    session = requests.Session()
    session.auth = (clinic.keys["admin"], "")
    session.headers["User-Agent"] = "Paging test (tests@example.com)"
    url: str | None = f"{cliniko_url}/v1{path}"
    params: dict | None = {"q[]": ["archived_at:*", "cancelled_at:*"], "per_page": per_page}
    seen: set[str] = set()
    while url:
        body = session.get(url, params=params, timeout=30).json()
        seen |= {record["id"] for record in body[APPOINTMENTS]}
        url, params = body["links"].get("next"), None
    return seen


def test_records_deleted_while_the_crawl_runs_never_hide_a_live_record(clinic, instance, cliniko_sandbox, monkeypatch):
    churn = {"resource": APPOINTMENTS, "every": 2, "deletes": 3, "limit": 45}
    # The same churn against a client that pages by offset: it loses live records without a sign.
    naive = other_account(clinic, instance, monkeypatch, "naive")
    naive.admin.churn(naive.account, **churn)
    seen = _offset_crawl(naive, cliniko_sandbox.url, f"/{APPOINTMENTS}", per_page=10)
    live = {rid for rid, r in naive.export(APPOINTMENTS).items() if not r.get("deleted_at")}
    assert live - seen, "the churn did not move any record past an offset crawl"

    clinic.admin.churn(clinic.account, **churn)
    result = clinic.extract(instance, cliniko=cliniko_resource(page_size=10), selection=[APPOINTMENTS])

    staged = clinic.staged_records(APPOINTMENTS)
    exported = clinic.export(APPOINTMENTS)
    live = {rid for rid, r in exported.items() if not r.get("deleted_at")}
    assert live <= {rid for rid, (state, _) in staged.items() if state in LIVE}
    churned = set(clinic.admin.churned(clinic.account))
    assert len(churned) >= 30  # most of them while the list was read
    assert {rid for rid, (state, _) in staged.items() if state == "deleted"} >= churned
    assert clinic.staged_states(APPOINTMENTS) == clinic.truth()[APPOINTMENTS]
    meta = materializations(result)[APPOINTMENTS]
    assert meta["shortfall"] == 0
    # Parallel id windows, not one page at a time: 30 pages of 10 cost only a few requests more.
    assert meta["requests"] <= 30 + 12


def test_quirky_envelopes_on_every_route_change_nothing(clinic, instance, monkeypatch):
    hostile = other_account(clinic, instance, monkeypatch, "hostile", envelopes="every_quirk")
    body = requests.get(
        f"{hostile.admin.url}/v1/patients",
        params={"q[]": "archived_at:*", "per_page": 2},
        auth=(hostile.keys["admin"], ""),
        headers={"User-Agent": "Paging test (tests@example.com)"},
        timeout=30,
    ).json()
    assert body["links"]["self"].endswith("/v1/patients?page=1") and isinstance(body["total_entires"], str)

    metadata = materializations(hostile.extract(instance, cliniko=cliniko_resource(page_size=7)))

    truth = hostile.truth()
    for resource in RESOURCES:
        assert hostile.staged_states(resource) == truth[resource], resource
        assert metadata[resource]["shortfall"] == 0, resource


def test_wrong_counts_never_size_the_crawl_and_are_reported(clinic, instance):
    cliniko = cliniko_resource()  # both runs within one budget window
    clean = materializations(clinic.extract(instance, cliniko=cliniko))
    clinic.admin.configure(faults={"wrong_total_rate": 1.0}, fault_seed=3)
    try:
        result = clinic.extract(instance, cliniko=cliniko, run_config=FULL_REFRESH)
    finally:
        clinic.admin.clear_faults()
    wrong = materializations(result)
    truth = clinic.truth()
    for resource in RESOURCES:
        assert clinic.staged_states(resource) == truth[resource], resource
        assert wrong[resource]["shortfall"] > 10**17, resource  # Cliniko's count, reported as it came
        routes = len(BY_NAME[resource].streams)
        # At most a few sample pages and one recount per route more than with true counts.
        assert wrong[resource]["requests"] <= clean[resource]["requests"] + 7 * routes, resource
    logged = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
    assert "Cliniko counts" in logged and "more record(s) in /individual_appointments than it listed" in logged


def test_an_older_account_stages_the_same_records_as_a_newer_one(clinic, instance, monkeypatch):
    older = other_account(clinic, instance, monkeypatch, "older", legacy_filters=True)
    older_meta = materializations(older.extract(instance))
    newer_meta = materializations(clinic.extract(instance))

    truth = clinic.truth()
    for resource in RESOURCES:
        assert older.staged_states(resource) == clinic.staged_states(resource) == truth[resource], resource
        assert set(older.staged_records(resource)) == set(clinic.staged_records(resource)), resource
    for resource, route in (
        ("patients", "/patients/archived"),
        ("appointment_types", "/appointment_types/archived"),
        (APPOINTMENTS, "/individual_appointments/cancelled"),
        ("attendees", "/attendees/cancelled"),
    ):
        assert older_meta[resource]["old_routes"][route].startswith("used"), resource
        assert newer_meta[resource]["old_routes"][route].startswith("not needed"), resource
    # Re-synced unchanged, the newer account's main lists return no archived or cancelled row, and what the
    # first sync found still holds: the older routes are not asked for.
    clinic.admin.reset_stats()
    newer_resync = materializations(clinic.extract(instance))
    asked = clinic.admin.requests_by_route(clinic.account)
    older_routes = [s.path for spec in BY_NAME.values() for s in spec.streams if s.fallback_for]
    assert [path for path in asked if path.removeprefix("/v1") in older_routes] == [], dict(asked)
    for resource in ("patients", "appointment_types", APPOINTMENTS, "attendees"):
        if BY_NAME[resource].incremental:  # appointment types are listed in full on every sync
            assert newer_resync[resource]["fetched"] == 0, resource
        detected = set(newer_resync[resource]["old_routes"].values())
        assert detected <= {
            "not needed: the filtered list returned such rows",
            "not needed: the filtered list returned such rows in an earlier sync",
        }, resource

    # A re-sync of the older account finds what was archived and cancelled since, on the older routes.
    patient = next(rid for rid, (state, _) in older.staged_records("patients").items() if state == "active")
    booked = [rid for rid, (state, _) in older.staged_records(APPOINTMENTS).items() if state == "booked"]
    ops = [
        {"op": "archive", "resource": "patients", "id": patient},
        {"op": "cancel", "resource": APPOINTMENTS, "id": booked[0]},
    ]
    older.admin.mutate(older.account, ops=ops)
    resync = materializations(older.extract(instance))
    assert resync["patients"]["mode"] == "incremental"
    assert resync["patients"]["old_routes"]["/patients/archived"].startswith("used")
    assert older.staged_records("patients")[patient][0] == "archived"
    assert older.staged_records(APPOINTMENTS)[booked[0]][0] == "cancelled"
    truth = older.truth()
    assert {r: older.staged_states(r) for r in RESOURCES} == {r: truth[r] for r in RESOURCES}


def test_a_removal_hidden_by_matching_counts_is_found_by_the_periodic_id_listing(clinic, instance):
    every_second_sync = {"resources": {"extraction": {"config": {"id_listing_every": 2}}}}

    def sync() -> dict:
        result = clinic.extract(instance, run_config=every_second_sync, selection=["contacts"])
        return materializations(result)["contacts"]

    first = sync()
    assert (first["id_listing"], first["syncs_since_id_listing"]) == ("listed in full", 0)
    removed = next(rid for rid, (state, _) in clinic.staged_records("contacts").items() if state == "active")
    # One contact removed, one added that an incremental sync cannot see: Cliniko's count still matches.
    ops = [
        {"op": "delete", "resource": "contacts", "id": removed},
        {"op": "create", "resource": "contacts", "fields": {"updated_at": "2015-01-01T00:00:00Z"}},
    ]
    clinic.admin.mutate(clinic.account, ops=ops)

    second = sync()
    assert second["id_listing"].startswith("not needed") and second["syncs_since_id_listing"] == 1
    assert clinic.staged_records("contacts")[removed][0] == "active"

    third = sync()
    assert third["id_listing"].startswith("periodic") and third["syncs_since_id_listing"] == 0
    assert third["vanished_in_cliniko"] == 1 and third["state_deleted"] == 1
    assert clinic.staged_records("contacts")[removed][0] == "deleted"


def test_an_account_without_older_routes_that_refuses_undocumented_filters_is_imported_and_what_it_hides_reported(
    clinic, instance, monkeypatch
):
    newer = other_account(clinic, instance, monkeypatch, "strict", documented_filters=True, no_older_routes=True)
    result = newer.extract(instance, cliniko=cliniko_resource(page_size=3))  # lists of several pages
    metadata = materializations(result)

    truth = newer.truth()
    hidden = {"contacts": {"archived", "deleted"}, "patients": {"deleted"}, "treatment_note_templates": {"deleted"}}
    for resource in RESOURCES:
        expected = {state: n for state, n in truth[resource].items() if state not in hidden.get(resource, ())}
        assert newer.staged_states(resource) == expected, resource
    # Deletions come from the main list filtered on deleted_at where /deleted is gone.
    for resource in (APPOINTMENTS, "group_appointments", "attendees", "treatment_notes"):
        detected = metadata[resource]["old_routes"][f"/{resource}/deleted"]
        assert detected.startswith(f"absent (404): deleted rows listed from /{resource} with q[]=deleted_at:?")
        assert truth[resource]["deleted"] > 0 and "not_detected" not in metadata[resource], resource
    # Archived contacts: /contacts refused archived_at:* (400), listed without it, and reported.
    assert metadata["contacts"]["filters_refused"] == {"/contacts": ["archived_at:*"]}
    assert metadata["contacts"]["not_detected"] == {
        "archived": "archived records cannot be listed: /contacts refused q[]=archived_at:* (400) and Cliniko has "
        "no older route for them"
    }
    # Deleted patients and templates: neither /deleted nor deleted_at: reported, the run does not fail.
    for resource in ("patients", "treatment_note_templates"):
        assert metadata[resource]["not_detected"] == {
            "deleted": f"deletions in Cliniko cannot be detected: /{resource}/deleted is absent (404) and "
            f"/{resource} refused q[]=deleted_at:?"
        }, resource
    for resource, route in (("patients", "/patients/archived"), (APPOINTMENTS, "/individual_appointments/cancelled")):
        assert metadata[resource]["old_routes"][route].startswith("not needed: the filtered list returned"), resource
    # The docs type the id filter of treatment notes, businesses, practitioners and appointment types as String:
    # where a list holds more than a page, its id bounds are refused (400) and it is read by page number (every
    # record staged, above), and said so; every other resource is walked by id.
    string_ids = ("businesses", "practitioners", "appointment_types", "treatment_notes")
    paged = [r for r in string_ids if metadata[r]["fetched"] > 3]
    assert paged == list(string_ids), paged
    for resource in paged:
        assert metadata[resource]["listed_by_page"] == {
            f"/{resource}": "Cliniko refused q[]=id:> and id:< (400): listed by page number, 1 pass(es)"
        }, resource
    assert [r for r in RESOURCES if "listed_by_page" in metadata[r]] == [r for r in RESOURCES if r in paged]
    logged = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
    assert f"cliniko/patients of tenant '{newer.tenant}': deletions in Cliniko cannot be detected" in logged
    assert f"cliniko/treatment_notes of tenant '{newer.tenant}': /treatment_notes: Cliniko refused" in logged
    assert newer.keys["admin"] not in logged


def test_an_older_account_that_refuses_the_newer_filters_reads_the_older_routes(clinic, instance, monkeypatch):
    older = other_account(clinic, instance, monkeypatch, "olderstrict", legacy_filters=True, documented_filters=True)
    metadata = materializations(older.extract(instance))

    truth = older.truth()
    # archived_at is only in the newer docs of these: refused (400), listed without it, and reported.
    unlisted = {"businesses", "patient_attachments", "treatment_notes", "contacts"}
    for resource in RESOURCES:
        expected = {s: n for s, n in truth[resource].items() if not (resource in unlisted and s == "archived")}
        if resource == "contacts":
            expected.pop("deleted", None)  # hard-deleted: never listed by any account
        assert older.staged_states(resource) == expected, resource
    for resource in unlisted:
        assert metadata[resource]["filters_refused"] == {f"/{resource}": ["archived_at:*"]}, resource
        assert set(metadata[resource]["not_detected"]) == {"archived"}, resource
    # Where an older route serves them, nothing is missing: it stands in for the refused filter.
    for resource, route in (("patients", "/patients/archived"), ("appointment_types", "/appointment_types/archived")):
        assert metadata[resource]["filters_refused"] == {f"/{resource}": ["archived_at:*"]}, resource
        assert metadata[resource]["old_routes"][route].startswith(
            f"used: Cliniko refused q[]=archived_at:* on /{resource} (400);"
        ), resource
        assert "not_detected" not in metadata[resource], resource


def test_notes_listed_by_page_number_while_notes_are_deleted_are_walked_again_and_none_is_lost(
    clinic, instance, monkeypatch
):
    # An account that refuses id bounds on treatment notes (their id filter is typed String), whose oldest
    # notes are deleted while the list is read: every later note moves back a place, past pages already read.
    strict = other_account(clinic, instance, monkeypatch, "strictchurn", documented_filters=True)
    strict.admin.churn(strict.account, resource="treatment_notes", every=3, deletes=1, limit=4)
    result = strict.extract(instance, cliniko=cliniko_resource(page_size=5), selection=["treatment_notes"])

    staged = strict.staged_records("treatment_notes")
    live = {rid for rid, r in strict.export("treatment_notes").items() if not r.get("deleted_at")}
    churned = set(strict.admin.churned(strict.account))
    assert len(churned) == 4
    assert live <= {rid for rid, (state, _) in staged.items() if state != "deleted"}
    assert {rid for rid, (state, _) in staged.items() if state == "deleted"} >= churned
    assert strict.staged_states("treatment_notes") == strict.truth()["treatment_notes"]
    meta = materializations(result)["treatment_notes"]
    how = meta["listed_by_page"]["/treatment_notes"]
    assert how.startswith("Cliniko refused q[]=id:> and id:< (400): listed by page number, ") and how.endswith(
        " pass(es)"
    )
    assert int(how.rsplit(" ", 2)[1]) >= 2  # the count changed during the first pass: walked again
    assert meta["shortfall"] == 0


@pytest.mark.parametrize(
    "shape",
    [
        {},  # the deleted notes counted by /treatment_notes/deleted
        {"legacy_filters": True},  # the same, on an account whose docs lack q[]=deleted_at for notes
        {"no_older_routes": True},  # no /deleted route: counted by /treatment_notes?q[]=deleted_at:?
    ],
    ids=["feed", "older-docs", "no-feed"],
)
def test_a_note_deleted_and_another_created_while_notes_are_listed_by_page_number_loses_no_note(
    clinic, instance, monkeypatch, shape
):
    # The oldest note deleted and a new one created while the list is read by page number: Cliniko's count holds,
    # yet every later note moved back a place, one of them past the pages read. The count of deleted notes grew
    # during the pass: the route is walked again.
    strict = other_account(clinic, instance, monkeypatch, "strictswap", documented_filters=True, **shape)
    strict.admin.churn(strict.account, resource="treatment_notes", every=8, deletes=1, creates=1, limit=1)
    result = strict.extract(instance, cliniko=cliniko_resource(page_size=5), selection=["treatment_notes"])

    staged = strict.staged_records("treatment_notes")
    live = {rid for rid, r in strict.export("treatment_notes").items() if not r.get("deleted_at")}
    if shape.get("legacy_filters"):  # its notes' archived_at:* is refused (400): archived notes are not listed
        live = {rid for rid in live if not strict.export("treatment_notes")[rid].get("archived_at")}
    rule = strict.admin.churn_rule(strict.account)
    assert len(rule["deleted"]) == 1 and len(rule["created"]) == 1
    assert set(rule["created"]) <= live
    assert live <= {rid for rid, (state, _) in staged.items() if state != "deleted"}
    truth = strict.truth()["treatment_notes"]
    assert strict.staged_states("treatment_notes") == (
        {state: n for state, n in truth.items() if state != "archived"} if shape.get("legacy_filters") else truth
    )
    meta = materializations(result)["treatment_notes"]
    assert meta["listed_by_page"] == {
        "/treatment_notes": "Cliniko refused q[]=id:> and id:< (400): listed by page number, 2 pass(es)"
    }
    assert meta["shortfall"] == 0
    if shape.get("no_older_routes"):  # the absent feed asked once for a count (and once by its own listing)
        assert strict.admin.requests_by_route(strict.account)["/v1/treatment_notes/deleted"] == 2


def test_a_resync_of_an_account_refusing_deleted_at_on_its_deleted_routes_lists_them_in_full(
    clinic, instance, monkeypatch
):
    # Cliniko documents no q[]=deleted_at filter for patients: an account that refuses undocumented filters
    # answers a re-sync's q[]=deleted_at:>= on /patients/deleted with 400. Its deleted rows are listed in full
    # instead; the rest stays incremental. (Templates are listed in full on every sync.)
    strict = other_account(clinic, instance, monkeypatch, "strictresync", documented_filters=True)
    strict.extract(instance)
    changed = strict.admin.mutate(strict.account, seed=7, deletes=3, updates=2, resources=["patients"])["changed"]
    template = next(rid for rid, r in strict.export("treatment_note_templates").items() if not r.get("deleted_at"))
    strict.admin.mutate(strict.account, ops=[{"op": "delete", "resource": "treatment_note_templates", "id": template}])
    assert len(changed["patients"]["deleted"]) == 3
    strict.admin.reset_stats()

    second = materializations(strict.extract(instance))

    truth = strict.truth()  # (its contacts' archived rows are not listed: /contacts refuses archived_at:*)
    for resource in ("patients", "treatment_note_templates", "treatment_notes", "individual_appointments"):
        assert strict.staged_states(resource) == truth[resource], resource
    meta = second["patients"]
    assert meta["mode"] == "incremental"
    assert [f.partition(":>=")[0] for f in meta["filters_refused"]["/patients/deleted"]] == ["deleted_at"]
    deleted = sum(1 for r in strict.export("patients").values() if r.get("deleted_at"))
    assert meta["listed_in_full"]["/patients/deleted"] == (
        f"Cliniko refused q[]={meta['filters_refused']['/patients/deleted'][0]} (400): every deleted record listed "
        f"again ({deleted} read)"
    )
    assert meta["state_deleted"] == deleted > 3
    assert second["treatment_note_templates"]["state_deleted"] == truth["treatment_note_templates"]["deleted"]
    # Where the filter is documented, the deleted routes stay incremental.
    for resource in ("treatment_notes", "individual_appointments"):
        assert second[resource]["mode"] == "incremental", resource
        assert "listed_in_full" not in second[resource] and "filters_refused" not in second[resource], resource


def test_an_account_listing_reference_numbers_per_practitioner_only_has_them_all_staged(clinic, instance, monkeypatch):
    """Cliniko's older docs list practitioner reference numbers at /practitioners/:id/practitioner_reference_numbers
    only: where /practitioner_reference_numbers is absent (404), each staged practitioner's route lists them, and
    those of a practitioner only the by-id pass finds (no list returns it) are listed once it is staged."""
    older = other_account(clinic, instance, monkeypatch, "nested", nested_reference_numbers=True, legacy_filters=True)
    route = "/practitioners/:id/practitioner_reference_numbers"
    for sync in (1, 2):  # a first import, then a re-sync (the practitioner found by id is staged by then)
        result = older.extract(instance)
        found = materializations(result)["practitioner_reference_numbers"]
        truth = older.truth()["practitioner_reference_numbers"]
        assert older.staged_states("practitioner_reference_numbers") == truth, sync
        practitioners = older.staged_states("practitioners")
        assert practitioners.get("unlisted") == 1 and practitioners.get("missing") == 1, practitioners
        parents = sum(n for state, n in practitioners.items() if state in ("active", "inactive", "unlisted"))
        later = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if entry.user_message.startswith("cliniko/practitioner_reference_numbers: ")
            and "found by id" in entry.user_message
        ]
        more = {1: int(later[0].split()[1]) if later else 0, 2: 0}[sync]
        assert (more > 0) == (sync == 1) and len(later) == (sync == 1), later
        first = parents - (1 if sync == 1 else 0)  # the practitioner found by id is staged after the listing
        assert found["old_routes"] == {
            "/practitioner_reference_numbers": f"absent (404): listed from {route} for each of the {first} "
            f"practitioners staged ({found['fetched']} read)"
        }, sync
        assert "not_detected" not in found and found["fetched"] + more == sum(truth.values()), sync
