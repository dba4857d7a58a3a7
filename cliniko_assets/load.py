"""The ``splose/*`` assets: resolve the mapping, then map and load every row of the mission's table.

Each load asset reads staged Cliniko records a batch at a time, turns them into import records with the
pure transforms, upserts them (idempotent, keyed by the Cliniko id) and reports one row of the
reconciliation: Cliniko count = loaded + skipped (by reason) + rejected. That equation is an asset
check that blocks the rest of the run when it does not hold, because then something was lost.
"""

import dataclasses
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from cliniko_assets.catalog import linked_id, record_id
from cliniko_assets.extract import cliniko_key
from cliniko_assets.mapping import ImportRequestResource, ResolvedMapping, Usage, resolve_mapping
from cliniko_assets.partitions import tenants, validate_tenant
from cliniko_assets.transforms import (
    ImportContext,
    Skip,
    to_splose_appointment,
    to_splose_availability,
    to_splose_client,
    to_splose_contact,
    to_splose_file,
    to_splose_group_appointment,
    to_splose_progress_note,
    to_splose_progress_note_template,
    to_splose_provider_number,
    to_splose_service,
)
from splose_resources.splose import SploseRequestError, SploseResource, SploseWorkspace, UpsertResult
from splose_resources.staging import StagingStore

