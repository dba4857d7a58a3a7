"""The clinic's mapping (run config), what resolving it yields, and the usage it is resolved with.

The clinic maps Cliniko businesses to Splose locations (or ignores them), practitioners and users to
Splose practitioners, and appointment types to Splose services (or asks for them to be created, or
ignores them). Before anything is written, :func:`resolve_mapping` checks that everything listed by
Cliniko that has data to import is mapped to something the workspace has (``splose/mapping_check``, then
again with everything staged in the mapping step); every problem is collected so the run fails once, with
one message that lists them all and says how to fix them. Matches are proposed
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
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg
from pydantic import Field

from cliniko_assets.catalog import linked_id
from cliniko_assets.transforms import ImportContext

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
    remove_most: bool = Field(
        default=False,
        description="Let the import report remove more than half of what Splose holds of a kind of record (over "
        "20) when Cliniko no longer has it or the mapping now ignores it; without it such a removal is held back "
        "and reported, in case a wrong mapping or a broken account caused it.",
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
    name: str  # a business's or service's name; "" for a person, who is named by id alone
    problem: str

    def line(self) -> str:
        named = f" '{self.name}'" if self.name else ""  # people (practitioners, users) go by their id alone
        return f"- {self.kind}{named} (Cliniko id {self.cliniko_id}): {self.problem}"


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

    def failure_message(self, tenant: str, checked_before: bool = False) -> str:
        """The run's failure; ``checked_before``: found by the mapping step after the mapping check passed (an
        item gained data in Cliniko meanwhile), when contacts and clients may already be loaded."""
        lines = "\n".join(problem.line() for problem in self.problems)
        written = (
            "Nothing that uses the mapping was written (contacts and clients may have been)"
            if checked_before
            else "Nothing was written"
        )
        return (
            f"The mapping of tenant '{tenant}' is incomplete: {len(self.problems)} item(s) with data to import "
            f"are unmapped or mapped to ids the Splose workspace does not have. {written}.\n{lines}\n"
            "Fix: add each item under resources.import_request.config.mapping in the run config (locations may "
            "be 'ignore', services may be 'create' or 'ignore'), or correct the import request in Splose; the run "
            "metadata of splose/locations, splose/practitioners and splose/services proposes matches to paste."
        )

    def context(self, imported: Mapping[str, Container[str]]) -> ImportContext:
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


def mapping_from_request(request_mapping: Mapping[str, Mapping]) -> ImportMapping:
    """The run-config form of an import request's mapping (ids as strings)."""
    return ImportMapping(
        **{
            kind: {str(k): str(v) for k, v in (request_mapping.get(kind) or {}).items()}
            for kind in ("locations", "practitioners", "users", "services")
        }
    )
