"""A re-sync takes out of Splose what Cliniko no longer has: records deleted there (with a deletion feed or
without a trace), an availability's lost ranges, and what the clinic's mapping now ignores. Real sandboxes,
a real Dagster instance, the import job as the daemon runs it (in process)."""

from __future__ import annotations

import dagster as dg

from cliniko_assets.definitions import defs
from cliniko_assets.sensors import run_config_for
from sandbox.splose.lifecycle import references
from splose_resources.notifier import NotifierResource
from tests.conftest import materializations
from tests.test_import import _rows, splose_sandbox, tiny_import  # noqa: F401 (fixtures)

ENTITIES = ("clients", "appointments", "progressNotes", "files", "availability", "providerNumbers")


def held(tiny_import) -> dict[str, dict[str, dict]]:
    """What the workspace holds: entity -> external id -> stored record (ids and references only are read)."""
    return {entity: {row["externalId"]: row for row in tiny_import.dump(entity)} for entity in ENTITIES}


def referred(stored: dict[str, dict[str, dict]]) -> set[int]:
    """The Splose ids some stored record refers to."""
    return {ref for rows in stored.values() for row in rows.values() for ref in references(row["data"])}


def imported_then_a_number_deleted(tiny_import, instance) -> tuple[dict, dict[str, dict[str, dict]], str]:
    """A first import, then a reference number Splose holds (nothing points at it) deleted in Cliniko: the
    request, what Splose held after the import, and the number's id."""
    request = tiny_import.submit()
    assert tiny_import.run(instance, request).success
    clinic, before = tiny_import.clinic, held(tiny_import)
    pointed_at = referred(before)
    numbers = clinic.export("practitioner_reference_numbers")
    number = next(e for e, r in sorted(before["providerNumbers"].items()) if r["id"] not in pointed_at and e in numbers)
    clinic.admin.mutate(
        clinic.account, ops=[{"op": "delete", "resource": "practitioner_reference_numbers", "id": number}]
    )
    return request, before, number


def test_a_resync_removes_from_splose_what_cliniko_deleted_and_what_the_mapping_now_ignores(tiny_import, instance):
    request = tiny_import.submit()
    assert tiny_import.run(instance, request).success
    clinic = tiny_import.clinic
    before = held(tiny_import)
    pointed_at = referred(before)

    def unreferenced(entity: str, resource: str) -> str:
        """A record of ``resource`` Splose holds as ``entity`` and nothing in Splose points at."""
        cliniko = clinic.export(resource)
        return next(
            ext for ext, row in sorted(before[entity].items()) if row["id"] not in pointed_at and ext in cliniko
        )

    appointment = unreferenced("appointments", "individual_appointments")
    note = unreferenced("progressNotes", "treatment_notes")
    attachment = unreferenced("files", "patient_attachments")
    number = unreferenced("providerNumbers", "practitioner_reference_numbers")
    client = unreferenced("clients", "patients")
    days = clinic.export("daily_availabilities")
    shrunk = next(
        d
        for d, r in sorted(days.items())
        if len(r.get("availabilities") or []) >= 2 and f"{d}:1" in before["availability"]
    )
    gone_day = next(d for d in sorted(days) if d != shrunk and f"{d}:0" in before["availability"])
    clinic.admin.mutate(
        clinic.account,
        ops=[
            {"op": "delete", "resource": "individual_appointments", "id": appointment},
            {"op": "delete", "resource": "treatment_notes", "id": note},
            {"op": "delete", "resource": "patient_attachments", "id": attachment},
            {"op": "delete", "resource": "practitioner_reference_numbers", "id": number},
            {"op": "delete", "resource": "patients", "id": client},
            {
                "op": "update",
                "resource": "daily_availabilities",
                "id": shrunk,
                "fields": {"availabilities": days[shrunk]["availabilities"][:1]},
            },
            {"op": "delete", "resource": "daily_availabilities", "id": gone_day},
        ],
    )

    result = tiny_import.run(instance, request)

    assert result.success
    after = held(tiny_import)
    assert appointment not in set(after["appointments"]) and note not in set(after["progressNotes"])
    assert attachment not in set(after["files"]) and number not in set(after["providerNumbers"])
    assert client not in set(after["clients"])
    assert sorted(k for k in set(after["availability"]) if k.partition(":")[0] == shrunk) == [f"{shrunk}:0"]
    assert [k for k in set(after["availability"]) if k.partition(":")[0] == gone_day] == []
    # Nothing else went: every other record Splose held is still there.
    removed = {
        "appointments": {appointment},
        "progressNotes": {note},
        "files": {attachment},
        "providerNumbers": {number},
        "clients": {client},
        "availability": {
            k
            for k in before["availability"]
            if k.partition(":")[0] == gone_day or (k.startswith(f"{shrunk}:") and k != f"{shrunk}:0")
        },
    }
    for entity in ENTITIES:
        assert set(before[entity]) - set(after[entity]) == removed.get(entity, set()), entity
    report = materializations(result)["import_report"]
    assert report["removed_from_splose"] == {e: len(ids) for e, ids in removed.items()}
    assert report["not_removed"] == {} and report["count_mismatches"] == 0
    rows = _rows(result)
    assert rows["availability"]["to_remove"] == len(removed["availability"])
    assert rows["provider_numbers"]["to_remove"] == 1
    status = tiny_import.status(int(request["id"]))
    assert status["status"] == "complete"
    assert "removed from Splose" in status["message"]

    again = tiny_import.run(instance, request)  # nothing left to remove: no removal asked for
    assert again.success and materializations(again)["import_report"]["removed_from_splose"] == {}


