"""The loaded code location, spelled out: an accidental change to the graph shows up here."""

from pathlib import Path

import dagster as dg

from cliniko_assets.definitions import defs
from cliniko_assets.extract import STEPS
from cliniko_assets.mapping_check import CHECKED

CLINIKO = [
    "appointment_types", "attendees", "businesses", "contacts", "daily_availabilities", "group_appointments",
    "individual_appointments", "patient_attachments", "patients", "practitioner_reference_numbers",
    "practitioners", "references", "treatment_note_templates", "treatment_notes", "users",
]  # fmt: skip
SPLOSE = [
    "appointments", "availability", "clients", "contacts", "files", "group_appointments", "import_report",
    "import_preview", "locations", "mapping_check", "practitioners", "progress_note_templates", "progress_notes",
    "provider_numbers", "referenced_clients", "services", "users",
]  # fmt: skip
NOT_ROWS = ("import_report", "import_preview", "mapping_check")


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
    assert _deps(graph, "splose/mapping_check") == {f"cliniko/{n}" for n in CHECKED}
    assert _deps(graph, "splose/contacts") == {"cliniko/contacts", "splose/mapping_check"}
    assert _deps(graph, "splose/clients") == {"cliniko/patients", "splose/contacts", "splose/mapping_check"}
    assert {"cliniko/references", "splose/clients"} <= _deps(graph, "splose/referenced_clients")
    assert {"cliniko/individual_appointments", "splose/clients", "splose/locations", "splose/practitioners",
            "splose/services"} <= _deps(graph, "splose/appointments")  # fmt: skip
    assert {"cliniko/group_appointments", "cliniko/attendees", "splose/clients"} <= _deps(
        graph, "splose/group_appointments"
    )
    assert {"splose/clients", "splose/appointments", "splose/group_appointments",
            "splose/progress_note_templates"} <= _deps(graph, "splose/progress_notes")  # fmt: skip
    assert {"cliniko/patient_attachments", "splose/clients", "splose/referenced_clients"} == _deps(
        graph, "splose/files"
    )
    assert {"splose/practitioners", "splose/locations"} <= _deps(graph, "splose/availability")
    assert {"splose/practitioners", "splose/locations"} <= _deps(graph, "splose/provider_numbers")
    mapping = ("locations", "users", "practitioners", "services")
    loads = {f"splose/{n}" for n in SPLOSE if n not in (*NOT_ROWS, *mapping)}
    assert loads <= _deps(graph, "splose/import_report")


def test_the_first_loads_wait_for_the_clinic_not_for_its_appointments():
    """Contacts and clients (and the mapping check before them) need only the first extraction step's assets:
    they load while the appointments and notes are extracted, and the step that extracts those runs after."""
    graph = defs.resolve_asset_graph()
    first_step = {f"cliniko/{n}" for n in STEPS["cliniko_clinic"]}
    for key in ("splose/mapping_check", "splose/contacts", "splose/clients"):
        upstream = {k.to_user_string() for k in graph.upstream_key_iterator(dg.AssetKey.from_user_string(key))}
        assert {k for k in upstream if k.startswith("cliniko/")} <= first_step, key
    assert {"cliniko/patients", "cliniko/contacts", "cliniko/businesses"} <= first_step
    assert "cliniko/individual_appointments" not in first_step
    # The by-id pass comes after what points and what is pointed at: the second step waits for the first.
    assert {"cliniko/individual_appointments", "cliniko/patients"} <= _deps(graph, "cliniko/references")


def test_every_load_has_a_blocking_reconciliation_check_and_the_extras():
    checks = {
        (spec.asset_key.to_user_string(), spec.name, spec.blocking)
        for assets in defs.assets
        for spec in getattr(assets, "check_specs", [])
    }
    for name in SPLOSE:
        if name not in NOT_ROWS:
            assert (f"splose/{name}", "reconciled", True) in checks, name
    assert ("splose/files", "checksums_match", True) in checks
    assert any(key == "splose/import_report" and check == "referential_integrity" for key, check, _ in checks)


def test_jobs_sensors_and_schedules():
    assert {job.name for job in defs.jobs} == {
        "import_job",
        "cliniko_extract_job",
        "preview_job",
        "undo_import_job",
        "purge_deleted_imports_job",
    }
    assert [sensor.name for sensor in defs.sensors] == [
        "import_requests",
        "import_failed",
        "import_cancelled",
        "stale_queued_runs",
    ]
    schedules = {(s.name, s.cron_schedule, s.job_name) for s in defs.schedules}
    assert schedules == {
        ("nightly_resync", "0 2 * * *", "import_job"),
        ("purge_deleted_imports_schedule", "17 * * * *", "purge_deleted_imports_job"),
    }


def test_the_preview_is_no_part_of_the_import_and_writes_nothing_it_does_not_extract():
    import_keys = defs.resolve_job_def("import_job").asset_layer.executable_asset_keys
    preview_keys = defs.resolve_job_def("preview_job").asset_layer.executable_asset_keys
    preview = dg.AssetKey(["splose", "import_preview"])
    assert preview not in import_keys
    assert {key.to_user_string() for key in preview_keys} == {f"cliniko/{n}" for n in CLINIKO} | {
        "splose/import_preview"
    }


def test_urls_and_the_token_are_environment_variables_and_the_token_never_prints():
    splose, cliniko = defs.resources["splose"], defs.resources["cliniko"]
    assert (
        isinstance(splose.platform_token, dg.EnvVar) and splose.platform_token.env_var_name == "SPLOSE_PLATFORM_TOKEN"
    )
    assert isinstance(splose.api_url, dg.EnvVar) and splose.api_url.env_var_name == "SPLOSE_API_URL"
    assert isinstance(cliniko.api_url, dg.EnvVar) and cliniko.api_url.env_var_name == "CLINIKO_API_URL"
    assert "platform_token" not in repr(splose)
    # A secret field: the UI masks its value wherever it would show one (an EnvVar shows by name only).
    fields = type(splose).to_config_schema().as_field().config_type.fields
    assert fields["platform_token"].is_secret and not fields["api_url"].is_secret


def test_no_module_of_the_asset_package_is_over_400_lines():
    package = Path(__file__).resolve().parents[2] / "cliniko_assets"
    sizes = {path.relative_to(package).as_posix(): len(path.read_text().splitlines()) for path in package.rglob("*.py")}
    assert len(sizes) > 30
    assert {name: n for name, n in sizes.items() if n > 400} == {}


def test_each_module_of_the_resources_and_each_entry_point_imports_first_in_a_fresh_interpreter():
    """An import cycle breaks only the processes that import one of its modules first (a daemon's code server
    did, importing the definitions: deployment -> shared_limits -> ratelimit -> staging -> deployment)."""
    import subprocess
    import sys

    project = Path(__file__).resolve().parents[2]
    modules = sorted(f"splose_resources.{path.stem}" for path in (project / "splose_resources").glob("[!_]*.py"))
    modules += ["cliniko_assets.definitions", "cliniko_assets.preload", "cliniko_assets.cli"]
    failed = {}
    for start in range(0, len(modules), 4):  # four interpreters at a time, each importing its module first
        runs = {
            name: subprocess.Popen(
                [sys.executable, "-c", f"import {name}"], cwd=project, stderr=subprocess.PIPE, text=True
            )
            for name in modules[start : start + 4]
        }
        for name, process in runs.items():
            _, err = process.communicate(timeout=300)
            if process.returncode:
                failed[name] = err.strip().splitlines()[-1:]
    assert len(modules) >= 15 and failed == {}
