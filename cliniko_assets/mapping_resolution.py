"""How the clinic's mapping is resolved against the Splose workspace and the data to import.

:func:`resolve_mapping` checks that everything listed by Cliniko that has data to import is mapped to
something the workspace has, collecting every problem so the run fails once with one message listing
them all; it proposes matches (email for people, name for locations and services) and settles each
business's time zone and the clinic's phone region. What a mapping is: :mod:`cliniko_assets.mapping`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from cliniko_assets.catalog import is_set, linked_id, record_id
from cliniko_assets.mapping import (
    CREATE,
    IGNORE,
    MISSING,
    NOT_LISTED,
    UNKNOWN,
    ImportMapping,
    MappingProblem,
    ResolvedMapping,
    Usage,
)
from cliniko_assets.timezones import iana_zone, is_iana_zone
from cliniko_assets.transforms.phones import region_for


def _label(record: dict, *fields: str) -> str:
    for name in fields:
        if is_set(record.get(name)):
            return str(record[name])
    return "(no name)" if record.get("_state") != MISSING else "(not in Cliniko)"


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
                self.problem(MappingProblem("user", uid, "", _lacks("practitioner", target)))
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
        target = self.mapping.practitioners.get(pid)
        via_user = target is None and user_id in self.resolved.users
        used = pid in self.usage.practitioners
        if not is_listed(practitioner):
            self.not_listed("practitioner", practitioner, pid, used, target is not None or via_user)
        if via_user:
            self.resolved.practitioners[pid] = self.resolved.users[user_id or ""]
        elif target is None:
            if used and is_listed(practitioner):
                self.problem(MappingProblem("practitioner", pid, "", "not mapped to a Splose practitioner"))
        elif (sid := _as_id(target)) is None or sid not in self.people:
            self.problem(MappingProblem("practitioner", pid, "", _lacks("practitioner", target)))
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
