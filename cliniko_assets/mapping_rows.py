"""The mapping rows: Cliniko businesses, users, practitioners and appointment types resolved to the workspace.

One step resolves the clinic's mapping against the staged records (the records found by id and the usage
included) and the Splose workspace (read through v1), after ``splose/mapping_check`` checked it before any
write, and fails with every problem listed; then it counts the four rows and creates the services mapped
to "create" (and the shared one for unknown types). The preview runs the same functions
with a sink that writes nothing.
"""

import dataclasses

import dagster as dg

from cliniko_assets import references
from cliniko_assets.catalog import linked_id, record_id
from cliniko_assets.loading import RUN_IMPORT_KEY, LoadRun
from cliniko_assets.mapping import MISSING, UNKNOWN, ImportMapping, ResolvedMapping, Usage
from cliniko_assets.mapping_resolution import resolve_mapping, with_stubs
from cliniko_assets.reconciliation import RowReport
from cliniko_assets.transforms import Skip, to_splose_service
from splose_resources.splose import SploseV1Client

MAPPING_ASSETS = ("locations", "users", "practitioners", "services")
MAPPED_RESOURCES = ("businesses", "users", "practitioners", "appointment_types")
MISSING_TRACKED = ("patients", "treatment_note_templates")  # records point at ids of these Cliniko may lack
USAGE_SOURCES = (
    "individual_appointments",
    "group_appointments",
    "daily_availabilities",
    "practitioner_reference_numbers",
    "treatment_notes",
)


@dataclasses.dataclass
class StagedMapping:
    """What the mapping is resolved against: the staged records it maps, and which of them have data."""

    records: dict[str, list[dict]]
    usage: Usage
    account: dict
    missing: dict[str, list[str]]


def staged_for_mapping(run: LoadRun) -> StagedMapping:
    usage = Usage()
    for resource in USAGE_SOURCES:
        for record in run.records(resource):
            usage.add(record)
    return StagedMapping(
        records={name: list(run.records(name)) for name in MAPPED_RESOURCES},
        usage=usage,
        account=references.read_account_settings(run.staging, run.tenant),
        missing={r: list(references.missing_ids(run.staging, run.tenant, r)) for r in MISSING_TRACKED},
    )


def resolve(run: LoadRun, staged: StagedMapping, mapping: ImportMapping, v1: SploseV1Client) -> ResolvedMapping:
    """The mapping checked against the workspace (read through v1) and the data to import."""
    return resolve_mapping(
        mapping,
        businesses=staged.records["businesses"],
        users=staged.records["users"],
        practitioners=staged.records["practitioners"],
        appointment_types=staged.records["appointment_types"],
        usage=staged.usage,
        splose_locations=list(v1.locations(include_archived=True)),
        splose_practitioners=list(v1.practitioners(include_archived=True)),
        splose_services=list(v1.services(include_archived=True)),
        account_time_zone=staged.account.get("time_zone"),
        account_country=staged.account.get("country"),
        missing=staged.missing,
    )


def mapping_rows(
    run: LoadRun, staged: StagedMapping, resolved: ResolvedMapping, reports: dict[str, RowReport]
) -> dict[str, dict]:
    """Count the four mapping rows into ``reports`` and return each one's metadata; the services mapped to
    'create' are sent to the sink."""
    records, usage = staged.records, staged.usage
    types = with_stubs(records["appointment_types"], usage.appointment_types)
    created = _services(run, reports["services"], types, resolved, usage)
    unlisted_types = set(resolved.not_listed.get("appointment type", {}))
    extra = {
        "import_id": dg.MetadataValue.text(str(run.import_id)),
        "mapping": dg.MetadataValue.json(run.request.mapping_ids()),
        RUN_IMPORT_KEY: dg.MetadataValue.json(run.request.facts()),
        "proposed_mapping": dg.MetadataValue.json(resolved.proposals),
        "not_listed_by_cliniko": dg.MetadataValue.json(resolved.not_listed),
        "unresolved_references": dg.MetadataValue.json(resolved.unresolved),
    }
    _locations_row(reports["locations"], records["businesses"], resolved, usage)
    _users_row(reports["users"], records["users"], records["practitioners"], resolved)
    _practitioners_row(reports["practitioners"], records["practitioners"], resolved, usage)
    return {
        "locations": _zones(resolved, extra),
        "users": extra,
        "practitioners": extra,
        "services": {
            **extra,
            "services_created": created,
            "types_not_listed_created": len(unlisted_types & set(resolved.services_to_create)),
            "types_not_listed_to_unknown_service": len(resolved.services_to_unknown),
        },
    }


def _zones(resolved: ResolvedMapping, extra: dict) -> dict:
    return {
        **extra,
        "time_zones_from": dg.MetadataValue.json(resolved.time_zones_by_source()),
        "default_phone_region": resolved.default_region or "",
    }


