"""Extraction of a whole clinic from the Cliniko sandbox through a real Dagster instance."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import pytest

from cliniko_assets.catalog import BY_NAME
from cliniko_assets.definitions import cliniko_resource
from sandbox.admin import ClinikoSandboxAdmin
from sandbox.harness import running_server
from splose_resources.staging import StagingStore
from tests.conftest import RESOURCES, Clinic, materializations


def test_full_extraction_stages_exactly_the_sandbox_ground_truth(clinic, instance):
    result = clinic.extract(instance)

    assert result.success
    metadata = materializations(result)
    assert sorted(metadata) == sorted([*RESOURCES, "references"])
    truth = clinic.truth()
    by_id = metadata["references"]["by_resource"]
    for resource in RESOURCES:
        assert clinic.staged_states(resource) == truth[resource], resource
        listed = {state: n for state, n in truth[resource].items() if state not in ("unlisted", "missing")}
        assert metadata[resource]["by_state"] == listed, resource  # the records found by id come after
        found = (by_id[resource]["found_by_id"], by_id[resource]["not_in_cliniko"]) if resource in by_id else (0, 0)
        assert found == (truth[resource].get("unlisted", 0), truth[resource].get("missing", 0)), resource
        assert set(truth[resource]) <= set(BY_NAME[resource].states), resource
        assert metadata[resource]["records"] == sum(listed.values())
        assert metadata[resource]["mode"] == "full"
    # Not only the counts: every live record is staged exactly as Cliniko serves it.
    for resource in RESOURCES:
        staged = clinic.staged_records(resource)
        exported = clinic.export(resource)
        assert set(staged) == set(exported), resource
        for rid, (state, record) in staged.items():
            if state not in ("deleted", "missing"):  # deletion feeds and 404s leave stubs
                expected = {k: v for k, v in exported[rid].items() if not k.startswith("_")}
                assert record == expected, (resource, rid)
    # Attachment bytes are staged with the checksum of what the sandbox holds.
    manifest = clinic.staging.read_files_manifest(clinic.tenant, "patient_attachments").set_index("id")
    exported = clinic.export("patient_attachments")
    live = {rid for rid, r in exported.items() if not r.get("archived_at")}
    assert live <= set(manifest.index)
    for rid in manifest.index:
        assert manifest.loc[rid, "sha256"] == exported[rid]["_sha256"]
        with clinic.staging.file_reader(clinic.tenant, "patient_attachments", rid) as staged:
            assert len(staged.read()) == exported[rid]["_bytes"]
    assert max(r["_bytes"] for r in exported.values()) > 5 * 1024 * 1024
    files = metadata["patient_attachments"]
    assert files["files_downloaded"] == len(manifest) > 0
    # The downloads' own CPU (the benches set it apart from the listing's): some, and never more than the run's.
    assert 0 < files["download_cpu_seconds"] < files["duration_seconds"] * 4


def test_resync_fetches_only_what_changed_and_ends_with_the_sandbox_data(clinic, instance):
    first = materializations(clinic.extract(instance))
    before = {resource: clinic.export(resource) for resource in RESOURCES}
    changed = clinic.admin.mutate(clinic.account, seed=5, updates=6, creates=4, archives=3, deletes=3)["changed"]
    clinic.admin.reset_stats()

    second = materializations(clinic.extract(instance))

    truth = clinic.truth()
    for resource in RESOURCES:
        assert clinic.staged_states(resource) == truth[resource], resource
        assert set(clinic.staged_records(resource)) == set(clinic.export(resource)), resource
    for resource, meta in second.items():
        if resource == "references" or meta["mode"] != "incremental":
            continue
        # What an incremental sync may ask for: changed rows, plus rows inside the overlap before the cursor.
        cursor = first[resource]["cursor"]
        overlap = {rid for rid, r in before[resource].items() if (r.get("updated_at") or "") >= _minus(cursor, 120)}
        kinds = changed.get(resource, {})
        touched = set().union(*kinds.values()) if kinds else set()
        if BY_NAME[resource].hard_deletes:  # removed without a trace: nothing to fetch, found by their absence
            touched -= set(kinds.get("deleted", []))
            overlap -= set(kinds.get("deleted", []))
            assert meta["vanished_in_cliniko"] == len(kinds.get("deleted", [])), resource
        assert meta["fetched"] == len(touched | overlap), resource
    requests = clinic.admin.requests_by_route(clinic.account)
    full_requests = sum(meta["requests"] for meta in first.values())
    assert sum(meta["requests"] for meta in second.values()) == sum(requests.values())
    assert sum(requests.values()) < full_requests
    # Unchanged resources cost one page per route.
    assert requests["/v1/treatment_notes"] <= 1 + len(changed.get("treatment_notes", {}).get("updated", [])) // 100


def test_records_found_by_id_are_kept_and_asked_for_again_only_when_due(clinic, instance):
    """Resources listed in full on every sync keep what the by-id pass staged: an unchanged sync asks Cliniko for
    none of it, and it is asked for again every ``id_listing_every`` syncs and on a full refresh."""
    every_third_sync = {"resources": {"extraction": {"config": {"id_listing_every": 3}}}}
    first = materializations(clinic.extract(instance, run_config=every_third_sync))
    truth = clinic.truth()
    listed_in_full = [r for r in first["references"]["by_resource"] if not BY_NAME[r].incremental]
    by_id = {r: truth[r].get("unlisted", 0) + truth[r].get("missing", 0) for r in listed_in_full}
    assert sum(by_id.values()) >= 3, by_id  # the tiny clinic has dangling references of several kinds

    def sync(config: dict) -> tuple[dict, Counter]:
        clinic.admin.reset_stats()
        metadata = materializations(clinic.extract(instance, run_config=config))
        assert {r: clinic.staged_states(r) for r in RESOURCES} == {r: truth[r] for r in RESOURCES}
        asked = clinic.admin.requests_by_route(clinic.account)
        return metadata, Counter({p: n for p, n in asked.items() if p.endswith("/:id")})

    second, asked = sync(every_third_sync)
    assert asked == Counter() and second["references"]["by_id_requests"] == 0
    assert {r: (second[r]["kept_by_id"], second[r]["syncs_since_by_id"]) for r in by_id} == {
        r: (n, 1) for r, n in by_id.items()
    }
    third, asked = sync(every_third_sync)
    assert asked == Counter() and {r: third[r]["syncs_since_by_id"] for r in by_id} == dict.fromkeys(by_id, 2)
    fourth, asked = sync(every_third_sync)  # due: the third sync since they were asked for
    assert sum(asked.values()) == fourth["references"]["by_id_requests"] >= sum(by_id.values())
    assert {r: (fourth[r]["kept_by_id"], fourth[r]["syncs_since_by_id"]) for r in by_id} == dict.fromkeys(by_id, (0, 0))
    refreshed, asked = sync({"resources": {"extraction": {"config": {"full_refresh": True}}}})
    assert sum(asked.values()) == refreshed["references"]["by_id_requests"] >= sum(by_id.values())


def test_a_resync_asks_again_only_for_what_was_not_settled_when_the_last_sync_began(clinic, instance):
    """The next sync starts an hour (``settled_seconds``) before the previous one began, however old the clinic's
    newest change: what was settled then is not read again, and a write that reaches the lists half an hour after
    the updated_at it carries is still found."""
    began = _now()
    first = materializations(clinic.extract(instance))
    incremental = [r for r in RESOURCES if BY_NAME[r].incremental]
    newest = {r: max((x.get("updated_at") or "" for x in clinic.export(r).values()), default="") for r in incremental}
    for resource in incremental:  # the generated clinic's newest change is days old: the cursor is not
        assert first[resource]["cursor"] >= _minus(began, 3600 + 5) > newest[resource], resource

    clinic.admin.reset_stats()
    unchanged = materializations(clinic.extract(instance))
    assert {r: unchanged[r]["fetched"] for r in incremental} == dict.fromkeys(incremental, 0)
    asked = clinic.admin.requests_by_route(clinic.account)
    assert {path: n for path, n in asked.items() if n > 1} == {}, dict(asked)  # each route once, counts included

    late = clinic.admin.mutate(clinic.account, seed=11, updates=8, creates=4, stamped_seconds_ago=1800)["changed"]
    assert any(r in late for r in incremental)
    third = materializations(clinic.extract(instance))
    assert_staged_as_cliniko_has_them(clinic, late)
    for resource, kinds in late.items():
        if resource in incremental:
            assert third[resource]["fetched"] == len(set().union(*kinds.values())), resource


def assert_staged_as_cliniko_has_them(clinic, changed: dict) -> None:
    """Every resource's states as Cliniko's truth, and each changed record staged as Cliniko exports it."""
    truth = clinic.truth()
    for resource in RESOURCES:
        assert clinic.staged_states(resource) == truth[resource], resource
    for resource, kinds in changed.items():
        staged = clinic.staged_records(resource)
        exported = clinic.export(resource)
        for rid in set().union(*kinds.values()):
            same = staged[rid][1] == {k: v for k, v in exported[rid].items() if not k.startswith("_")}
            assert same, (resource, rid)  # ids only: the records are patient data


def test_a_late_write_older_than_a_change_already_staged_is_found(clinic, instance):
    """In a busy clinic the newest staged change is seconds old: a write that reaches the lists half an hour
    after the ``updated_at`` it carries is older than it, and the next sync must still ask for it."""
    materializations(clinic.extract(instance))
    fresh = clinic.admin.mutate(clinic.account, seed=12, updates=6, creates=2)["changed"]
    second = materializations(clinic.extract(instance))
    incremental = [r for r in RESOURCES if BY_NAME[r].incremental]
    assert any(r in fresh and second[r]["fetched"] for r in incremental), (fresh, second)

    late = clinic.admin.mutate(clinic.account, seed=13, updates=8, creates=4, stamped_seconds_ago=1800)["changed"]
    assert any(r in late for r in incremental)
    materializations(clinic.extract(instance))
    assert_staged_as_cliniko_has_them(clinic, late)


def test_a_resource_listed_in_full_is_listed_again_only_when_it_changed(clinic, instance):
    """A resource without a deletion feed holding more than a page: an unchanged sync asks each of its routes
    for its newest record and its count (one request) instead of listing it; an edit or a removal in Cliniko
    makes it list everything again."""
    cliniko = cliniko_resource(page_size=10)
    first = materializations(clinic.extract(instance, cliniko=cliniko))
    paged = [r for r in RESOURCES if not BY_NAME[r].incremental and first[r]["records"] > 10]
    assert "daily_availabilities" in paged, {r: first[r]["records"] for r in RESOURCES}
    truth = clinic.truth()

    clinic.admin.reset_stats()
    second = materializations(clinic.extract(instance, cliniko=cliniko))
    asked = clinic.admin.requests_by_route(clinic.account)
    for resource in paged:
        assert (second[resource]["mode"], second[resource]["fetched"]) == ("unchanged", 0), resource
        assert second[resource]["requests"] == len([s for s in BY_NAME[resource].streams if not s.fallback_for])
        assert second[resource]["records"] == first[resource]["records"], resource
        assert second[resource]["syncs_since_id_listing"] == 1, resource
    assert asked["/v1/daily_availabilities"] == 1
    assert {r: clinic.staged_states(r) for r in RESOURCES} == {r: truth[r] for r in RESOURCES}

    ids = sorted(clinic.export("daily_availabilities"), key=int)
    edited = {"availabilities": [{"starts_at": "07:30", "ends_at": "11:00"}]}
    clinic.admin.mutate(
        clinic.account, ops=[{"op": "update", "resource": "daily_availabilities", "id": ids[0], "fields": edited}]
    )
    third = materializations(clinic.extract(instance, cliniko=cliniko))
    assert third["daily_availabilities"]["mode"] == "full"
    assert clinic.staged_records("daily_availabilities")[ids[0]][1]["availabilities"] == edited["availabilities"]

    clinic.admin.mutate(clinic.account, ops=[{"op": "delete", "resource": "daily_availabilities", "id": ids[1]}])
    fourth = materializations(clinic.extract(instance, cliniko=cliniko))
    assert fourth["daily_availabilities"]["mode"] == "full"
    assert ids[1] not in clinic.staged_records("daily_availabilities")
    assert fourth["daily_availabilities"]["records"] == first["daily_availabilities"]["records"] - 1


@pytest.mark.slow  # pages of 5 through the sandbox's latency: about 40 s
def test_a_resource_without_a_deletion_feed_is_asked_for_its_newest_records_and_its_count_at_once(clinic, instance):
    """Contacts and attachments (Cliniko removes them without a trace): a re-sync asks each route once for its
    newest records, sorted by updated_at, and its count. What changed is taken from that page when it holds
    it all, walked when more changed than a page holds; a removal is found from the same count."""
    cliniko = cliniko_resource(page_size=5)
    clinic.extract(instance, cliniko=cliniko)
    assert len(clinic.export("contacts")) > 10

    clinic.admin.reset_stats()
    unchanged = materializations(clinic.extract(instance, cliniko=cliniko))
    asked = clinic.admin.requests_by_route(clinic.account)
    for resource, path in (("contacts", "/v1/contacts"), ("patient_attachments", "/v1/patient_attachments")):
        assert asked[path] == 1, dict(asked)
        assert (unchanged[resource]["requests"], unchanged[resource]["fetched"]) == (1, 0), resource
        assert unchanged[resource]["id_listing"] == "not needed: Cliniko's count matches the records staged"

    few = clinic.admin.mutate(clinic.account, seed=5, updates=3, deletes=1, resources=["contacts"])["changed"]
    edited = set(few["contacts"].get("updated", []))
    removed = set(few["contacts"].get("deleted", []))
    assert (len(edited), len(removed)) == (3, 1), few
    clinic.admin.reset_stats()
    third = materializations(clinic.extract(instance, cliniko=cliniko))
    assert third["contacts"]["fetched"] == 3
    assert third["contacts"]["vanished_in_cliniko"] == 1
    assert third["contacts"]["id_listing"].startswith("Cliniko counts")  # the count came with the newest page
    staged = clinic.staged_records("contacts")
    exported = clinic.export("contacts")
    for rid in edited:
        assert staged[rid][1] == {k: v for k, v in exported[rid].items() if not k.startswith("_")}, rid
    assert clinic.staged_states("contacts") == clinic.truth()["contacts"]

    many = clinic.admin.mutate(clinic.account, seed=6, updates=7, resources=["contacts"])["changed"]
    assert len(many["contacts"]["updated"]) > 5
    fourth = materializations(clinic.extract(instance, cliniko=cliniko))
    # more than a page changed: walked (the last sync's edits come again, within the overlap)
    assert fourth["contacts"]["fetched"] >= len(many["contacts"]["updated"])
    assert fourth["contacts"]["requests"] > 2
    assert fourth["contacts"]["id_listing"] == "not needed: Cliniko's count matches the records staged"
    assert clinic.staged_states("contacts") == clinic.truth()["contacts"]
    staged = clinic.staged_records("contacts")
    exported = clinic.export("contacts")
    for rid in many["contacts"]["updated"]:
        assert staged[rid][1] == {k: v for k, v in exported[rid].items() if not k.startswith("_")}, rid


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _minus(timestamp: str, seconds: int) -> str:
    from datetime import datetime, timedelta

    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00")) - timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_request_budget_is_never_exceeded(tmp_path, monkeypatch):
    """A sandbox whose budget is 12 requests per 2 s window: the client uses it fully and never trips it."""
    budget, window = 12, 2
    args = [
        "--account",
        "budget:3:tiny:au1",
        "--latency-ms",
        "20",
        "--jitter-ms",
        "10",
        "--rate-limit",
        str(budget),
        "--rate-window",
        str(window),
        "--data-dir",
        str(tmp_path),
    ]
    with running_server("sandbox.cliniko", args, log_dir=tmp_path) as server:
        admin = ClinikoSandboxAdmin(server.url)
        monkeypatch.setenv("CLINIKO_API_URL", f"{server.url}/v1")
        monkeypatch.setenv("RATE_LIMIT_STATE_DIR", str(tmp_path / "rate"))
        staging = StagingStore(uri=str(tmp_path / "staging"))
        clinic = Clinic(admin, "budget", "budget-clinic", staging, monkeypatch)
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("tenants", [clinic.tenant])
            result = clinic.extract(
                instance, cliniko=cliniko_resource(requests_per_window=budget, window_seconds=window)
            )
            stats = admin.stats()["keys"]["budget/admin"]
            truth = clinic.truth()
            staged = {resource: clinic.staged_states(resource) for resource in RESOURCES}

    assert result.success
    assert staged == truth
    assert stats["rate_limited"] == 0
    assert stats["total"] == sum(m["requests"] for m in materializations(result).values())
    assert stats["total"] > 3 * budget
    per_window = sorted(stats["windows"].values())
    assert per_window[-1] == budget  # the budget was used to the full ...
    assert all(count <= budget for count in per_window)  # ... and never exceeded


def test_bad_key_wrong_shard_and_missing_permission_fail_clearly(clinic, instance, cliniko_sandbox, monkeypatch):
    clinic.use_key("revoked", monkeypatch)
    result = clinic.extract(instance, raise_on_error=False, selection=["patients", "contacts"])
    assert not result.success
    message = _failure(result)
    assert clinic.tenant in message and "patients" in message and "401" in message and "new key" in message
    assert clinic.keys["revoked"] not in message
    assert message.count("HTTP 401") == 1 and "cliniko/contacts, cliniko/patients: " in message  # said once
    assert f"({cliniko_sandbox.url}/v1)" in message  # where the key was refused: this deployment's Cliniko
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    metadata = {k: v.value for k, v in failure.event_specific_data.user_failure_data.metadata.items()}
    assert sorted(metadata["failed_assets"]) == ["cliniko/contacts", "cliniko/patients"]
    assert metadata["error"] == "ClinikoAuthError" and "new Cliniko API key" in metadata["what_to_do"]

    clinic.use_key("other_shard", monkeypatch)
    monkeypatch.setenv("CLINIKO_API_URL", f"{cliniko_sandbox.url}/{{shard}}/v1")
    result = clinic.extract(instance, raise_on_error=False, selection=["businesses"])
    message = _failure(result)
    assert "shard" in message and clinic.tenant in message

    monkeypatch.setenv("CLINIKO_API_URL", f"{cliniko_sandbox.url}/v1")
    clinic.use_key("receptionist", monkeypatch)
    clinic.admin.reset_stats()
    result = clinic.extract(instance, raise_on_error=False, selection=["patients", "treatment_notes"])
    assert not result.success
    assert set(materializations(result)) == {"patients"}
    message = _failure(result)
    assert "treatment_notes" in message and "403" in message and "Administrator" in message
    # 401 and 403 are never retried: one request for the refused route.
    requests = clinic.admin.requests_by_route(clinic.account)
    assert requests["/v1/treatment_notes"] == 1


def _failure(result) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures
    return str(failures[0].event_specific_data.error.message)


@pytest.mark.parametrize("scenario", ["errors", pytest.param("storms", marks=pytest.mark.slow)])
def test_faults_end_with_exact_counts(clinic, instance, scenario):
    faults = {
        "errors": {"error_rate": 0.15, "drop_rate": 0.05, "truncate_rate": 0.05, "slow_rate": 0.03, "slow_seconds": 3},
        "storms": {"storm_429": {"every": 15, "length": 3, "reset_seconds": 1}},
    }[scenario]
    clinic.admin.configure(faults=faults, fault_seed=11)
    try:
        result = clinic.extract(instance, cliniko=cliniko_resource(read_timeout_seconds=1.5, max_attempts=12))
        injected = clinic.admin.stats()["keys"][f"{clinic.account}/admin"]["injected"]
    finally:
        clinic.admin.clear_faults()
    assert result.success
    assert sum(injected.values()) >= 5, injected
    truth = clinic.truth()
    for resource in RESOURCES:
        assert clinic.staged_states(resource) == truth[resource], resource
