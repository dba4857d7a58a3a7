"""The ``splose/*`` assets: resolve the mapping, then map and load every row of the mission's table.

Each load asset reads staged Cliniko records a batch at a time, turns them into import records with the
pure transforms, upserts them (idempotent, keyed by the Cliniko id) and reports one row of the
reconciliation: Cliniko count = loaded + skipped (by reason) + rejected. That equation is an asset
check that blocks the rest of the run when it does not hold, because then something was lost.
"""

import dataclasses
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from cliniko_assets import references
from cliniko_assets.attention import problem_skips
from cliniko_assets.catalog import linked_id, record_id
from cliniko_assets.extract import cliniko_key
from cliniko_assets.lifecycle import bound_import
from cliniko_assets.mapping import (
    UNKNOWN,
    ImportRequestResource,
    ResolvedMapping,
    Usage,
    resolve_mapping,
    service_for_type,
    unknown_type_service,
    with_stubs,
)
from cliniko_assets.partitions import tenants, validate_tenant
from cliniko_assets.transforms import (
    ImportContext,
    Skip,
    pop_warnings,
    to_splose_appointment,
    to_splose_availability,
    to_splose_client,
    to_splose_contact,
    to_splose_file,
    to_splose_group_appointment,
    to_splose_progress_note,
    to_splose_progress_note_template,
    to_splose_provider_number,
)
from splose_resources.splose import SploseRequestError, SploseResource, SploseWorkspace, UpsertResult
from splose_resources.staging import StagingStore, write_private

GROUP = "splose"
RECONCILED = "reconciled"
NOT_LINKED = "notes_without_appointment"  # progress notes loaded without an appointment (no booking link, or
# their appointment was not imported): they still attach to their client and practitioner

# The rows of the mission's table, in the order the report prints them.
ROWS = {
    "locations": "Businesses -> Locations",
    "users": "Users -> Users",
    "practitioners": "Practitioners -> Practitioners",
    "provider_numbers": "Practitioner reference numbers -> Provider numbers",
    "services": "Appointment types -> Services",
    "clients": "Patients -> Clients",
    "contacts": "Contacts -> Contacts",
    "appointments": "Individual appointments -> Appointments",
    "group_appointments": "Group appointments -> Group appointments",
    "attendees": "Attendees -> Group appointment clients",
    "availability": "Daily availabilities -> Availability",
    "files": "Patient attachments -> Files",
    "progress_note_templates": "Treatment note templates -> Progress note templates",
    "progress_notes": "Treatment notes -> Progress notes",
}


def splose_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["splose", name])


@dataclass
class RowReport:
    """One row of the reconciliation."""

    row: str
    cliniko: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)
    rejected: int = 0
    rejected_reasons: Counter = field(default_factory=Counter)
    rejected_ids: list[str] = field(default_factory=list)
    skipped_ids: dict[str, list[str]] = field(default_factory=dict)
    # Cliniko field name -> records loaded without that field (an unusable value, or a dangling reference).
    warnings: Counter = field(default_factory=Counter)
    # Other counts worth a line in the reconciliation, e.g. {"notes_without_appointment": 12}.
    facts: dict[str, int] = field(default_factory=dict)

    @property
    def loaded(self) -> int:
        return self.created + self.updated + self.unchanged

    @property
    def unaccounted(self) -> int:
        return self.cliniko - self.loaded - sum(self.skipped.values()) - self.rejected

    def skip(self, reason: str, count: int = 1, record_id: str | None = None) -> None:
        self.skipped[reason] += count
        ids = self.skipped_ids.setdefault(reason, [])
        if record_id and len(ids) < 100:
            ids.append(record_id)

    def count_skip(self, skip: Skip) -> None:
        self.skip(skip.reason, record_id=skip.cliniko_id or None)

    def absorb(self, result: UpsertResult) -> None:
        counts = Counter(record.action for record in result.records)
        self.created += counts["created"]
        self.updated += counts["updated"]
        self.unchanged += counts["unchanged"]
        for rejected in result.errors:
            self.reject(rejected.external_id, rejected.message)

    def reject(self, external_id: str | None, message: str) -> None:
        self.rejected += 1
        self.rejected_reasons[_message_shape(message)] += 1
        if external_id and len(self.rejected_ids) < 500:
            self.rejected_ids.append(external_id)

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.update(
            skipped=dict(self.skipped),
            rejected_reasons=dict(self.rejected_reasons),
            loaded=self.loaded,
            unaccounted=self.unaccounted,
        )
        return data

    @classmethod
    def from_json(cls, data: dict) -> "RowReport":
        names = {f.name for f in dataclasses.fields(cls)}
        report = cls(**{k: v for k, v in data.items() if k in names})
        for name in ("skipped", "rejected_reasons", "warnings"):
            setattr(report, name, Counter(getattr(report, name)))
        return report


