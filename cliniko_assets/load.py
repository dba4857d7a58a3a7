"""The ``splose/*`` assets: resolve the mapping, then map and load every row of the mission's table.

Each load asset reads staged Cliniko records a batch at a time, turns them into import records with the
pure transforms, upserts them (idempotent, keyed by the Cliniko id) and reports one row of the
reconciliation: Cliniko count = loaded + skipped (by reason) + rejected. That equation is an asset
check that blocks the rest of the run when it does not hold, because then something was lost.

The same code runs as a dry run for ``splose/import_preview`` (:mod:`cliniko_assets.preview`): a
:class:`LoadRun` whose sink writes nothing (:mod:`cliniko_assets.sinks`) and whose side files stay in
memory; everything else (mapping resolution, transforms, skips, counts) is shared.
"""

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import dagster as dg

from cliniko_assets import references
from cliniko_assets.catalog import linked_id, record_id
from cliniko_assets.changes import UNCHANGED, RunCrosswalk
from cliniko_assets.extract import cliniko_key
from cliniko_assets.failures import step_failures
from cliniko_assets.file_loads import load_files
from cliniko_assets.lifecycle import bound_import
from cliniko_assets.mapping import (
    UNKNOWN,
    ImportMapping,
    ImportRequestResource,
    ResolvedMapping,
    Usage,
    resolve_mapping,
    service_for_type,
    unknown_type_service,
    with_stubs,
)
from cliniko_assets.partitions import tenants, validate_tenant
from cliniko_assets.progress import LoadProgress
from cliniko_assets.reconciliation import (
    RECONCILED,
    ROWS,
    RowReport,
    counts_metadata,
    reconciliation_check,
    report_metadata,
    splose_key,
)
from cliniko_assets.resolution import RunImport
from cliniko_assets.sinks import Sink, SploseSink
from cliniko_assets.transforms import (
    ImportContext,
    Skip,
    pop_warnings,
    to_splose_appointment,
    to_splose_availability,
    to_splose_client,
    to_splose_contact,
    to_splose_group_appointment,
    to_splose_progress_note,
    to_splose_progress_note_template,
    to_splose_provider_number,
)
from splose_resources.splose import SploseImportClient, SploseResource, SploseV1Client
from splose_resources.staging import StagingStore

GROUP = "splose"
NOT_LINKED = "notes_without_appointment"  # progress notes loaded without an appointment (no booking link, or
# their appointment was not imported): they still attach to their client and practitioner
BATCH = 500