GROUP = "splose"
RECONCILED = "reconciled"

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

    @property
    def loaded(self) -> int:
        return self.created + self.updated + self.unchanged

    @property
    def unaccounted(self) -> int:
        return self.cliniko - self.loaded - sum(self.skipped.values()) - self.rejected

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] += count

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
        report.skipped = Counter(report.skipped)
        report.rejected_reasons = Counter(report.rejected_reasons)
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
        self.directory = staging.root() / self.tenant / "splose"
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

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
        _write_private(self.mapping_path, json.dumps(data))

    def import_context(self, workspace: SploseWorkspace, *entities: str) -> ImportContext:
        resolved = self.mapping()
        imported = {entity: frozenset(workspace.imports.crosswalk(self.import_id, entity)) for entity in entities}
        return ImportContext(
            locations=resolved.locations,
            practitioners=resolved.practitioners,
            users=resolved.users,
            services=resolved.services,
            business_time_zones=resolved.business_time_zones,
            imported=imported,
        )

    def report_path(self, name: str) -> Path:
        return self.directory / f"report-{self.import_id}-{name}.json"

    def finish(self, name: str, report: RowReport, extra: dict | None = None) -> dg.MaterializeResult:
        """Persist the row, and return the materialization with its reconciliation check."""
        _write_private(self.report_path(name), json.dumps(report.to_json()))
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


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


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
    run = LoadRun(context, staging, import_request)
    usage = Usage()
    for resource in USAGE_SOURCES:
        for record in run.records(resource):
            usage.add(record)
    businesses = list(run.records("businesses"))
    users = list(run.records("users"))
    practitioners = list(run.records("practitioners"))
    appointment_types = list(run.records("appointment_types"))
    with splose.workspace(run.tenant) as workspace:
        resolved = resolve_mapping(
            import_request.mapping,
            businesses=businesses,
            users=users,
            practitioners=practitioners,
            appointment_types=appointment_types,
            usage=usage,
            splose_locations=list(workspace.v1.locations(include_archived=True)),
            splose_practitioners=list(workspace.v1.practitioners(include_archived=True)),
            splose_services=list(workspace.v1.services(include_archived=True)),
        )
        proposals = dg.MetadataValue.json(resolved.proposals)
        if resolved.problems:
            raise dg.Failure(
                description=resolved.failure_message(run.tenant),
                metadata={"problems": len(resolved.problems), "proposed_mapping": proposals},
            )
        services = RowReport(ROWS["services"], cliniko=len(appointment_types))
        to_create = set(resolved.services_to_create)
        created = []
        for appointment_type in appointment_types:
            tid = record_id(appointment_type)
            if tid in to_create:
                outcome = to_splose_service(appointment_type)
                if isinstance(outcome, Skip):
                    services.skip(outcome.reason)
                else:
                    created.append(outcome)
            elif tid in resolved.services:
                services.unchanged += 1
            else:
                services.skip("not mapped (no appointments use it)")
        if created:
            services.absorb(workspace.imports.upsert(run.import_id, "services", created))
            crosswalk = workspace.imports.crosswalk(run.import_id, "services")
            resolved.services.update({tid: crosswalk[tid] for tid in to_create if tid in crosswalk})
    run.save_mapping(resolved)

    locations = RowReport(ROWS["locations"], cliniko=len(businesses))
    for business in businesses:
        bid = record_id(business)
        if bid in resolved.locations:
            if resolved.locations[bid] is None:
                locations.skip("ignored by the clinic")
            else:
                locations.unchanged += 1
        else:
            locations.skip("not mapped (no data)")
    people = RowReport(ROWS["practitioners"], cliniko=len(practitioners))
    for practitioner in practitioners:
        if record_id(practitioner) in resolved.practitioners:
            people.unchanged += 1
        else:
            people.skip("not mapped (no data)")
    staff = RowReport(ROWS["users"], cliniko=len(users))
    practitioner_users = {linked_id(p, "user"): record_id(p) for p in practitioners}
    for user in users:
        uid = record_id(user)
        if uid in resolved.users or resolved.practitioners.get(practitioner_users.get(uid) or "") is not None:
            staff.unchanged += 1
        else:
            staff.skip("not mapped (not a practitioner with data)")
    proposal = {"proposed_mapping": proposals}
    yield run.finish("locations", locations, proposal)
    yield run.finish("users", staff, proposal)
    yield run.finish("practitioners", people, proposal)
    yield run.finish("services", services, {**proposal, "services_created": len(created)})


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
            report.skip(outcome.reason)
            continue
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
        run = LoadRun(context, staging, import_request)
        report = RowReport(ROWS[name])
        extra = None
        with splose.workspace(run.tenant) as workspace:
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
    outcomes = (_live(r) or to_splose_contact(r) for r in run.records("contacts"))
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
            attendee_report.skip(skip.reason)
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
    _write_private(run.directory / f"group-entries-{run.import_id}.json", json.dumps(expected))
    for gid, ids in entries.items():
        action = actions.get(gid)
        if action is None:
            for aid in ids:
                attendee_report.reject(aid, "its group appointment was rejected by Splose")
        else:
            setattr(attendee_report, action, getattr(attendee_report, action) + len(ids))
    _write_private(run.report_path("attendees"), json.dumps(attendee_report.to_json()))
    return {f"attendees_{key}": value for key, value in report_metadata(attendee_report).items()}


def _availability(run: LoadRun, workspace: SploseWorkspace, report: RowReport) -> None:
    ctx = run.import_context(workspace)
    rows: list[dict] = []
    owners: dict[str, str] = {}
    for record in run.records("daily_availabilities"):
        report.cliniko += 1
        outcome = to_splose_availability(record, ctx)
        if isinstance(outcome, Skip):
            report.skip(outcome.reason)
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
    checksum_mismatches = 0
    for attachment in run.records("patient_attachments"):
        report.cliniko += 1
        aid = record_id(attachment) or ""
        if _live(attachment):
            report.skip("deleted in Cliniko")
            continue
        if attachment.get("processing_completed") is False:
            report.skip("not yet processed by Cliniko")
            continue
        if aid not in manifest.index:
            report.skip("bytes could not be downloaded from Cliniko")
            continue
        staged = manifest.loc[aid]
        form = to_splose_file(attachment, str(staged["sha256"]), int(staged["size"]))
        if isinstance(form, Skip):
            report.skip(form.reason)
            continue
        if form["clientExternalId"] not in ctx.imported["clients"]:
            report.skip("client not imported")
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
    load_records(run, workspace, report, "progressNotes", outcomes)


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