def _message_shape(message: str) -> str:
    """Splose's message without the values it may quote: only field names and the kind of problem remain."""
    masked = re.sub(r"'[^']*'|\"[^\"]*\"", "<value>", message)
    return re.sub(r"\d+", "#", masked)[:160]


class LoadRun:
    """What a load asset needs for one tenant: its import, staged records, mapping and report."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        staging: StagingStore,
        request: ImportRequestResource,
    ) -> None:
        self.context = context
        self.tenant = validate_tenant(context.partition_key)
        self.staging = staging
        self.request = request
        if not request.import_id:
            raise dg.Failure(
                f"No import request given for tenant '{self.tenant}': set resources.import_request.config.import_id "
                "in the run config (the import-request sensor does this for submitted imports)."
            )
        self.import_id = int(request.import_id)
        self.directory = staging.splose_dir(self.tenant)

    def included(self, data_type: str) -> bool:
        return not self.request.include or data_type in self.request.include

    def records(self, resource: str) -> Iterator[dict]:
        for batch in self.staging.iter_records(self.tenant, resource):
            yield from batch

    @property
    def mapping_path(self) -> Path:
        return self.directory / f"mapping-{self.import_id}.json"

    def mapping(self) -> ResolvedMapping:
        if not self.mapping_path.exists():
            raise dg.Failure(
                f"The mapping of tenant '{self.tenant}' for import {self.import_id} has not been resolved yet: "
                "materialize splose/locations, splose/users, splose/practitioners and splose/services first."
            )
        data = json.loads(self.mapping_path.read_text())
        data["problems"] = []
        return ResolvedMapping(**data)

    def save_mapping(self, resolved: ResolvedMapping) -> None:
        data = dataclasses.asdict(resolved)
        data.pop("problems")
        write_private(self.mapping_path, json.dumps(data))

    def import_context(self, workspace: SploseWorkspace, *entities: str) -> ImportContext:
        imported = {entity: frozenset(workspace.imports.crosswalk(self.import_id, entity)) for entity in entities}
        return self.mapping().context(imported)

    def report_path(self, name: str) -> Path:
        return self.directory / f"report-{self.import_id}-{name}.json"

    def finish(self, name: str, report: RowReport, extra: dict | None = None) -> dg.MaterializeResult:
        """Persist the row, and return the materialization with its reconciliation check."""
        write_private(self.report_path(name), json.dumps(report.to_json()))
        self.context.log.info(
            f"splose/{name} for tenant '{self.tenant}': cliniko {report.cliniko}, loaded {report.loaded} "
            f"(created {report.created}, updated {report.updated}, unchanged {report.unchanged}), "
            f"skipped {sum(report.skipped.values())}, rejected {report.rejected}"
        )
        return dg.MaterializeResult(
            asset_key=splose_key(name),
            metadata={**report_metadata(report), **(extra or {})},
            check_results=[reconciliation_check(name, report)],
        )


def report_metadata(report: RowReport) -> dict:
    return {
        "cliniko": report.cliniko,
        "loaded": report.loaded,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "skipped": sum(report.skipped.values()),
        "skipped_by_reason": dg.MetadataValue.json(dict(report.skipped)),
        "rejected": report.rejected,
        "rejected_by_message": dg.MetadataValue.json(dict(report.rejected_reasons)),
        "rejected_ids": dg.MetadataValue.json(report.rejected_ids[:100]),
        "unaccounted": report.unaccounted,
        "warnings_by_field": dg.MetadataValue.json(dict(report.warnings)),
        "needs_attention": dg.MetadataValue.json(problem_skips(report)),
        **report.facts,
    }


def reconciliation_check(name: str, report: RowReport) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=splose_key(name),
        check_name=RECONCILED,
        passed=report.unaccounted == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{report.row}: Cliniko {report.cliniko} = loaded {report.loaded} + skipped "
        f"{sum(report.skipped.values())} + rejected {report.rejected}",
        metadata={"unaccounted": report.unaccounted},
    )


def _reconciled(name: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        RECONCILED,
        asset=splose_key(name),
        blocking=True,
        description="Cliniko count = loaded + skipped (by reason) + rejected; a failure means data was lost.",
    )


def _spec(name: str, deps: list[dg.AssetKey], description: str) -> dg.AssetSpec:
    return dg.AssetSpec(splose_key(name), deps=deps, description=description, group_name=GROUP, kinds={"python"})


# -- the mapping ----------------------------------------------------------------------------------

MAPPING_ASSETS = ("locations", "users", "practitioners", "services")
MISSING_TRACKED = ("patients", "treatment_note_templates")  # records point at ids of these Cliniko may lack
USAGE_SOURCES = (
    "individual_appointments",
    "group_appointments",
    "daily_availabilities",
    "practitioner_reference_numbers",
    "treatment_notes",
)


@dg.multi_asset(
    name="splose_mapping",
    specs=[
        _spec("locations", [cliniko_key("businesses")], "Cliniko businesses resolved to Splose locations."),
        _spec("users", [cliniko_key("users")], "Cliniko users resolved to Splose practitioners."),
        _spec(
            "practitioners",
            [cliniko_key("practitioners"), cliniko_key("users")],
            "Cliniko practitioners (active and inactive) resolved to Splose practitioners.",
        ),
        _spec(
            "services",
            [cliniko_key("appointment_types"), *(cliniko_key(r) for r in USAGE_SOURCES)],
            "Cliniko appointment types resolved to Splose services; those mapped to 'create' are created.",
        ),
    ],
    check_specs=[_reconciled(name) for name in MAPPING_ASSETS],
    partitions_def=tenants,
)
def splose_mapping(
    context: dg.AssetExecutionContext,
    staging: StagingStore,
    splose: SploseResource,
    import_request: ImportRequestResource,
):
    bound_import(context, splose, import_request)
    run = LoadRun(context, staging, import_request)
    usage = Usage()
    for resource in USAGE_SOURCES:
        for record in run.records(resource):
            usage.add(record)
    staged = {name: list(run.records(name)) for name in ("businesses", "users", "practitioners", "appointment_types")}
    account = references.read_account_settings(staging, run.tenant)
    with splose.workspace(run.tenant, log=context.log) as workspace:
        resolved = resolve_mapping(
            import_request.mapping,
            businesses=staged["businesses"],
            users=staged["users"],
            practitioners=staged["practitioners"],
            appointment_types=staged["appointment_types"],
            usage=usage,
            splose_locations=list(workspace.v1.locations(include_archived=True)),
            splose_practitioners=list(workspace.v1.practitioners(include_archived=True)),
            splose_services=list(workspace.v1.services(include_archived=True)),
            account_time_zone=account.get("time_zone"),
            account_country=account.get("country"),
            missing={r: references.missing_ids(staging, run.tenant, r) for r in MISSING_TRACKED},
        )
        proposals = dg.MetadataValue.json(resolved.proposals)
        if resolved.problems:
            raise dg.Failure(
                description=resolved.failure_message(run.tenant),
                metadata={"problems": len(resolved.problems), "proposed_mapping": proposals},
            )
        types = with_stubs(staged["appointment_types"], usage.appointment_types)
        services, created = _services(run, workspace, types, resolved, usage)
        unlisted_types = set(resolved.not_listed.get("appointment type", {}))
    run.save_mapping(resolved)
    extra = {
        "proposed_mapping": proposals,
        "not_listed_by_cliniko": dg.MetadataValue.json(resolved.not_listed),
        "unresolved_references": dg.MetadataValue.json(resolved.unresolved),
    }
    yield run.finish("locations", _locations_row(staged["businesses"], resolved, usage), _zones(resolved, extra))
    yield run.finish("users", _users_row(staged["users"], staged["practitioners"], resolved), extra)
    yield run.finish("practitioners", _practitioners_row(staged["practitioners"], resolved, usage), extra)
    yield run.finish(
        "services",
        services,
        {
            **extra,
            "services_created": created,
            "types_not_listed_created": len(unlisted_types & set(resolved.services_to_create)),
            "types_not_listed_to_unknown_service": len(resolved.services_to_unknown),
        },
    )


def _zones(resolved: ResolvedMapping, extra: dict) -> dict:
    return {
        **extra,
        "time_zones_from": dg.MetadataValue.json(resolved.time_zones_by_source()),
        "default_phone_region": resolved.default_region or "",
    }


def _locations_row(businesses: list[dict], resolved: ResolvedMapping, usage: Usage) -> RowReport:
    rows = with_stubs(businesses, usage.businesses)
    report = RowReport(ROWS["locations"], cliniko=len(rows))
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
    return report


def _practitioners_row(practitioners: list[dict], resolved: ResolvedMapping, usage: Usage) -> RowReport:
    rows = with_stubs(practitioners, usage.practitioners)
    report = RowReport(ROWS["practitioners"], cliniko=len(rows))
    unresolved = set(resolved.unresolved.get("practitioner", ()))
    for practitioner in rows:
        pid = record_id(practitioner)
        if pid in resolved.practitioners:
            report.unchanged += 1
        else:
            report.skip("not listed by Cliniko, not mapped" if pid in unresolved else "not mapped (no data)")
    return report


def _users_row(users: list[dict], practitioners: list[dict], resolved: ResolvedMapping) -> RowReport:
    report = RowReport(ROWS["users"], cliniko=len(users))
    practitioner_users = {linked_id(p, "user"): record_id(p) for p in practitioners}
    for user in users:
        uid = record_id(user)
        if uid in resolved.users or resolved.practitioners.get(practitioner_users.get(uid) or "") is not None:
            report.unchanged += 1
        else:
            report.skip("not mapped (not a practitioner with data)")
    return report


def _services(
    run: LoadRun, workspace: SploseWorkspace, types: list[dict], resolved: ResolvedMapping, usage: Usage
) -> tuple[RowReport, int]:
    """The appointment types row: create the services the mapping asks for (and the shared "unknown" one)."""
    report = RowReport(ROWS["services"], cliniko=len(types))
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
        return report, 0
    result = workspace.imports.upsert(run.import_id, "services", records)
    # The shared "unknown" service is no Cliniko record: the types routed to it are counted below instead.
    ours = dataclasses.replace(
        result,
        records=[r for r in result.records if r.external_id != UNKNOWN],
        errors=[e for e in result.errors if e.external_id != UNKNOWN],
    )
    report.absorb(ours)
    crosswalk = workspace.imports.crosswalk(run.import_id, "services")
    resolved.services.update({tid: crosswalk[tid] for tid in to_create if tid in crosswalk})
    for tid in to_unknown:
        if UNKNOWN in crosswalk:
            resolved.services[tid] = crosswalk[UNKNOWN]
            report.unchanged += 1
        else:
            report.reject(tid, "the service for unknown or deleted appointment types was rejected by Splose")
    return report, len(records)


# -- record loads ----------------------------------------------------------------------------------


def load_records(
    run: LoadRun,
    workspace: SploseWorkspace,
    report: RowReport,
    entity: str,
    outcomes: Iterable[dict | Skip],
    actions: dict[str, str] | None = None,
) -> None:
    """Upsert every transformed record in batches of 500 and count skips; ``actions`` collects what happened."""
    pending: list[dict] = []

    def flush() -> None:
        if pending:
            result = workspace.imports.upsert(run.import_id, entity, pending)
            report.absorb(result)
            if actions is not None:
                actions.update({r.external_id: r.action for r in result.records})
            pending.clear()

    for outcome in outcomes:
        report.cliniko += 1
        if isinstance(outcome, Skip):
            report.count_skip(outcome)
            continue
        report.warnings.update(pop_warnings(outcome))
        pending.append(outcome)
        if len(pending) >= 500:
            flush()
    flush()


def _load_asset(
    name: str,
    deps: list[dg.AssetKey],
    description: str,
    build: Callable[[LoadRun, SploseWorkspace, RowReport], dict | None],
    checks: tuple[tuple[str, str, str], ...] = (),
) -> dg.AssetsDefinition:
    """``checks``: (check name, metadata key that must be 0, description), evaluated on what ``build`` returns."""

    @dg.multi_asset(
        name=f"splose_{name}",
        specs=[_spec(name, deps, description)],
        check_specs=[
            _reconciled(name),
            *(
                dg.AssetCheckSpec(check, asset=splose_key(name), blocking=True, description=text)
                for check, _, text in checks
            ),
        ],
        partitions_def=tenants,
    )
    def _asset(
        context: dg.AssetExecutionContext,
        staging: StagingStore,
        splose: SploseResource,
        import_request: ImportRequestResource,
    ):
        bound_import(context, splose, import_request)
        run = LoadRun(context, staging, import_request)
        report = RowReport(ROWS[name])
        extra = None
        with splose.workspace(run.tenant, log=context.log) as workspace:
            if run.included(name):
                extra = build(run, workspace, report)
            else:
                report.cliniko = sum(1 for _ in run.records(SOURCES[name]))
                report.skip("not requested by the clinic", report.cliniko)
        result = run.finish(name, report, extra)
        extra_results = [
            dg.AssetCheckResult(
                asset_key=splose_key(name),
                check_name=check,
                passed=not (extra or {}).get(key),
                metadata={key: (extra or {}).get(key, 0)},
            )
            for check, key, _ in checks
        ]
        yield result._replace(check_results=[*result.check_results, *extra_results])

    return _asset


SOURCES = {
    "provider_numbers": "practitioner_reference_numbers",
    "contacts": "contacts",
    "clients": "patients",
    "appointments": "individual_appointments",
    "group_appointments": "group_appointments",
    "availability": "daily_availabilities",
    "files": "patient_attachments",
    "progress_note_templates": "treatment_note_templates",
    "progress_notes": "treatment_notes",
}


def _provider_numbers(run: LoadRun, workspace: SploseWorkspace, report: RowReport) -> None:
    ctx = run.import_context(workspace)
    outcomes = (to_splose_provider_number(r, ctx) for r in run.records("practitioner_reference_numbers"))
    load_records(run, workspace, report, "providerNumbers", outcomes)


def _contacts(run: LoadRun, workspace: SploseWorkspace, report: RowReport) -> None:
    ctx = run.import_context(workspace)
    outcomes = (_live(r) or to_splose_contact(r, ctx) for r in run.records("contacts"))
    load_records(run, workspace, report, "contacts", outcomes)


def _clients(run: LoadRun, workspace: SploseWorkspace, report: RowReport) -> None:
    ctx = run.import_context(workspace, "contacts")
    load_records(run, workspace, report, "clients", (to_splose_client(r, ctx) for r in run.records("patients")))


def _appointments(run: LoadRun, workspace: SploseWorkspace, report: RowReport) -> dict:
    """Two passes, so that every series' first appointment exists before the repeats that point at it."""
    ctx = run.import_context(workspace, "clients")

    def outcomes(repeats: bool) -> Iterator[dict | Skip]:
        for record in run.records("individual_appointments"):
            outcome = to_splose_appointment(record, ctx)
            is_repeat = not isinstance(outcome, Skip) and bool(outcome.get("repeatOfExternalId"))
            if is_repeat == repeats:
                yield outcome

    load_records(run, workspace, report, "appointments", outcomes(repeats=False))
    imported = set(workspace.imports.crosswalk(run.import_id, "appointments"))
    unlinked = 0

    def linked(outcome: dict | Skip) -> dict | Skip:
        nonlocal unlinked
        if not isinstance(outcome, Skip) and outcome["repeatOfExternalId"] not in imported:
            # The series' first appointment was skipped (deleted, ignored location...): keep this one alone.
            unlinked += 1
            return {**outcome, "repeatOfExternalId": None}
        return outcome

    load_records(run, workspace, report, "appointments", (linked(o) for o in outcomes(repeats=True)))
    return {"repeats_without_their_first_appointment": unlinked}