def test_a_location_the_mapping_now_ignores_takes_its_appointments_out_of_splose(tiny_import, instance):
    request = tiny_import.submit()
    assert tiny_import.run(instance, request).success
    before = held(tiny_import)
    locations = tiny_import.mapping["locations"]
    targets = [str(target) for target in locations.values()]
    business = next(bid for bid, target in sorted(locations.items()) if targets.count(str(target)) == 1)
    location = int(locations[business])  # no other business goes to it: all its appointments are the business's
    at_location = {ext for ext, row in before["appointments"].items() if row["data"].get("locationId") == location}
    assert at_location
    mapping = {kind: {k: str(v) for k, v in items.items()} for kind, items in tiny_import.mapping.items()}
    mapping["locations"][business] = "ignore"
    config = {"import_id": str(request["id"]), "mapping": mapping}
    result = defs.resolve_job_def("import_job").execute_in_process(
        instance=instance,
        partition_key=tiny_import.clinic.tenant,
        run_config={"resources": {"import_request": {"config": config}}},
        resources={"staging": tiny_import.clinic.staging, "notifier": NotifierResource(outbox=str(tiny_import.outbox))},
    )

    assert result.success
    after = set(held(tiny_import)["appointments"])  # ids only: the records are patient data
    report = materializations(result)["import_report"]
    assert report["not_removed"] == {}  # the notes of those appointments are no longer linked to them
    assert sorted(at_location & after) == []
    assert report["removed_from_splose"]["appointments"] == len(at_location)
    assert set(before["appointments"]) - after == at_location


def run_with(tiny_import, instance, config: dict, job: str = "import_job"):
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        partition_key=tiny_import.clinic.tenant,
        run_config={"resources": {"import_request": {"config": config}}},
        resources={"staging": tiny_import.clinic.staging, "notifier": NotifierResource(outbox=str(tiny_import.outbox))},
    )


def test_the_preview_says_what_the_import_would_remove_and_removes_nothing(tiny_import, instance):
    """A mapping that now ignores a location, and a reference number deleted in Cliniko: the preview names
    what the import would remove, entity by entity, and the import then removes exactly that. With every
    location ignored, it says the removal would wait for confirmation, as the import then does."""
    request, before, _ = imported_then_a_number_deleted(tiny_import, instance)
    locations = tiny_import.mapping["locations"]
    targets = [str(target) for target in locations.values()]
    business = next(bid for bid, target in sorted(locations.items()) if targets.count(str(target)) == 1)
    at_location = {
        ext for ext, row in before["appointments"].items() if row["data"].get("locationId") == int(locations[business])
    }
    mapping = {kind: {k: str(v) for k, v in items.items()} for kind, items in tiny_import.mapping.items()}
    mapping["locations"][business] = "ignore"
    config = {"import_id": str(request["id"]), "mapping": mapping}

    preview = run_with(tiny_import, instance, config, "preview_job")

    assert preview.success
    metadata = materializations(preview)["import_preview"]
    assert metadata["would_remove"]["appointments"] == len(at_location) > 0
    assert metadata["would_remove"]["providerNumbers"] >= 1  # the deleted one, and those of the ignored location
    assert "no longer in Cliniko 1)" in next(
        line for line in metadata["summary"].splitlines() if line.startswith("- providerNumbers:")
    )
    assert metadata["would_hold_back"] == {}
    rows = {record.data["row"]: record.data for record in metadata["rows"].records}
    assert sum(row["would_remove"] for row in rows.values()) == sum(metadata["would_remove"].values())
    held_appointments = len(before["appointments"])
    assert (
        f"- appointments: {len(at_location):,} of the {held_appointments:,} Splose holds (location ignored "
        f"{len(at_location):,})" in metadata["summary"]
    )
    assert held(tiny_import) == before  # a dry run: nothing left Splose

    result = run_with(tiny_import, instance, config)

    assert result.success
    assert materializations(result)["import_report"]["removed_from_splose"] == metadata["would_remove"]

    mapping["locations"] = dict.fromkeys(mapping["locations"], "ignore")
    everything = run_with(tiny_import, instance, {**config, "mapping": mapping}, "preview_job")

    assert everything.success
    metadata = materializations(everything)["import_preview"]
    assert metadata["would_hold_back"]["appointments"] == metadata["would_remove"]["appointments"]
    assert "remove_most: true" in metadata["summary"]
    held_back = run_with(tiny_import, instance, {**config, "mapping": mapping})
    assert held_back.success
    assert materializations(held_back)["import_report"]["removals_held_back"] == metadata["would_hold_back"]


