"""The clinic's mapping (run config) and its resolution against the Splose workspace.

The clinic maps Cliniko businesses to Splose locations (or ignores them), practitioners and users to
Splose practitioners, and appointment types to Splose services (or asks for them to be created).
Before anything is written, :func:`resolve_mapping` checks that everything that has data to import is
mapped to something the workspace has; every problem is collected so the run fails once, with one
message that lists them all and says how to fix them. Matches are proposed (email for people, name for
locations and services) in a form that can be pasted into the run config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import dagster as dg
from pydantic import Field

from cliniko_assets.catalog import is_set, linked_id, record_id

IGNORE = "ignore"
CREATE = "create"


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
        default_factory=dict, description="Cliniko appointment type id -> Splose service id, or 'create'."
    )


class ImportRequestResource(dg.ConfigurableResource):
    """The import request a run works for: its id (to read the Cliniko key and write records) and mapping.

    Set per run through run config (``resources: {import_request: {config: ...}}``); the sensor fills it
    from the Splose import request. Never carries a secret.
    """

    import_id: str = Field(default="", description="The Splose import request id.")
    mapping: ImportMapping = Field(default_factory=ImportMapping)
    include: list[str] = Field(
        default_factory=list, description="Data types to bring (table rows); empty means everything."
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
    services_to_create: list[str] = field(default_factory=list)
    business_time_zones: dict[str, str] = field(default_factory=dict)
    problems: list[MappingProblem] = field(default_factory=list)
    proposals: dict[str, dict[str, str]] = field(default_factory=dict)

    def failure_message(self, tenant: str) -> str:
        lines = "\n".join(problem.line() for problem in self.problems)
        return (
            f"The mapping of tenant '{tenant}' is incomplete: {len(self.problems)} item(s) with data to import "
            f"are unmapped or mapped to ids the Splose workspace does not have. Nothing was written.\n{lines}\n"
            "Fix: add each item under resources.import_request.config.mapping in the run config (locations may "
            "be 'ignore', services may be 'create'), or correct the import request in Splose; the run metadata "
            "of splose/locations, splose/practitioners and splose/services proposes matches to paste."
        )


@dataclass
class Usage:
    """Which Cliniko businesses, practitioners, users and appointment types have data to import."""

    businesses: set[str] = field(default_factory=set)
    practitioners: set[str] = field(default_factory=set)
    appointment_types: set[str] = field(default_factory=set)

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


def _label(record: dict, *fields: str) -> str:
    for name in fields:
        if is_set(record.get(name)):
            return str(record[name])
    return "(no name)"


def _person(record: dict) -> str:
    return " ".join(str(record[f]) for f in ("first_name", "last_name") if is_set(record.get(f))) or "(no name)"


def _lacks(kind: str, target: str) -> str:
    return f"mapped to {kind} {target}, which the Splose workspace does not have"


def _as_id(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


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
) -> ResolvedMapping:
    """Check ``mapping`` against the workspace and the data to import; collect every problem."""
    resolved = ResolvedMapping()
    locations = {int(loc["id"]): loc for loc in splose_locations}
    people = {int(p["id"]): p for p in splose_practitioners}
    services = {int(s["id"]): s for s in splose_services}
    users_by_id = {record_id(u): u for u in users}
    problem = resolved.problems.append

    location_by_title = {str(loc.get("title", "")).strip().lower(): loc for loc in locations.values()}
    resolved.proposals["locations"] = {}
    for business in businesses:
        bid = record_id(business)
        if bid is None:
            continue
        name = _label(business, "business_name", "display_name", "label")
        zone = business.get("time_zone_identifier")
        if is_set(zone):
            resolved.business_time_zones[bid] = str(zone)
        match = location_by_title.get(name.strip().lower())
        if match is not None:
            resolved.proposals["locations"][bid] = str(match["id"])
        target = mapping.locations.get(bid)
        if target == IGNORE:
            resolved.locations[bid] = None
        elif target is None:
            if bid in usage.businesses:
                problem(MappingProblem("business", bid, name, "not mapped to a Splose location (or 'ignore')"))
        elif (lid := _as_id(target)) is None or lid not in locations:
            problem(MappingProblem("business", bid, name, _lacks("location", target)))
        elif locations[lid].get("archived"):
            problem(MappingProblem("business", bid, name, f"mapped to location {target}, which is archived"))
        else:
            resolved.locations[bid] = lid

    people_by_email = {str(p.get("email") or "").strip().lower(): p for p in people.values() if p.get("email")}
    resolved.proposals["users"] = {}
    for uid, user in users_by_id.items():
        if uid is None:
            continue
        match = people_by_email.get(str(user.get("email") or "").strip().lower())
        if match is not None and user.get("email"):
            resolved.proposals["users"][uid] = str(match["id"])
        target = mapping.users.get(uid)
        if target is None:
            continue
        if (pid := _as_id(target)) is None or pid not in people:
            problem(MappingProblem("user", uid, _person(user), _lacks("practitioner", target)))
        else:
            resolved.users[uid] = pid

    resolved.proposals["practitioners"] = {}
    for practitioner in practitioners:
        pid = record_id(practitioner)
        if pid is None:
            continue
        name = _person(practitioner)
        user_id = linked_id(practitioner, "user")
        user_email = str((users_by_id.get(user_id) or {}).get("email") or "").strip().lower()
        match = people_by_email.get(user_email) if user_email else None
        if match is not None:
            resolved.proposals["practitioners"][pid] = str(match["id"])
        target = mapping.practitioners.get(pid)
        if target is None and user_id in resolved.users:
            resolved.practitioners[pid] = resolved.users[user_id]
        elif target is None:
            if pid in usage.practitioners:
                problem(MappingProblem("practitioner", pid, name, "not mapped to a Splose practitioner"))
        elif (sid := _as_id(target)) is None or sid not in people:
            problem(MappingProblem("practitioner", pid, name, _lacks("practitioner", target)))
        else:
            resolved.practitioners[pid] = sid

    service_by_name = {str(s.get("name", "")).strip().lower(): s for s in services.values()}
    resolved.proposals["services"] = {}
    for appointment_type in appointment_types:
        tid = record_id(appointment_type)
        if tid is None:
            continue
        name = _label(appointment_type, "name")
        match = service_by_name.get(name.strip().lower())
        resolved.proposals["services"][tid] = str(match["id"]) if match is not None else CREATE
        target = mapping.services.get(tid)
        if target == CREATE:
            resolved.services_to_create.append(tid)
        elif target is None:
            if tid in usage.appointment_types:
                problem(MappingProblem("appointment type", tid, name, "not mapped to a Splose service (or 'create')"))
        elif (sid := _as_id(target)) is None or sid not in services:
            problem(MappingProblem("appointment type", tid, name, _lacks("service", target)))
        else:
            resolved.services[tid] = sid
    listed = {
        "business": {record_id(b) for b in businesses},
        "practitioner": {record_id(p) for p in practitioners},
        "appointment type": {record_id(t) for t in appointment_types},
    }
    for kind, used in (
        ("business", usage.businesses),
        ("practitioner", usage.practitioners),
        ("appointment type", usage.appointment_types),
    ):
        for missing in sorted(used - listed[kind]):
            problem(MappingProblem(kind, missing, "(not returned by Cliniko)", "referenced by records to import"))
    return resolved


def mapping_from_request(request_mapping: Mapping[str, Mapping]) -> ImportMapping:
    """The run-config form of an import request's mapping (ids as strings)."""
    return ImportMapping(
        **{
            kind: {str(k): str(v) for k, v in (request_mapping.get(kind) or {}).items()}
            for kind in ("locations", "practitioners", "users", "services")
        }
    )