def _group_appointments(run: LoadRun, workspace: SploseWorkspace, report: RowReport) -> dict:
    ctx = run.import_context(workspace, "clients")
    attendees: dict[str, list[dict]] = defaultdict(list)
    for attendee in run.records("attendees"):
        booking = linked_id(attendee, "booking")
        attendees[booking or ""].append(attendee)
    attendee_report = RowReport(ROWS["attendees"], cliniko=sum(len(v) for v in attendees.values()))
    outcomes = []
    entries: dict[str, list[str]] = {}
    for group in run.records("group_appointments"):
        gid = record_id(group) or ""
        # Attendees in id order, so the same group is the same record whatever order staging holds them in.
        members = sorted(attendees.pop(gid, []), key=lambda a: _numeric_id(record_id(a)))
        appointment, skipped = to_splose_group_appointment(group, members, ctx)
        for skip in skipped:
            attendee_report.count_skip(skip)
        if not isinstance(appointment, Skip):
            entries[gid] = [entry["externalId"] for entry in appointment["appointmentPatients"]]
        outcomes.append(appointment)
    for booking, rest in attendees.items():
        # Attendees of individual appointments or of bookings that no longer exist.
        reason = "booking is not a group appointment" if booking else "no booking link"
        attendee_report.skip(reason, len(rest))
    actions: dict[str, str] = {}
    load_records(run, workspace, report, "appointments", outcomes, actions)
    # What the integrity check will expect to find on each group appointment in Splose.
    expected = {gid: len(ids) for gid, ids in entries.items() if gid in actions}
    write_private(run.directory / f"group-entries-{run.import_id}.json", json.dumps(expected))
    for gid, ids in entries.items():
        action = actions.get(gid)
        if action is None:
            for aid in ids:
                attendee_report.reject(aid, "its group appointment was rejected by Splose")
        else:
            setattr(attendee_report, action, getattr(attendee_report, action) + len(ids))
    write_private(run.report_path("attendees"), json.dumps(attendee_report.to_json()))
    return {f"attendees_{key}": value for key, value in report_metadata(attendee_report).items()}