def _locations_row(report: RowReport, businesses: list[dict], resolved: ResolvedMapping, usage: Usage) -> None:
    rows = with_stubs(businesses, usage.businesses)
    report.cliniko = len(rows)
    unresolved = set(resolved.unresolved.get("business", ()))
    for business in rows:
        bid = record_id(business)
        if bid in resolved.locations:
            if resolved.locations[bid] is None:
                report.skip("ignored by the clinic")
            else:
                report.unchanged += 1
        else:
            report.skip("not listed by Cliniko, not mapped" if bid in unresolved else "not mapped (no data)")


def _practitioners_row(report: RowReport, practitioners: list[dict], resolved: ResolvedMapping, usage: Usage) -> None:
    rows = with_stubs(practitioners, usage.practitioners)
    report.cliniko = len(rows)
    unresolved = set(resolved.unresolved.get("practitioner", ()))
    for practitioner in rows:
        pid = record_id(practitioner)
        if pid in resolved.practitioners:
            report.unchanged += 1
        else:
            report.skip("not listed by Cliniko, not mapped" if pid in unresolved else "not mapped (no data)")


def _users_row(report: RowReport, users: list[dict], practitioners: list[dict], resolved: ResolvedMapping) -> None:
    report.cliniko = len(users)
    practitioner_users = {linked_id(p, "user"): record_id(p) for p in practitioners}
    for user in users:
        uid = record_id(user)
        if uid in resolved.users or resolved.practitioners.get(practitioner_users.get(uid) or "") is not None:
            report.unchanged += 1
        else:
            report.skip("not mapped (not a practitioner with data)")


def _services(run: LoadRun, report: RowReport, types: list[dict], resolved: ResolvedMapping, usage: Usage) -> int:
    """The appointment types row: create the services the mapping asks for (and the shared "unknown" one);
    returns how many services were sent."""
    report.cliniko = len(types)
    to_create, to_unknown = set(resolved.services_to_create), sorted(resolved.services_to_unknown)
    records = []
    for appointment_type in types:
        tid = record_id(appointment_type)
        if tid in to_create:
            outcome = service_for_type(appointment_type, usage)
            if isinstance(outcome, Skip):
                report.count_skip(outcome)
            else:
                records.append(outcome)
        elif tid in resolved.services:
            report.unchanged += 1
        elif tid in resolved.services_ignored:
            report.skip("ignored by the clinic")
        elif tid not in to_unknown:
            report.skip("not mapped (no appointments use it)")
    if to_unknown:
        records.append(unknown_type_service(usage, to_unknown))
    if not records:
        return 0
    result = run.writes().upsert("services", records)
    # The shared "unknown" service is no Cliniko record: the types routed to it are counted below instead.
    ours = dataclasses.replace(
        result,
        records=[r for r in result.records if r.external_id != UNKNOWN],
        errors=[e for e in result.errors if e.external_id != UNKNOWN],
    )
    report.absorb(ours)
    crosswalk = run.writes().crosswalk("services")
    resolved.services.update({tid: crosswalk[tid] for tid in to_create if tid in crosswalk})
    for tid in to_unknown:
        if UNKNOWN in crosswalk:
            resolved.services[tid] = crosswalk[UNKNOWN]
            report.unchanged += 1
        else:
            report.reject(tid, "the service for unknown or deleted appointment types was rejected by Splose")
    return len(records)


def service_for_type(appointment_type: dict, usage: Usage) -> dict | Skip:
    """The service created for a type mapped (or defaulted) to ``create``: from its record, or, for a type
    Cliniko no longer has, an archived "Deleted appointment type <id>" shaped like its appointments."""
    if appointment_type.get("_state") != MISSING:
        return to_splose_service(appointment_type)
    tid = str(record_id(appointment_type))
    return {
        "externalId": tid,
        "name": f"Deleted appointment type {tid}",
        "description": f"Cliniko appointment type {tid}, which Cliniko no longer has; its appointments point at it.",
        "duration": usage.duration(tid),
        "color": None,
        "maxPatients": usage.max_patients(tid),
        "archived": True,
        "category": None,
    }


def unknown_type_service(usage: Usage, type_ids: list[str]) -> dict:
    """The one service for every unknown or deleted type, when ``services["unknown"]`` is ``create``."""
    return {
        "externalId": UNKNOWN,
        "name": "Unknown or deleted appointment type",
        "description": f"Appointments whose Cliniko appointment type Cliniko no longer lists ({len(type_ids)} types).",
        "duration": usage.duration(*type_ids),
        "color": None,
        "maxPatients": usage.max_patients(*type_ids),
        "archived": True,
        "category": None,
    }
