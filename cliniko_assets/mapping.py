"""The clinic's mapping (run config) and its resolution against the Splose workspace.

The clinic maps Cliniko businesses to Splose locations (or ignores them), practitioners and users to
Splose practitioners, and appointment types to Splose services (or asks for them to be created, or
ignores them). Before anything is written, :func:`resolve_mapping` checks that everything listed by
Cliniko that has data to import is mapped to something the workspace has; every problem is collected so
the run fails once, with one message that lists them all and says how to fix them. Matches are proposed
(email for people, name for locations and services) in a form that can be pasted into the run config.

References the list routes did not return never fail a run. The extraction fetched each one by id
(staged with state ``unlisted`` when Cliniko had it, ``missing`` when it answered 404); their ids are
mapped like any other, and the proposal covers them. Without a mapping entry:

- an appointment type goes to the service set under the reserved key ``services["unknown"]`` (a service
  id, ``"create"`` for one shared "Unknown or deleted appointment type" service, or ``"ignore"``), and by
  default to a service created for it: from its record when Cliniko still has one, else named
  "Deleted appointment type <id>";
- a business or practitioner is left unresolved: records that cannot exist without it are skipped with a
  reason naming it (needing the clinic's attention), the others are imported without it.

Time zones: a business's ``time_zone_identifier``, else its ``time_zone`` label, else the account's zone
(``GET /settings``), labels being Rails names mapped to IANA (:mod:`cliniko_assets.timezones`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg
from pydantic import Field

from cliniko_assets.catalog import is_set, linked_id, record_id
from cliniko_assets.timezones import iana_zone, is_iana_zone
from cliniko_assets.transforms import ImportContext, Skip, to_splose_service
from cliniko_assets.transforms.phones import region_for

IGNORE = "ignore"
CREATE = "create"
UNKNOWN = "unknown"  # reserved key under ``services``: where appointments of unknown or deleted types go
# Staged states of records other records point at and the list routes did not return.
UNLISTED = "unlisted"  # fetched by id
MISSING = "missing"  # Cliniko answered 404 (deleted, or hidden from this key)
NOT_LISTED = (UNLISTED, MISSING)


class ImportMapping(dg.Config):
    """Cliniko id -> Splose id, all as strings (run config keys are strings)."""

    locations: dict[str, str] = Field(
        default_factory=dict, description="Cliniko business id -> Splose location id, or 'ignore'."
    )
    practitioners: dict[str, str] = Field(
        default_factory=dict, description="Cliniko practitioner id -> Splose practitioner id."
    )
    users: dict[str, str] = Field(
        default_factory=dict,
        description="Cliniko user id -> Splose practitioner id (used for practitioners not mapped directly).",
    )
    services: dict[str, str] = Field(
        default_factory=dict,
        description="Cliniko appointment type id -> Splose service id, 'create' or 'ignore'. The reserved key "
        "'unknown' sets where appointments go whose type Cliniko no longer lists (a service id, 'create' for one "
        "shared service, or 'ignore'); without it each such type gets a service of its own.",
    )


class ImportRequestResource(dg.ConfigurableResource):
    """Overrides of the import a run works for; empty, the run works for its tenant's latest import.

    A run needs nothing but its tenant (partition key): it reads the tenant's latest import request from
    Splose at run time, with the clinic's mapping and data types (:mod:`cliniko_assets.resolution`). Run
    config given here (``resources: {import_request: {config: ...}}``, e.g. edited in the Launchpad)
    overrides it field by field: an import id (which must be the tenant's own), a mapping, data types.
    Never carries a secret.
    """

    import_id: str = Field(default="", description="A Splose import request id of the tenant; empty: its latest.")
    mapping: ImportMapping | None = Field(
        default=None, description="Replaces the import request's mapping; empty: the mapping the clinic submitted."
    )
    include: list[str] | None = Field(
        default=None,
        description="Data types to bring (table rows; an empty list means everything); empty: the import request's.",
    )
    local_development: bool = Field(
        default=False,
        description="Local development only: without an import id, extract with the key in "
        "CLINIKO_API_KEY__<TENANT> and no import request (the loads need one).",
    )


@dataclass(frozen=True)
class MappingProblem:
    kind: str
    cliniko_id: str
    name: str
    problem: str

    def line(self) -> str:
        return f"- {self.kind} '{self.name}' (Cliniko id {self.cliniko_id}): {self.problem}"


@dataclass
class ResolvedMapping:
    locations: dict[str, int | None] = field(default_factory=dict)
    practitioners: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    services: dict[str, int] = field(default_factory=dict)
    services_to_create: list[str] = field(default_factory=list)  # each from its record, or as a deleted type
    services_to_unknown: list[str] = field(default_factory=list)  # to the shared "unknown" service (created)
    services_ignored: list[str] = field(default_factory=list)
    business_time_zones: dict[str, str] = field(default_factory=dict)
    time_zone_sources: dict[str, str] = field(default_factory=dict)  # business id -> where its zone came from
    default_region: str | None = None
    unresolved: dict[str, list[str]] = field(default_factory=dict)  # kind -> ids not listed and not mapped
    not_listed: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> id -> unlisted | missing
    missing: dict[str, list[str]] = field(default_factory=dict)  # resource -> ids Cliniko does not have
    problems: list[MappingProblem] = field(default_factory=list)
    proposals: dict[str, dict[str, str]] = field(default_factory=dict)

    def failure_message(self, tenant: str) -> str:
        lines = "\n".join(problem.line() for problem in self.problems)
        return (
            f"The mapping of tenant '{tenant}' is incomplete: {len(self.problems)} item(s) with data to import "
            f"are unmapped or mapped to ids the Splose workspace does not have. Nothing was written.\n{lines}\n"
            "Fix: add each item under resources.import_request.config.mapping in the run config (locations may "
            "be 'ignore', services may be 'create' or 'ignore'), or correct the import request in Splose; the run "
            "metadata of splose/locations, splose/practitioners and splose/services proposes matches to paste."
        )

    def context(self, imported: Mapping[str, frozenset[str]]) -> ImportContext:
        """What the transforms need, with ``imported``: the external ids Splose already holds, per entity."""
        return ImportContext(
            locations=self.locations,
            practitioners=self.practitioners,
            users=self.users,
            services=self.services,
            business_time_zones=self.business_time_zones,
            imported=imported,
            unresolved={kind: frozenset(ids) for kind, ids in self.unresolved.items()},
            missing={resource: frozenset(ids) for resource, ids in self.missing.items()},
            services_ignored=frozenset(self.services_ignored),
            default_region=self.default_region,
        )

    def time_zones_by_source(self) -> dict[str, int]:
        return dict(Counter(self.time_zone_sources.values()))


@dataclass
class Usage:
    """Which Cliniko businesses, practitioners and appointment types have data to import, and the shape of the
    appointments of each type (to create a service for a type Cliniko no longer has)."""

    businesses: set[str] = field(default_factory=set)
    practitioners: set[str] = field(default_factory=set)
    appointment_types: set[str] = field(default_factory=set)
    durations: dict[str, Counter] = field(default_factory=dict)  # type id -> minutes -> appointments
    group_sizes: dict[str, int] = field(default_factory=dict)  # type id -> largest max_attendees

    def add(self, record: dict) -> None:
        if record.get("_state") == "deleted":
            return
        for name, target in (
            ("business", self.businesses),
            ("practitioner", self.practitioners),
            ("appointment_type", self.appointment_types),
        ):
            value = linked_id(record, name)
            if value:
                target.add(value)
        type_id = linked_id(record, "appointment_type")
        if type_id:
            self._shape(type_id, record)

    def _shape(self, type_id: str, record: dict) -> None:
        minutes = _minutes(record.get("starts_at"), record.get("ends_at"))
        if minutes is not None:
            self.durations.setdefault(type_id, Counter())[minutes] += 1
        size = record.get("max_attendees")
        if isinstance(size, int) and not isinstance(size, bool) and size > 1:
            self.group_sizes[type_id] = max(size, self.group_sizes.get(type_id, 0))

    def duration(self, *type_ids: str) -> int:
        """The most common length of the appointments of these types, in minutes (30 when unknown)."""
        total = sum((self.durations.get(tid, Counter()) for tid in type_ids), Counter())
        return total.most_common(1)[0][0] if total else 30

    def max_patients(self, *type_ids: str) -> int:
        return max([1, *(self.group_sizes.get(tid, 1) for tid in type_ids)])


def _minutes(start: object, end: object) -> int | None:
    try:
        first = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        last = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return None
    minutes = int((last - first).total_seconds() // 60)
    return minutes if 0 < minutes <= 24 * 60 else None


def _label(record: dict, *fields: str) -> str:
    for name in fields:
        if is_set(record.get(name)):
            return str(record[name])
    return "(no name)" if record.get("_state") != MISSING else "(not in Cliniko)"


def _person(record: dict) -> str:
    name = " ".join(str(record[f]) for f in ("first_name", "last_name") if is_set(record.get(f)))
    return name or _label(record)


def _lacks(kind: str, target: str) -> str:
    return f"mapped to {kind} {target}, which the Splose workspace does not have"


def _as_id(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def is_listed(record: dict) -> bool:
    return record.get("_state") not in NOT_LISTED


def with_stubs(records: list[dict], used: set[str]) -> list[dict]:
    """``records`` plus a ``missing`` stub for every used id not staged at all (the extraction did not look)."""
    staged = {record_id(r) for r in records}
    return [*records, *({"id": rid, "_state": MISSING} for rid in sorted(used - staged))]


def business_zone(business: dict, account_zone: str | None) -> tuple[str | None, str]:
    """The business's IANA zone and where it came from."""
    identifier = business.get("time_zone_identifier")
    if isinstance(identifier, str) and is_iana_zone(identifier.strip()):
        return identifier.strip(), "time_zone_identifier"
    if label := iana_zone(business.get("time_zone")):
        return label, "time_zone"
    if zone := iana_zone(account_zone):
        return zone, "account"
    return None, "unknown"


def clinic_region(businesses: Iterable[dict], account_country: str | None) -> str | None:
    """The clinic's country (most of its listed businesses', else the account's) as an ISO alpha-2 region."""
    found = Counter(
        region
        for business in businesses
        if is_listed(business)
        and (region := region_for(business.get("country_code")) or region_for(business.get("country")))
    )
    return found.most_common(1)[0][0] if found else region_for(account_country)


class _Resolver:
    """One resolution: the workspace's ids, the clinic's mapping, and what it found so far."""

    def __init__(self, mapping: ImportMapping, usage: Usage, locations, people, services) -> None:
        self.mapping = mapping
        self.usage = usage
        self.locations = {int(loc["id"]): loc for loc in locations}
        self.people = {int(p["id"]): p for p in people}
        self.services = {int(s["id"]): s for s in services}
        self.resolved = ResolvedMapping(proposals={kind: {} for kind in ("locations", "users", "practitioners")})
        self.problem = self.resolved.problems.append

    def not_listed(self, kind: str, record: dict, rid: str, used: bool, mapped: bool) -> None:
        """Note a reference the list routes did not return; unmapped and used, it is left unresolved."""
        self.resolved.not_listed.setdefault(kind, {})[rid] = str(record.get("_state"))
        if used and not mapped:
            self.resolved.unresolved.setdefault(kind, []).append(rid)

    def businesses(self, businesses: list[dict], account_zone: str | None) -> None:
        by_title = {str(loc.get("title", "")).strip().lower(): loc for loc in self.locations.values()}
        for business in with_stubs(businesses, self.usage.businesses):
            bid = record_id(business)
            if bid is None:
                continue
            name = _label(business, "business_name", "display_name", "label")
            zone, source = business_zone(business, account_zone)
            self.resolved.time_zone_sources[bid] = source
            if zone:
                self.resolved.business_time_zones[bid] = zone
            match = by_title.get(name.strip().lower())
            proposal = str(match["id"]) if match is not None else (IGNORE if not is_listed(business) else None)
            if proposal:
                self.resolved.proposals["locations"][bid] = proposal
            self.business(business, bid, name)

    def business(self, business: dict, bid: str, name: str) -> None:
        target = self.mapping.locations.get(bid)
        used = bid in self.usage.businesses
        if not is_listed(business):
            self.not_listed("business", business, bid, used, target is not None)
        if target == IGNORE:
            self.resolved.locations[bid] = None
        elif target is None:
            if used and is_listed(business):
                self.problem(MappingProblem("business", bid, name, "not mapped to a Splose location (or 'ignore')"))
        elif (lid := _as_id(target)) is None or lid not in self.locations:
            self.problem(MappingProblem("business", bid, name, _lacks("location", target)))
        elif self.locations[lid].get("archived"):
            self.problem(MappingProblem("business", bid, name, f"mapped to location {target}, which is archived"))
        else:
            self.resolved.locations[bid] = lid

    def users(self, users: list[dict]) -> dict[str, dict]:
        people_by_email = self.people_by_email()
        users_by_id = {record_id(u): u for u in users}
        for uid, user in users_by_id.items():
            if uid is None:
                continue
            match = people_by_email.get(str(user.get("email") or "").strip().lower())
            if match is not None and user.get("email"):
                self.resolved.proposals["users"][uid] = str(match["id"])
            target = self.mapping.users.get(uid)
            if target is None:
                continue
            if (pid := _as_id(target)) is None or pid not in self.people:
                self.problem(MappingProblem("user", uid, _person(user), _lacks("practitioner", target)))
            else:
                self.resolved.users[uid] = pid
        return users_by_id

    def people_by_email(self) -> dict[str, dict]:
        return {str(p.get("email") or "").strip().lower(): p for p in self.people.values() if p.get("email")}

    def practitioners(self, practitioners: list[dict], users_by_id: dict[str, dict]) -> None:
        people_by_email = self.people_by_email()
        for practitioner in with_stubs(practitioners, self.usage.practitioners):
            pid = record_id(practitioner)
            if pid is None:
                continue
            user_id = linked_id(practitioner, "user")
            user_email = str((users_by_id.get(user_id) or {}).get("email") or "").strip().lower()
            match = people_by_email.get(user_email) if user_email else None
            if match is not None:
                self.resolved.proposals["practitioners"][pid] = str(match["id"])
            self.practitioner(practitioner, pid, user_id)

    def practitioner(self, practitioner: dict, pid: str, user_id: str | None) -> None:
        name = _person(practitioner)
        target = self.mapping.practitioners.get(pid)
        via_user = target is None and user_id in self.resolved.users
        used = pid in self.usage.practitioners
        if not is_listed(practitioner):
            self.not_listed("practitioner", practitioner, pid, used, target is not None or via_user)
        if via_user:
            self.resolved.practitioners[pid] = self.resolved.users[user_id or ""]
        elif target is None:
            if used and is_listed(practitioner):
                self.problem(MappingProblem("practitioner", pid, name, "not mapped to a Splose practitioner"))
        elif (sid := _as_id(target)) is None or sid not in self.people:
            self.problem(MappingProblem("practitioner", pid, name, _lacks("practitioner", target)))
        else:
            self.resolved.practitioners[pid] = sid

    def appointment_types(self, appointment_types: list[dict]) -> None:
        by_name = {str(s.get("name", "")).strip().lower(): s for s in self.services.values()}
        proposals = self.resolved.proposals.setdefault("services", {})
        unknown = self.mapping.services.get(UNKNOWN)
        if unknown not in (None, CREATE, IGNORE) and _as_id(unknown) not in self.services:
            self.problem(
                MappingProblem("setting", UNKNOWN, "unknown or deleted appointment types", _lacks("service", unknown))
            )
            unknown = None
        for appointment_type in with_stubs(appointment_types, self.usage.appointment_types):
            tid = record_id(appointment_type)
            if tid is None:
                continue
            name = _label(appointment_type, "name")
            match = by_name.get(name.strip().lower())
            proposals[tid] = str(match["id"]) if match is not None else CREATE
            self.appointment_type(appointment_type, tid, name, unknown)

    def appointment_type(self, appointment_type: dict, tid: str, name: str, unknown: str | None) -> None:
        target = self.mapping.services.get(tid)
        used = tid in self.usage.appointment_types
        to_unknown = target is None and used and not is_listed(appointment_type) and unknown is not None
        if not is_listed(appointment_type):
            self.resolved.not_listed.setdefault("appointment type", {})[tid] = str(appointment_type.get("_state"))
            if target is None and used:
                target = unknown or CREATE
        if target == CREATE:
            (self.resolved.services_to_unknown if to_unknown else self.resolved.services_to_create).append(tid)
        elif target == IGNORE:
            self.resolved.services_ignored.append(tid)
        elif target is None:
            if used:
                self.problem(
                    MappingProblem("appointment type", tid, name, "not mapped to a Splose service (or 'create')")
                )
        elif (sid := _as_id(target)) is None or sid not in self.services:
            self.problem(MappingProblem("appointment type", tid, name, _lacks("service", target)))
        else:
            self.resolved.services[tid] = sid


def resolve_mapping(
    mapping: ImportMapping,
    *,
    businesses: list[dict],
    users: list[dict],
    practitioners: list[dict],
    appointment_types: list[dict],
    usage: Usage,
    splose_locations: Iterable[dict],
    splose_practitioners: Iterable[dict],
    splose_services: Iterable[dict],
    account_time_zone: str | None = None,
    account_country: str | None = None,
    missing: Mapping[str, Iterable[str]] | None = None,
) -> ResolvedMapping:
    """Check ``mapping`` against the workspace and the data to import; collect every problem.

    ``account_time_zone`` and ``account_country`` come from Cliniko's ``/settings``; ``missing`` lists, per
    resource, the ids other records point at that Cliniko does not have (patients, templates).
    """
    resolver = _Resolver(mapping, usage, splose_locations, splose_practitioners, splose_services)
    resolver.businesses(businesses, account_time_zone)
    users_by_id = resolver.users(users)
    resolver.practitioners(practitioners, users_by_id)
    resolver.appointment_types(appointment_types)
    resolved = resolver.resolved
    resolved.default_region = clinic_region(businesses, account_country)
    resolved.missing = {resource: sorted(ids) for resource, ids in (missing or {}).items()}
    return resolved


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


def mapping_from_request(request_mapping: Mapping[str, Mapping]) -> ImportMapping:
    """The run-config form of an import request's mapping (ids as strings)."""
    return ImportMapping(
        **{
            kind: {str(k): str(v) for k, v in (request_mapping.get(kind) or {}).items()}
            for kind in ("locations", "practitioners", "users", "services")
        }
    )