def _availability(run: LoadRun, workspace: SploseWorkspace, report: RowReport) -> None:
    ctx = run.import_context(workspace)
    rows: list[dict] = []
    owners: dict[str, str] = {}
    for record in run.records("daily_availabilities"):
        report.cliniko += 1
        outcome = to_splose_availability(record, ctx)
        if isinstance(outcome, Skip):
            report.count_skip(outcome)
            continue
        if not outcome:
            report.skip("no availability ranges")
            continue
        for row in outcome:
            owners[row["externalId"]] = record_id(record) or ""
        rows.extend(outcome)
    result = workspace.imports.upsert(run.import_id, "availability", rows)
    failed = {owners.get(e.external_id or "", "") for e in result.errors}
    actions: dict[str, set[str]] = defaultdict(set)
    for upserted in result.records:
        actions[owners[upserted.external_id]].add(upserted.action)
    for owner in failed:
        report.reject(owner, next(e.message for e in result.errors if owners.get(e.external_id or "") == owner))
    for owner, seen in actions.items():
        if owner in failed:
            continue
        if "created" in seen:
            report.created += 1
        elif "updated" in seen:
            report.updated += 1
        else:
            report.unchanged += 1


def _files(run: LoadRun, workspace: SploseWorkspace, report: RowReport) -> dict:
    ctx = run.import_context(workspace, "clients")
    manifest = run.staging.read_files_manifest(run.tenant, "patient_attachments").set_index("id")
    failures = run.staging.read_file_failures(run.tenant, "patient_attachments")
    checksum_mismatches = 0
    for attachment in run.records("patient_attachments"):
        report.cliniko += 1
        aid = record_id(attachment) or ""
        if attachment.get("_state") == "deleted":
            report.skip("deleted in Cliniko", record_id=aid)
            continue
        if attachment.get("processing_completed") is False:
            report.skip("not yet processed by Cliniko", record_id=aid)
            continue
        if aid not in manifest.index:
            report.skip(failures.get(aid, "bytes could not be downloaded from Cliniko"), record_id=aid)
            continue
        staged = manifest.loc[aid]
        form = to_splose_file(attachment, str(staged["sha256"]), int(staged["size"]))
        if isinstance(form, Skip):
            report.skip(form.reason, record_id=aid)
            continue
        if form["clientExternalId"] not in ctx.imported["clients"]:
            report.skip("client not imported", record_id=aid)
            continue
        try:
            answer = workspace.imports.upload_file(
                run.import_id,
                external_id=form["externalId"],
                client_external_id=form["clientExternalId"],
                path=run.staging.file_path(run.tenant, "patient_attachments", aid),
                filename=form.get("filename"),
                content_type=form.get("contentType"),
                description=form.get("description"),
                created_at=form.get("createdAt"),
                sha256=form.get("sha256"),
            )
        except SploseRequestError as exc:  # a file Splose refuses is counted with its message; the rest go on
            report.reject(aid, str(exc))
            continue
        if answer.get("sha256") and answer["sha256"] != form["sha256"]:
            checksum_mismatches += 1
            report.reject(aid, "checksum mismatch after upload")
            continue
        action = answer.get("action", "created")
        setattr(report, action, getattr(report, action) + 1)
    return {"checksum_mismatches": checksum_mismatches, "checksums_verified": report.loaded}