class LoadRun:
    """What a load asset needs for one tenant: its import, staged records, mapping, report and sink."""

    def __init__(self, context: dg.AssetExecutionContext, staging: StagingStore, run_import: RunImport | None) -> None:
        self.context = context
        self.tenant = validate_tenant(context.partition_key)
        self.staging = staging
        if run_import is None:
            raise dg.Failure(
                description=f"Tenant '{self.tenant}' has no import request in this run (local development): the "
                "loads need one. Submit an import request in Splose for the workspace, and run without "
                "local_development.",
                metadata={"tenant": self.tenant, "what_to_do": "run with an import request"},
            )
        self.request = run_import
        self.import_id = run_import.import_id
        self.sink: Sink | None = None
        self.tracker: LoadProgress | None = None
        self.side_reports: dict[str, RowReport] = {}  # rows a load reports besides its own (attendees)

    def included(self, data_type: str) -> bool:
        return self.request.included(data_type)

    def records(self, resource: str) -> Iterator[dict]:
        for batch in self.staging.iter_records(self.tenant, resource):
            yield from batch

    def count(self, resource: str) -> int:
        return len(self.staging.read_index(self.tenant, resource))

    def progress(self, name: str, total: int | None) -> LoadProgress:
        return LoadProgress(self.context.log, f"splose/{name} of tenant '{self.tenant}'", total)

    def advance(self, count: int = 1) -> None:
        if self.tracker is not None:
            self.tracker.advance(count)

    def splose_sink(self, imports: SploseImportClient, writer: str) -> SploseSink:
        """The sink of step ``writer``: sends what Splose does not hold yet, crosswalks read once per run."""
        known = RunCrosswalk(imports, self.import_id, self.staging, self.tenant, self.context.run.run_id, writer)
        return SploseSink(imports, self.import_id, known)

    def writes(self) -> Sink:
        if self.sink is None:
            raise RuntimeError("the load has no sink: set LoadRun.sink inside the Splose workspace")
        return self.sink

    def mapping(self) -> ResolvedMapping:
        data = self.read_side("mapping")
        if data is None:
            raise dg.Failure(
                description=f"The mapping of tenant '{self.tenant}' for import {self.import_id} has not been "
                "resolved yet: materialize splose/locations, splose/users, splose/practitioners and "
                "splose/services first.",
                metadata={"tenant": self.tenant, "import_id": self.import_id, "what_to_do": "run the mapping first"},
            )
        data["problems"] = []
        return ResolvedMapping(**data)

    def save_mapping(self, resolved: ResolvedMapping) -> None:
        data = dataclasses.asdict(resolved)
        data.pop("problems")
        self.write_side("mapping", data)

    def import_context(self, *entities: str) -> ImportContext:
        imported = {entity: frozenset(self.writes().crosswalk(entity)) for entity in entities}
        return self.mapping().context(imported)

    def save_report(self, name: str, report: RowReport) -> None:
        self.write_side(f"report-{name}", report.to_json())

    def read_report(self, name: str) -> RowReport | None:
        data = self.read_side(f"report-{name}")
        return None if data is None else RowReport.from_json(data)

    def write_side(self, name: str, data: object) -> None:
        """A file of this import kept in staging for later steps (the mapping, each row's report, what each
        group appointment should hold), wherever those steps run."""
        self.staging.write_json(self.tenant, f"splose/{name}-{self.import_id}.json", data)

    def read_side(self, name: str) -> Any:
        """What :meth:`write_side` kept under ``name`` for this import; None when nothing was."""
        return self.staging.read_json(self.tenant, f"splose/{name}-{self.import_id}.json")

    def finish(self, name: str, report: RowReport, extra: dict | None = None) -> dg.MaterializeResult:
        """Persist the row, and return the materialization with its reconciliation check."""
        self.save_report(name, report)
        self.context.log.info(
            f"splose/{name} for tenant '{self.tenant}': cliniko {report.cliniko}, loaded {report.loaded} "
            f"(created {report.created}, updated {report.updated}, unchanged {report.unchanged}), "
            f"skipped {sum(report.skipped.values())}, rejected {report.rejected}"
        )
        return dg.MaterializeResult(
            asset_key=splose_key(name),
            metadata={**report_metadata(report, *self.side_reports.values()), **(extra or {})},
            check_results=[reconciliation_check(name, report)],
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
MAPPED_RESOURCES = ("businesses", "users", "practitioners", "appointment_types")
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
    with step_failures(context.partition_key, "splose/locations, users, practitioners and services") as where:
        run = LoadRun(context, staging, bound_import(context, splose, import_request))
        where.import_id = run.import_id
        staged = staged_for_mapping(run)
        with splose.workspace(run.tenant, log=context.log) as workspace:
            resolved = resolve(run, staged, run.request.mapping, workspace.v1)
            if resolved.problems:
                raise dg.Failure(
                    description=resolved.failure_message(run.tenant),
                    metadata={
                        "problems": len(resolved.problems),
                        "proposed_mapping": dg.MetadataValue.json(resolved.proposals),
                        "what_to_do": "complete the mapping (run config or the import request), then re-run",
                    },
                )
            run.sink = sink = run.splose_sink(workspace.imports, "mapping")
            rows = mapping_rows(run, staged, resolved)
            sink.save()
        run.save_mapping(resolved)
        for name, (report, extra) in rows.items():
            yield run.finish(name, report, extra)


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


def mapping_rows(run: LoadRun, staged: StagedMapping, resolved: ResolvedMapping) -> dict[str, tuple[RowReport, dict]]:
    """The four mapping rows, with their metadata; the services mapped to 'create' are sent to the sink."""
    records, usage = staged.records, staged.usage
    types = with_stubs(records["appointment_types"], usage.appointment_types)
    services, created = _services(run, types, resolved, usage)
    unlisted_types = set(resolved.not_listed.get("appointment type", {}))
    extra = {
        "import_id": dg.MetadataValue.text(str(run.import_id)),
        "mapping": dg.MetadataValue.json(run.request.mapping_ids()),
        "proposed_mapping": dg.MetadataValue.json(resolved.proposals),
        "not_listed_by_cliniko": dg.MetadataValue.json(resolved.not_listed),
        "unresolved_references": dg.MetadataValue.json(resolved.unresolved),
    }
    return {
        "locations": (_locations_row(records["businesses"], resolved, usage), _zones(resolved, extra)),
        "users": (_users_row(records["users"], records["practitioners"], resolved), extra),
        "practitioners": (_practitioners_row(records["practitioners"], resolved, usage), extra),
        "services": (
            services,
            {
                **extra,
                "services_created": created,
                "types_not_listed_created": len(unlisted_types & set(resolved.services_to_create)),
                "types_not_listed_to_unknown_service": len(resolved.services_to_unknown),
            },
        ),
    }


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


def _services(run: LoadRun, types: list[dict], resolved: ResolvedMapping, usage: Usage) -> tuple[RowReport, int]:
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
    return report, len(records)


# -- record loads ----------------------------------------------------------------------------------


def load_records(
    run: LoadRun,
    report: RowReport,
    entity: str,
    outcomes: Iterable[dict | Skip],
    actions: dict[str, str] | None = None,
) -> None:
    """Upsert every transformed record in batches of 500 and count skips; ``actions`` collects what happened."""
    pending: list[dict] = []

    def flush() -> None:
        if pending:
            result = run.writes().upsert(entity, pending)
            report.absorb(result)
            if actions is not None:
                actions.update({r.external_id: r.action for r in result.records})
            pending.clear()

    for outcome in outcomes:
        report.cliniko += 1
        run.advance()
        if isinstance(outcome, Skip):
            report.count_skip(outcome)
            continue
        report.warnings.update(pop_warnings(outcome))
        if run.writes().unchanged(entity, outcome):  # Splose holds it as it is: not sent (batches stay full)
            report.unchanged += 1
            if actions is not None:
                actions[outcome["externalId"]] = UNCHANGED
            continue
        pending.append(outcome)
        if len(pending) >= BATCH:
            flush()
    flush()


def load_row(run: LoadRun, name: str) -> tuple[RowReport, dict | None]:
    """One row of the table through the run's sink: its report, and the build's extra metadata."""
    report = RowReport(ROWS[name])
    run.tracker = run.progress(name, run.count(SOURCES[name]))
    if run.included(name):
        return report, LOADS[name].build(run, report)
    report.cliniko = run.count(SOURCES[name])
    report.skip("not requested by the clinic", report.cliniko)
    if name == "group_appointments":
        attendees = RowReport(ROWS["attendees"], cliniko=run.count("attendees"))
        attendees.skip("not requested by the clinic", attendees.cliniko)
        run.save_report("attendees", attendees)
        run.side_reports["attendees"] = attendees
    return report, None


@dataclasses.dataclass(frozen=True)
class Load:
    """One load asset: how its row is built, what it depends on, and its checks besides ``reconciled``:
    (check name, metadata key that must be 0, description), evaluated on what ``build`` returns."""

    build: Callable[[LoadRun, RowReport], dict | None]
    deps: list[dg.AssetKey]
    description: str
    checks: tuple[tuple[str, str, str], ...] = ()


def _load_asset(name: str, load: Load) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=f"splose_{name}",
        specs=[_spec(name, load.deps, load.description)],
        check_specs=[
            _reconciled(name),
            *(
                dg.AssetCheckSpec(check, asset=splose_key(name), blocking=True, description=text)
                for check, _, text in load.checks
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
        with step_failures(context.partition_key, f"splose/{name} ({ROWS[name]})") as where:
            run = LoadRun(context, staging, bound_import(context, splose, import_request))
            where.import_id = run.import_id
            with splose.workspace(run.tenant, log=context.log) as workspace:
                run.sink = sink = run.splose_sink(workspace.imports, name)
                report, extra = load_row(run, name)
                sink.save()
            result = run.finish(name, report, extra)
            yield result._replace(check_results=[*result.check_results, *_extra_checks(name, load, extra or {})])

    return _asset


def _extra_checks(name: str, load: Load, extra: dict) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(
            asset_key=splose_key(name), check_name=check, passed=not extra.get(key), metadata={key: extra.get(key, 0)}
        )
        for check, key, _ in load.checks
    ]


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


def _provider_numbers(run: LoadRun, report: RowReport) -> None:
    ctx = run.import_context()
    outcomes = (to_splose_provider_number(r, ctx) for r in run.records("practitioner_reference_numbers"))
    load_records(run, report, "providerNumbers", outcomes)


def _contacts(run: LoadRun, report: RowReport) -> None:
    ctx = run.import_context()
    outcomes = (_live(r) or to_splose_contact(r, ctx) for r in run.records("contacts"))
    load_records(run, report, "contacts", outcomes)


def _clients(run: LoadRun, report: RowReport) -> None:
    ctx = run.import_context("contacts")
    load_records(run, report, "clients", (to_splose_client(r, ctx) for r in run.records("patients")))


def _appointments(run: LoadRun, report: RowReport) -> dict:
    """Two passes, so that every series' first appointment exists before the repeats that point at it."""
    ctx = run.import_context("clients")

    def outcomes(repeats: bool) -> Iterator[dict | Skip]:
        for record in run.records("individual_appointments"):
            outcome = to_splose_appointment(record, ctx)
            is_repeat = not isinstance(outcome, Skip) and bool(outcome.get("repeatOfExternalId"))
            if is_repeat == repeats:
                yield outcome

    load_records(run, report, "appointments", outcomes(repeats=False))
    imported = set(run.writes().crosswalk("appointments"))
    unlinked = 0

    def linked(outcome: dict | Skip) -> dict | Skip:
        nonlocal unlinked
        if not isinstance(outcome, Skip) and outcome["repeatOfExternalId"] not in imported:
            # The series' first appointment was skipped (deleted, ignored location...): keep this one alone.
            unlinked += 1
            return {**outcome, "repeatOfExternalId": None}
        return outcome

    load_records(run, report, "appointments", (linked(o) for o in outcomes(repeats=True)))
    return {"repeats_without_their_first_appointment": unlinked}


def _group_appointments(run: LoadRun, report: RowReport) -> dict:
    ctx = run.import_context("clients")
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
    load_records(run, report, "appointments", outcomes, actions)
    # What the integrity check will expect to find on each group appointment in Splose.
    expected = {gid: len(ids) for gid, ids in entries.items() if gid in actions}
    run.write_side("group-entries", expected)
    for gid, ids in entries.items():
        action = actions.get(gid)
        if action is None:
            for aid in ids:
                attendee_report.reject(aid, "its group appointment was rejected by Splose")
        else:
            setattr(attendee_report, action, getattr(attendee_report, action) + len(ids))
    run.save_report("attendees", attendee_report)
    run.side_reports["attendees"] = attendee_report
    return {f"attendees_{key}": value for key, value in counts_metadata(attendee_report).items()}


def _availability(run: LoadRun, report: RowReport) -> None:
    ctx = run.import_context()
    rows: list[dict] = []
    owners: dict[str, str] = {}
    for record in run.records("daily_availabilities"):
        report.cliniko += 1
        run.advance()
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
    result = run.writes().upsert("availability", rows)
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


def _progress_note_templates(run: LoadRun, report: RowReport) -> None:
    outcomes = (to_splose_progress_note_template(r) for r in run.records("treatment_note_templates"))
    load_records(run, report, "progressNoteTemplates", outcomes)


def _progress_notes(run: LoadRun, report: RowReport) -> None:
    ctx = run.import_context("clients", "appointments", "progressNoteTemplates")
    outcomes = (to_splose_progress_note(r, ctx) for r in run.records("treatment_notes"))
    actions: dict[str, str] = {}
    unlinked: set[str] = set()

    def noted(outcome: dict | Skip) -> dict | Skip:
        if not isinstance(outcome, Skip) and outcome.get("appointmentExternalId") is None:
            unlinked.add(outcome["externalId"])
        return outcome

    load_records(run, report, "progressNotes", (noted(o) for o in outcomes), actions)
    report.facts[NOT_LINKED] = len(unlinked & set(actions))


def _numeric_id(value: str | None) -> int:
    return int(value) if value and value.isdigit() else -1


def _live(record: dict) -> Skip | None:
    return Skip(record_id(record) or "", "deleted in Cliniko") if record.get("_state") == "deleted" else None


MAPPED = [splose_key(name) for name in MAPPING_ASSETS]


# The load assets in an order that respects their dependencies (the preview runs them in this order).
LOADS: dict[str, Load] = {
    "provider_numbers": Load(
        _provider_numbers,
        [cliniko_key("practitioner_reference_numbers"), splose_key("practitioners"), splose_key("locations")],
        "Practitioner reference numbers as provider numbers on the mapped practitioners, per location.",
    ),
    "contacts": Load(_contacts, [cliniko_key("contacts"), *MAPPED], "Contacts."),
    "clients": Load(
        _clients,
        [cliniko_key("patients"), splose_key("contacts")],
        "Patients (incl. archived) as clients; referring doctors linked to contacts.",
    ),
    "appointments": Load(
        _appointments,
        [cliniko_key("individual_appointments"), splose_key("clients"), *MAPPED],
        "Individual appointments with status, cancellation reason and note.",
    ),
    "group_appointments": Load(
        _group_appointments,
        [cliniko_key("group_appointments"), cliniko_key("attendees"), splose_key("clients"), *MAPPED],
        "Group appointments: one appointment, maxPatients, one entry per attendee with its status.",
    ),
    "availability": Load(
        _availability,
        [cliniko_key("daily_availabilities"), cliniko_key("businesses"), *MAPPED],
        "Weekly availability per practitioner and location.",
    ),
    "files": Load(
        load_files,
        [cliniko_key("patient_attachments"), splose_key("clients")],
        "Patient attachments as files: bytes streamed in batches, checksum verified by Splose.",
        checks=(
            (
                "checksums_match",
                "checksum_mismatches",
                "Every uploaded file's sha256, as Splose computed it, equals the staged bytes' sha256.",
            ),
        ),
    ),
    "progress_note_templates": Load(
        _progress_note_templates,
        [cliniko_key("treatment_note_templates"), *MAPPED],
        "Treatment note templates with their sections and questions.",
    ),
    "progress_notes": Load(
        _progress_notes,
        [
            cliniko_key("treatment_notes"),
            splose_key("clients"),
            splose_key("appointments"),
            splose_key("group_appointments"),
            splose_key("progress_note_templates"),
        ],
        "Treatment notes as progress notes, draft or final, linked to client, practitioner and appointment.",
    ),
}

load_assets = [_load_asset(name, load) for name, load in LOADS.items()]
