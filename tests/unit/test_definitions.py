"""The loaded code location, spelled out: an accidental change to the graph shows up here."""

import dagster as dg

from cliniko_assets.definitions import defs

CLINIKO = [
    "appointment_types", "attendees", "businesses", "contacts", "daily_availabilities", "group_appointments",
    "individual_appointments", "patient_attachments", "patients", "practitioner_reference_numbers",
    "practitioners", "treatment_note_templates", "treatment_notes", "users",
]  # fmt: skip
SPLOSE = [
    "appointments", "availability", "clients", "contacts", "files", "group_appointments", "import_report",
    "locations", "practitioners", "progress_note_templates", "progress_notes", "provider_numbers", "services",
    "users",
]  # fmt: skip


def _deps(graph, key: str) -> set[str]:
    return {parent.to_user_string() for parent in graph.get(dg.AssetKey.from_user_string(key)).parent_keys}


def test_the_graph_has_every_asset_partitioned_by_tenant():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = sorted(key.to_user_string() for key in graph.get_all_asset_keys())
    assert keys == sorted([f"cliniko/{n}" for n in CLINIKO] + [f"splose/{n}" for n in SPLOSE])
    for key in graph.get_all_asset_keys():
        partitions = graph.get(key).partitions_def
        assert isinstance(partitions, dg.DynamicPartitionsDefinition) and partitions.name == "tenants", key


def test_loads_follow_the_dependency_order_of_the_design():
    graph = defs.resolve_asset_graph()
    assert _deps(graph, "splose/clients") == {"cliniko/patients", "splose/contacts"}
    assert {"cliniko/individual_appointments", "splose/clients", "splose/locations", "splose/practitioners",
            "splose/services"} <= _deps(graph, "splose/appointments")  # fmt: skip
    assert {"cliniko/group_appointments", "cliniko/attendees", "splose/clients"} <= _deps(
        graph, "splose/group_appointments"
    )
    assert {"splose/clients", "splose/appointments", "splose/group_appointments",
            "splose/progress_note_templates"} <= _deps(graph, "splose/progress_notes")  # fmt: skip
    assert {"cliniko/patient_attachments", "splose/clients"} == _deps(graph, "splose/files")
    assert {"splose/practitioners", "splose/locations"} <= _deps(graph, "splose/availability")
    assert {"splose/practitioners", "splose/locations"} <= _deps(graph, "splose/provider_numbers")
    mapping = ("locations", "users", "practitioners", "services")
    loads = {f"splose/{n}" for n in SPLOSE if n != "import_report" and n not in mapping}
    assert loads <= _deps(graph, "splose/import_report")


def test_every_load_has_a_blocking_reconciliation_check_and_the_extras():
    checks = {
        (spec.asset_key.to_user_string(), spec.name, spec.blocking)
        for assets in defs.assets
        for spec in getattr(assets, "check_specs", [])
    }
    for name in SPLOSE:
        if name != "import_report":
            assert (f"splose/{name}", "reconciled", True) in checks, name
    assert ("splose/files", "checksums_match", True) in checks
    assert any(key == "splose/import_report" and check == "referential_integrity" for key, check, _ in checks)


def test_jobs_sensor_and_schedule():
    assert {job.name for job in defs.jobs} == {"import_job", "cliniko_extract_job"}
    assert [sensor.name for sensor in defs.sensors] == [
        "import_requests",
        "import_failed",
        "purge_deleted_imports",
        "stale_queued_runs",
    ]
    (schedule,) = defs.schedules
    assert (schedule.name, schedule.cron_schedule, schedule.job_name) == ("nightly_resync", "0 2 * * *", "import_job")