def _progress_note_templates(run: LoadRun, workspace: SploseWorkspace, report: RowReport) -> None:
    outcomes = (to_splose_progress_note_template(r) for r in run.records("treatment_note_templates"))
    load_records(run, workspace, report, "progressNoteTemplates", outcomes)


def _progress_notes(run: LoadRun, workspace: SploseWorkspace, report: RowReport) -> None:
    ctx = run.import_context(workspace, "clients", "appointments", "progressNoteTemplates")
    outcomes = (to_splose_progress_note(r, ctx) for r in run.records("treatment_notes"))
    actions: dict[str, str] = {}
    unlinked: set[str] = set()

    def noted(outcome: dict | Skip) -> dict | Skip:
        if not isinstance(outcome, Skip) and outcome.get("appointmentExternalId") is None:
            unlinked.add(outcome["externalId"])
        return outcome

    load_records(run, workspace, report, "progressNotes", (noted(o) for o in outcomes), actions)
    report.facts[NOT_LINKED] = len(unlinked & set(actions))


def _numeric_id(value: str | None) -> int:
    return int(value) if value and value.isdigit() else -1


def _live(record: dict) -> Skip | None:
    return Skip(record_id(record) or "", "deleted in Cliniko") if record.get("_state") == "deleted" else None


MAPPED = [splose_key(name) for name in MAPPING_ASSETS]