def test_removing_most_of_what_splose_holds_waits_for_the_run_to_confirm_it(tiny_import, instance):
    """Every location ignored at once (a wrong mapping looks the same): nothing leaves Splose, the clinic is told
    how to confirm, the notes keep their appointments; a run confirming it removes them."""
    request = tiny_import.submit()
    assert tiny_import.run(instance, request).success
    before = held(tiny_import)
    mapping = {kind: {k: str(v) for k, v in items.items()} for kind, items in tiny_import.mapping.items()}
    mapping["locations"] = dict.fromkeys(mapping["locations"], "ignore")
    config = {"import_id": str(request["id"]), "mapping": mapping}

    held_back = run_with(tiny_import, instance, config)

    assert held_back.success
    report = materializations(held_back)["import_report"]
    assert report["removals_held_back"]["appointments"] > len(before["appointments"]) / 2
    assert "appointments" not in report["removed_from_splose"]  # half or fewer of a kind still go (reference numbers)
    after = held(tiny_import)
    for entity in ("clients", "appointments", "progressNotes", "files"):
        assert set(after[entity]) == set(before[entity]), entity
    linked = {ext for ext, row in before["progressNotes"].items() if row["data"].get("appointmentId")}
    assert {ext for ext, row in after["progressNotes"].items() if row["data"].get("appointmentId")} == linked
    status = tiny_import.status(int(request["id"]))
    assert status["status"] == "complete" and "remove_most: true" in status["message"]

    confirmed = run_with(tiny_import, instance, {**config, "remove_most": True})

    assert confirmed.success
    assert materializations(confirmed)["import_report"]["removals_held_back"] == {}
    assert held(tiny_import)["appointments"] == {}


def test_a_report_run_apart_from_its_loads_removes_what_a_run_it_re_executes_marked_and_warns_otherwise(
    tiny_import, instance
):
    """The loads in one run, the report in another: a re-execution (tag dagster/parent_run_id, as Dagster
    sets it) removes what its parent's loads marked; an unrelated run does not trust them and says so."""
    request, _, number = imported_then_a_number_deleted(tiny_import, instance)
    clinic = tiny_import.clinic
    job = defs.resolve_job_def("import_job")
    report_key = dg.AssetKey(["splose", "import_report"])
    loads_only = [key for key in job.asset_layer.executable_asset_keys if key != report_key]
    common = {"instance": instance, "partition_key": clinic.tenant, "run_config": run_config_for(request)}
    loads = job.execute_in_process(asset_selection=loads_only, **common)
    assert loads.success and _rows(loads)["provider_numbers"]["to_remove"] == 1

    apart = job.execute_in_process(asset_selection=[report_key], **common)

    assert apart.success and number in set(held(tiny_import)["providerNumbers"])
    assert (
        "1 record(s) the loads marked for removal were not found" in tiny_import.status(int(request["id"]))["message"]
    )

    again = job.execute_in_process(
        asset_selection=[report_key],
        tags={"dagster/parent_run_id": loads.run_id, "dagster/root_run_id": loads.run_id},
        **common,
    )

    assert again.success and materializations(again)["import_report"]["removed_from_splose"] == {"providerNumbers": 1}
    assert number not in set(held(tiny_import)["providerNumbers"])
    assert "were not found" not in tiny_import.status(int(request["id"]))["message"]


def test_what_a_listing_short_of_clinikos_count_no_longer_lists_is_not_removed(tiny_import, instance):
    """Reference numbers are listed in full with no deletion feed: one missing from a listing that fell short of
    Cliniko's count may be Cliniko's answer, not a deletion, so it stays in Splose and the row says why."""
    request = tiny_import.submit()
    assert tiny_import.run(instance, request).success
    clinic, before = tiny_import.clinic, held(tiny_import)
    number = sorted(ext for ext in before["providerNumbers"] if ext in clinic.export("practitioner_reference_numbers"))[
        0
    ]
    clinic.admin.mutate(
        clinic.account, ops=[{"op": "delete", "resource": "practitioner_reference_numbers", "id": number}]
    )
    clinic.admin.configure(faults={"wrong_total_rate": 1.0}, fault_seed=3)  # every count short of what is listed
    try:
        result = tiny_import.run(instance, request)
    finally:
        clinic.admin.clear_faults()

    assert result.success
    assert materializations(result)["practitioner_reference_numbers"]["shortfall"] > 0
    assert number in set(held(tiny_import)["providerNumbers"])
    row = _rows(result)["provider_numbers"]
    assert row["removals_skipped_listing_short"] == 1 and row.get("to_remove", 0) == 0