load_assets = [
    _load_asset(
        "provider_numbers",
        [cliniko_key("practitioner_reference_numbers"), splose_key("practitioners"), splose_key("locations")],
        "Practitioner reference numbers as provider numbers on the mapped practitioners, per location.",
        _provider_numbers,
    ),
    _load_asset("contacts", [cliniko_key("contacts"), *MAPPED], "Contacts.", _contacts),
    _load_asset(
        "clients",
        [cliniko_key("patients"), splose_key("contacts")],
        "Patients (incl. archived) as clients; referring doctors linked to contacts.",
        _clients,
    ),
    _load_asset(
        "appointments",
        [cliniko_key("individual_appointments"), splose_key("clients"), *MAPPED],
        "Individual appointments with status, cancellation reason and note.",
        _appointments,
    ),
    _load_asset(
        "group_appointments",
        [cliniko_key("group_appointments"), cliniko_key("attendees"), splose_key("clients"), *MAPPED],
        "Group appointments: one appointment, maxPatients, one entry per attendee with its status.",
        _group_appointments,
    ),
    _load_asset(
        "availability",
        [cliniko_key("daily_availabilities"), cliniko_key("businesses"), *MAPPED],
        "Weekly availability per practitioner and location.",
        _availability,
    ),
    _load_asset(
        "files",
        [cliniko_key("patient_attachments"), splose_key("clients")],
        "Patient attachments as files: bytes streamed, checksum verified by Splose.",
        _files,
        checks=(
            (
                "checksums_match",
                "checksum_mismatches",
                "Every uploaded file's sha256, as Splose computed it, equals the staged bytes' sha256.",
            ),
        ),
    ),
    _load_asset(
        "progress_note_templates",
        [cliniko_key("treatment_note_templates"), *MAPPED],
        "Treatment note templates with their sections and questions.",
        _progress_note_templates,
    ),
    _load_asset(
        "progress_notes",
        [
            cliniko_key("treatment_notes"),
            splose_key("clients"),
            splose_key("appointments"),
            splose_key("group_appointments"),
            splose_key("progress_note_templates"),
        ],
        "Treatment notes as progress notes, draft or final, linked to client, practitioner and appointment.",
        _progress_notes,
    ),
]
