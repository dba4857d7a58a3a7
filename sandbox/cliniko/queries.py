"""Collections as Cliniko serves them: hidden rows, ``q[]`` filters, ``sort``, pages, envelopes.

Choices where Cliniko's docs are silent (see cliniko-api.md section 7):

* An unknown filter field, a bad operator or a malformed value answers ``400 {"message": ...}``
  rather than being ignored, so a client typo cannot silently turn an incremental sync into a full one.
* Default lists of individual appointments (and bookings) hide CANCELLED appointments unless the query
  filters on ``cancelled_at`` (``q[]=cancelled_at:*`` for all, ``:?`` for cancelled only); the old
  ``/cancelled`` routes serve them too. Cancelled attendees stay in ``/attendees`` (and ``/cancelled``).
* Archived rows are hidden unless the query filters on ``archived_at``; deleted rows never appear in main
  lists, only in the ``/deleted`` routes, which accept ``deleted_at`` and ``updated_at`` filters.
* A plain ``q=`` is honoured, but only its last occurrence (Cliniko issue #274).
* The old ``/appointments`` routes serve individual appointments in their old shape (``appointment_start``
  and friends), hiding cancelled ones like ``/individual_appointments`` does.
* An account with ``legacy_filters`` mimics an older account: where an older route serves archived or
  cancelled rows (``/patients/archived``, ``/appointment_types/archived``, ``/individual_appointments/
  cancelled``, ``/attendees/cancelled``), filters on that field are ignored, so ``q[]=archived_at:*`` /
  ``cancelled_at:*`` answer the default list, which leaves those rows out (cancelled attendees too).
* An account with ``documented_filters`` answers 400 (naming the field) to a filter on a field that the
  resource's documented filter list leaves out (cliniko-api.md section 4: ``archived_at`` on contacts,
  ``deleted_at`` on patients and treatment note templates); with ``legacy_filters`` too, the older docs'
  lists apply, so the newer docs' additions (``archived_at`` on businesses, patients, appointment types,
  attachments and treatment notes, ``deleted_at`` on appointments and notes ...) answer 400 as well. It also
  refuses an operator the field's documented type lacks: treatment notes' ``id`` and other id filters are
  typed String, so ``q[]=id:>`` and ``id:<`` (keyset paging's bounds) answer 400 there.
* An account with ``no_older_routes`` mimics a newer account: ``/archived``, ``/cancelled`` and ``/deleted``
  answer 404, and a main list that filters on ``deleted_at`` (``:?``, ``:*``, comparisons) includes deleted
  rows, as ``archived_at`` does archived ones.
* Envelopes vary per account and route as Cliniko's own examples do (see ``envelopes.py``).
* Queries sorted by ``id`` with ``q[]=id:>``/``id:<`` bounds (keyset paging) are answered from the cached
  ordered id list of the same query without its bounds, so walking a big list by id stays cheap.
* Individual appointments carry an attendee record each, as a real account's do, unless the account has
  ``individual_attendees`` off (``accounts.py``): ``/attendees`` holds one per individual appointment and
  ``/individual_appointments/:id/attendees`` lists it; off, that route is an empty list.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from sandbox.cliniko.envelopes import PLAIN, Envelope
from sandbox.cliniko.schema import BASE

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 100


class BadRequest(ValueError):
    """A query Cliniko would refuse with 400; the message is returned to the client."""


def _json(name: str) -> str:
    return f"json_extract(body, '$.{name}')"


COMMON = {"id": ("id", "id"), "created_at": ("datetime", "created_at"), "updated_at": ("datetime", "updated_at")}
ARCHIVED = {"archived_at": ("datetime", "archived_at")}
DELETED = {"deleted_at": ("datetime", "deleted_at")}
CANCELLED = {"cancelled_at": ("datetime", "cancelled_at")}
TIMES = {"starts_at": ("datetime", "starts_at"), "ends_at": ("datetime", "ends_at")}


def _ids(*names: str) -> dict[str, tuple[str, str]]:
    return {n: ("id", n) for n in names}


def _strings(*names: str) -> dict[str, tuple[str, str]]:
    return {n: ("string", _json(n)) for n in names}


@dataclass(frozen=True)
class Resource:
    name: str
    filters: dict[str, tuple[str, str]]
    table: str = ""
    hides_cancelled: bool = False

    @property
    def tables(self) -> tuple[str, ...]:
        """The tables holding this resource's records (bookings span two)."""
        if self.name == "bookings":
            return ("individual_appointments", "group_appointments")
        return (self.table or self.name,)


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource("businesses", {**COMMON, **ARCHIVED}),
        Resource("users", dict(COMMON)),
        Resource("practitioners", {**COMMON, **_ids("user_id")}),
        Resource("practitioner_reference_numbers", {**COMMON, **_ids("business_id", "practitioner_id")}),
        Resource(
            "appointment_types",
            {
                **COMMON,
                **ARCHIVED,
                **_strings("category", "online_payments_mode"),
                "show_in_online_bookings": ("bool", _json("show_in_online_bookings")),
            },
        ),
        Resource(
            "patients",
            {
                **COMMON,
                **ARCHIVED,
                **DELETED,
                **_strings("email", "first_name", "last_name", "old_reference_id"),
                "date_of_birth": ("date", _json("date_of_birth")),
            },
        ),
        Resource(
            "contacts",
            {
                **COMMON,
                **ARCHIVED,
                **_strings("email", "first_name", "last_name"),
                "type_code": ("num", _json("type_code")),
            },
        ),
        Resource(
            "individual_appointments",
            {
                **COMMON,
                **ARCHIVED,
                **DELETED,
                **CANCELLED,
                **TIMES,
                **_ids("appointment_type_id", "business_id", "patient_id", "practitioner_id", "repeated_from_id"),
            },
            hides_cancelled=True,
        ),
        Resource(
            "group_appointments",
            {
                **COMMON,
                **ARCHIVED,
                **DELETED,
                **TIMES,
                **_ids("appointment_type_id", "business_id", "practitioner_id", "repeated_from_id"),
                "patient_ids": ("array", "patient_ids"),
            },
        ),
        Resource(
            "attendees",
            {
                **COMMON,
                **ARCHIVED,
                **DELETED,
                **CANCELLED,
                **_ids("booking_id", "patient_id"),
                "appointment_id": ("id", "booking_id"),
                "patient_case_id": ("id", _json("patient_case_id")),
            },
        ),
        Resource("daily_availabilities", {**COMMON, **_ids("business_id", "practitioner_id")}),
        Resource(
            "patient_attachments",
            {
                **COMMON,
                **ARCHIVED,
                **_strings("content_type", "description", "filename"),
                **_ids("patient_id", "user_id"),
                "size": ("num", _json("size")),
                "processed_at": ("datetime", _json("processed_at")),
            },
        ),
        Resource("treatment_note_templates", {**COMMON, **DELETED}),
        Resource(
            "treatment_notes",
            {
                **COMMON,
                **ARCHIVED,
                **DELETED,
                **_ids("attendee_id", "booking_id", "patient_id", "practitioner_id", "treatment_note_template_id"),
                "draft": ("bool", _json("draft")),
            },
        ),
        Resource(
            "bookings",
            {
                **COMMON,
                **ARCHIVED,
                **CANCELLED,
                **TIMES,
                **_ids("business_id", "practitioner_id"),
                "patient_ids": ("array", "patient_ids"),
            },
            hides_cancelled=True,
        ),
        Resource(
            "appointments",
            {
                **COMMON,
                **ARCHIVED,
                **DELETED,
                **CANCELLED,
                "appointment_start": ("datetime", "starts_at"),
                "appointment_end": ("datetime", "ends_at"),
                **_ids("appointment_type_id", "business_id", "patient_id", "practitioner_id"),
            },
            table="individual_appointments",
            hides_cancelled=True,
        ),
    )
}

OPERATORS = {
    "id": ("=", "!=", ">=", ">", "<=", "<", "?", "!?"),
    "num": ("=", "!=", ">=", ">", "<=", "<", "?", "!?"),
    "datetime": (">=", ">", "<=", "<", "?", "!?", "*"),
    "date": ("=", ">=", ">", "<=", "<", "?", "!?"),
    "string": ("=", "!=", "~~", "~", "?", "!?"),
    "bool": ("=", "!="),
    "array": ("~",),
}
# Longest first, so ">=" is not read as ">" followed by "=...".
_ALL_OPS = ("!?", "!=", ">=", "<=", "~~", "?", "=", ">", "<", "~", "*")
_DATE = re.compile(r"^[0-9*]{4}-[0-9*]{2}-[0-9*]{2}\Z")


@dataclass
class Filter:
    field: str
    op: str
    value: str


def parse_filters(params: list[tuple[str, str]]) -> list[Filter]:
    """``q[]`` params are ANDed; of plain ``q`` params only the last counts (issue #274)."""
    raw = [v for k, v in params if k == "q[]"]
    plain = [v for k, v in params if k == "q"]
    if plain:
        raw.append(plain[-1])
    filters = []
    for item in raw:
        name, sep, rest = item.partition(":")
        if not sep:
            raise BadRequest(f"Invalid filter {item!r}: expected field:<operator>value")
        op = next((o for o in _ALL_OPS if rest.startswith(o)), None)
        if op is None:
            raise BadRequest(f"Invalid filter {item!r}: unknown operator")
        filters.append(Filter(name, op, rest[len(op) :]))
    return filters


def _timestamp(value: str) -> str:
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"Invalid date-time {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scalar(kind: str, value: str) -> object:
    try:
        if kind == "id":
            return int(value)
        if kind == "num":
            return float(value) if "." in value else int(value)
    except ValueError as exc:
        raise BadRequest(f"Invalid number {value!r}") from exc
    if kind == "datetime":
        return _timestamp(value)
    if kind == "date" and not _DATE.match(value):
        raise BadRequest(f"Invalid date {value!r}")
    if kind == "bool":
        if value not in ("true", "false"):
            raise BadRequest(f"Invalid boolean {value!r}")
        return 1 if value == "true" else 0
    return value


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")


def filter_sql(resource: Resource, f: Filter) -> tuple[str, list]:
    spec = resource.filters.get(f.field)
    if spec is None:
        raise BadRequest(f"Unknown filter field {f.field!r} for {resource.name}")
    kind, expr = spec
    if f.op not in OPERATORS[kind]:
        raise BadRequest(f"Operator {f.op!r} is not valid for {f.field!r} ({kind})")
    if f.op in ("?", "!?", "*"):
        if f.value:
            raise BadRequest(f"Operator {f.op!r} takes no value")
        if kind == "datetime":
            # An old-doc style "" timestamp counts as unset.
            return {"?": f"COALESCE({expr}, '') != ''", "!?": f"COALESCE({expr}, '') = ''", "*": "1"}[f.op], []
        return {"?": f"{expr} IS NOT NULL", "!?": f"{expr} IS NULL"}[f.op], []
    if kind == "array":
        contains = f"EXISTS (SELECT 1 FROM json_each(body, '$.{expr}') WHERE value = ?)"
        if resource.name == "bookings":
            # An individual appointment's one patient counts as its patient_ids; group bodies are looked up.
            groups = f"id IN (SELECT id FROM group_appointments WHERE {contains})"
            return f"(patient_id = ? OR {groups})", [_scalar("id", f.value), f.value]
        return contains, [f.value]
    if kind == "string":
        if f.op == "~":
            return f"{expr} LIKE ? ESCAPE '\\'", [f"%{_like_escape(f.value)}%"]
        if f.op == "~~":
            return f"{expr} LIKE ?", [f.value]
        return f"{expr} {f.op} ?", [f.value]
    if kind == "date" and f.op == "=" and "*" in f.value:
        _scalar(kind, f.value)
        return f"{expr} LIKE ?", [f.value.replace("*", "_")]
    if kind in ("id", "num") and f.op == "=" and "," in f.value:
        values = [_scalar(kind, v) for v in f.value.split(",")]
        return f"{expr} IN ({', '.join('?' * len(values))})", values
    return f"{expr} {f.op} ?", [_scalar(kind, f.value)]


def order_terms(resource: Resource, params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(SQL expression, ASC|DESC) per sort column, ending with the id tie-break."""
    sort = next((v for k, v in reversed(params) if k == "sort"), "") or "created_at"
    default_dir = next((v for k, v in reversed(params) if k == "order"), "asc").lower()
    if default_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid order {default_dir!r}: use asc or desc")
    terms = []
    for item in sort.split(","):
        name, _, direction = item.strip().partition(":")
        direction = (direction or default_dir).lower()
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction {direction!r}")
        spec = resource.filters.get(name)
        if spec is None or spec[0] == "array":
            raise BadRequest(f"Cannot sort {resource.name} by {name!r}")
        terms.append((spec[1], direction.upper()))
        if name == "id":
            return terms
    terms.append(("id", "ASC"))  # ids compare as integers: the column is INTEGER
    return terms


def page_params(params: list[tuple[str, str]]) -> tuple[int, int]:
    values = dict(params)
    try:
        page = int(values.get("page", "1"))
        per_page = int(values.get("per_page", str(DEFAULT_PER_PAGE)))
    except ValueError as exc:
        raise BadRequest("page and per_page must be integers") from exc
    if page < 1:
        raise BadRequest("page must be 1 or more")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise BadRequest(f"per_page must be between 1 and {MAX_PER_PAGE}")
    return page, per_page


# Older accounts: the filters on a field that an older route serves are ignored (see the module docstring).
LEGACY_IGNORED = {
    "patients": "archived_at",
    "appointment_types": "archived_at",
    "individual_appointments": "cancelled_at",
    "appointments": "cancelled_at",
    "attendees": "cancelled_at",
}


# Fields the sandbox filters on that cliniko-api.md section 4 does not list for the resource ...
UNDOCUMENTED = {
    "patients": frozenset({"deleted_at"}),
    "contacts": frozenset({"archived_at"}),
    "treatment_note_templates": frozenset({"deleted_at"}),
}
# ... and those that only the newer docs (S2) list: an older account with documented_filters refuses them too.
NEWER_DOCS_ONLY = {
    "businesses": frozenset({"archived_at"}),
    "appointment_types": frozenset({"archived_at", "category", "online_payments_mode", "show_in_online_bookings"}),
    "patients": frozenset({"archived_at"}),
    "individual_appointments": frozenset({"deleted_at"}),
    "attendees": frozenset({"appointment_id"}),
    "patient_attachments": frozenset({"archived_at", "processed_at"}),
    "treatment_notes": frozenset({"archived_at", "deleted_at", "draft"}),
}


# Fields whose filter the docs type as String though they hold ids (treatment_notes.md, "Filtering Treatment
# Notes"): String's operators (cliniko-api.md section 2.2) have no comparison, so id bounds are refused.
STRING_TYPED = {
    "appointment_types": frozenset({"id"}),
    "businesses": frozenset({"id"}),
    "practitioners": frozenset({"id"}),
    "treatment_notes": frozenset(
        {"attendee_id", "booking_id", "id", "patient_id", "practitioner_id", "treatment_note_template_id"}
    ),
}
STRING_OPERATORS = frozenset({"=", "!=", "~", "~~", "?", "!?"})


def refuse_undocumented(resource: str, filters: Iterable[Filter], older: bool) -> None:
    """400 for a filter on a field the resource's documented list (the older docs' when ``older``) leaves out,
    and for an operator the field's documented type does not have."""
    refused = UNDOCUMENTED.get(resource, frozenset()) | (
        NEWER_DOCS_ONLY.get(resource, frozenset()) if older else frozenset()
    )
    for f in filters:
        if f.field in refused:
            raise BadRequest(f"Unknown filter field {f.field!r} for {resource}")
        if f.field in STRING_TYPED.get(resource, ()) and f.op not in STRING_OPERATORS:
            raise BadRequest(f"Invalid operator {f.op!r} for the String filter {f.field!r} of {resource}")


@dataclass
class ListQuery:
    """One collection request: which rows (view + fixed conditions) and how the client asked for them."""

    resource: Resource
    view: str = "main"  # main | archived | deleted | cancelled | inactive
    conditions: list[tuple[str, list]] = field(default_factory=list)
    legacy: bool = False  # the account predates the archived_at / cancelled_at filters
    documented: bool = False  # the account refuses filters its docs do not list
    deleted_filter: bool = False  # the account lists deleted rows on the main list by deleted_at

    def where(self, filters: Iterable[Filter]) -> tuple[str, list]:
        filters = list(filters)
        if self.documented:
            refuse_undocumented(self.resource.name, filters, self.legacy)
        ignored = LEGACY_IGNORED.get(self.resource.name) if self.legacy else None
        filters = [f for f in filters if f.field != ignored]
        named = {f.field for f in filters}
        clauses, args = [], []
        for cond, cond_args in self.conditions:
            clauses.append(cond)
            args.extend(cond_args)
        has = self.resource.filters
        if self.view == "deleted":
            clauses.append("deleted_at IS NOT NULL")
        else:
            if not (self.deleted_filter and "deleted_at" in named):
                clauses.append("deleted_at IS NULL")
            if self.view == "archived":
                clauses.append("archived_at IS NOT NULL")
            elif "archived_at" in has and "archived_at" not in named:
                clauses.append("archived_at IS NULL")
            if self.view == "cancelled":
                clauses.append("cancelled_at IS NOT NULL")
            elif (self.resource.hides_cancelled or ignored == "cancelled_at") and "cancelled_at" not in named:
                clauses.append("cancelled_at IS NULL")
            if self.resource.name == "practitioners":
                clauses.append("state = ?")
                args.append("inactive" if self.view == "inactive" else "active")
        for f in filters:
            sql, sql_args = filter_sql(self.resource, f)
            clauses.append(sql)
            args.extend(sql_args)
        return " AND ".join(clauses), args


def render(body: str, base: str) -> str:
    return body.replace(f'"{BASE}', f'"{base}')


def old_appointment(body: str, base: str) -> str:
    """An individual appointment as the old ``/appointments`` routes show it (cliniko-api.md 4.9)."""
    record = json.loads(render(body, base))
    record["appointment_start"] = record.pop("starts_at")
    record["appointment_end"] = record.pop("ends_at")
    record["cancellation_time"] = record["cancelled_at"]
    record["appointment_repeated_from"] = record.pop("repeated_from")
    record["invoices"] = {"links": {"self": f"{base}/appointments/{record['id']}/invoices"}}
    record["links"] = {"self": f"{base}/appointments/{record['id']}"}
    return json.dumps(record, ensure_ascii=False)


class PageCache:
    """Per account: the full ordered id list of big queries, so a deep page is a slice, not an OFFSET scan.

    An entry is keyed by the query's signature (tables, WHERE text and arguments, ORDER BY) and the
    account's data version; every write bumps the version (``changed``), so entries of older versions are
    never read again and age out. Only ids are kept (8 bytes a row), never rendered bodies. A signature is
    cached from its second request on (or at once for a page past the first), so one-off queries such as a
    parent's children keep the plain COUNT + LIMIT path.
    """

    def __init__(self, max_ids: int = 6_000_000, max_entries: int = 64) -> None:
        self.version = 0
        self.max_ids = max_ids
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, array] = OrderedDict()
        self._building: dict[tuple, threading.Lock] = {}
        self._seen: OrderedDict[tuple, None] = OrderedDict()
        self._size = 0

    def changed(self) -> None:
        """Call after every committed (or rolled back) write: older entries stop being served."""
        with self._lock:
            self.version += 1
            self._entries.clear()
            self._building.clear()
            self._seen.clear()
            self._size = 0

    def lookup(self, signature: tuple, build: bool) -> tuple[int, array | None]:
        """(version, ids) for ``signature``; ids None when not cached and ``build`` is false."""
        with self._lock:
            version = self.version
            key = (version, signature)
            ids = self._entries.get(key)
            if ids is not None:
                self._entries.move_to_end(key)
                return version, ids
            if not build and key not in self._seen:
                self._seen[key] = None
                if len(self._seen) > 4 * self.max_entries:
                    self._seen.popitem(last=False)
                return version, None
            building = self._building.setdefault(key, threading.Lock())
        return version, building

    def store(self, version: int, signature: tuple, ids: array) -> None:
        with self._lock:
            key = (version, signature)
            self._building.pop(key, None)
            if version != self.version or len(ids) > self.max_ids:
                return  # written meanwhile: the list may predate the write
            if key not in self._entries:
                self._entries[key] = ids
                self._size += len(ids)
            while self._entries and (self._size > self.max_ids or len(self._entries) > self.max_entries):
                _, dropped = self._entries.popitem(last=False)
                self._size -= len(dropped)

    def get(self, version: int, signature: tuple) -> array | None:
        with self._lock:
            return self._entries.get((version, signature))


def _ordered_ids(
    db: sqlite3.Connection, cache: PageCache | None, signature: tuple, sql: str, args: list, deep: bool
) -> array | None:
    """The whole ordered id list of a query, from the cache or built once (concurrent askers wait)."""
    if cache is None:
        return None
    version, found = cache.lookup(signature, build=deep)
    if found is None or isinstance(found, array):
        return found
    with found:  # this signature's build lock: the first thread builds, the others then read its result
        ids = cache.get(version, signature)
        if ids is not None:
            return ids
        ids = array("q", [row[0] for row in db.execute(sql, args)])
        cache.store(version, signature, ids)
        return ids


def list_page(
    db: sqlite3.Connection,
    query: ListQuery,
    params: list[tuple[str, str]],
    base: str,
    url: str,
    cache: PageCache | None = None,
    envelope: Envelope = PLAIN,
) -> str:
    """The JSON text of one page; ``url`` is the absolute request URL without its query string."""
    filters = parse_filters(params)
    page, per_page = page_params(params)
    total, ids = _page_ids(db, query, filters, order_terms(query.resource, params), page, per_page, cache)
    found: dict[int, tuple[str, str | None]] = {}
    marks = ", ".join("?" * len(ids))
    for table in query.resource.tables:
        for rid, body, deleted_at in db.execute(f"SELECT id, body, deleted_at FROM {table} WHERE id IN ({marks})", ids):
            found[rid] = (body, deleted_at)
    if query.resource.name == "patients" and query.view == "deleted":
        items = [json.dumps({"deleted_at": found[rid][1], "links": {"self": f"{base}/patients/{rid}"}}) for rid in ids]
    else:
        shown = old_appointment if query.resource.name == "appointments" else render
        items = [shown(found[rid][0], base) for rid in ids]
    links = _links(url, params, page, page * per_page < total, envelope)
    key = query.resource.name
    return (
        f'{{"{key}": [{",".join(items)}], "{envelope.total_key}": {envelope.total(total)}, '
        f'"links": {json.dumps(links)}}}'
    )


_BOUNDS = (">", ">=", "<", "<=")


def _page_ids(
    db: sqlite3.Connection,
    query: ListQuery,
    filters: list[Filter],
    terms: list[tuple[str, str]],
    page: int,
    per_page: int,
    cache: PageCache | None,
) -> tuple[int, list[int]]:
    """(total, ids of the page). Page over ids first: that query runs on covering indexes, so deep pages skip
    rows without reading their bodies; only the page's own rows are then read whole, by primary key. Several
    tables (bookings) are merged as sorted streams rather than sorted after a union."""
    keyset = cache is not None and terms == [("id", "ASC")]
    bounds = [f for f in filters if keyset and f.field == "id" and f.op in _BOUNDS]
    if query.documented:  # the bounds too, though the cached id list answers them
        refuse_undocumented(query.resource.name, bounds, query.legacy)
    where, args = query.where([f for f in filters if f not in bounds])
    tables = query.resource.tables
    keys = ", ".join(f"{expr} AS k{i}" for i, (expr, _) in enumerate(terms))
    arms = " UNION ALL ".join(f"SELECT id, {keys} FROM {t} WHERE {where}" for t in tables)
    order = ", ".join(f"k{i} {direction}" for i, (_, direction) in enumerate(terms))
    all_args = [*args * len(tables)]
    signature = (f"{arms} ORDER BY {order}", tuple(map(repr, all_args)))
    offset = (page - 1) * per_page
    ordered = _ordered_ids(db, cache, signature, signature[0], all_args, deep=page > 1 or bool(bounds))
    if ordered is not None:
        low, high = _bounded(ordered, bounds)
        return high - low, ordered[low + offset : min(low + offset + per_page, high)].tolist()
    total = sum(db.execute(f"SELECT COUNT(*) FROM {t} WHERE {where}", args).fetchone()[0] for t in tables)
    ids = [row[0] for row in db.execute(f"{signature[0]} LIMIT ? OFFSET ?", [*all_args, per_page, offset])]
    return total, ids


def _bounded(ordered: array, bounds: list[Filter]) -> tuple[int, int]:
    """The slice of an ascending id list that ``id`` bound filters keep."""
    low, high = 0, len(ordered)
    for f in bounds:
        value = _scalar("id", f.value)
        if f.op in (">", ">="):
            low = max(low, (bisect_right if f.op == ">" else bisect_left)(ordered, value))
        else:
            high = min(high, (bisect_left if f.op == "<" else bisect_right)(ordered, value))
    return low, max(low, high)


def _links(url: str, params: list[tuple[str, str]], page: int, more: bool, envelope: Envelope) -> dict[str, str]:
    links = {
        "self": f"{url}?{urlencode([('page', str(page))])}" if envelope.bare_self else _with_page(url, params, None)
    }
    if more:
        links["next"] = _with_page(url, params, page + 1)
    if page > 1:
        links["previous"] = _with_page(url, params, page - 1)
    return links


def _with_page(url: str, params: list[tuple[str, str]], page: int | None) -> str:
    """The request URL with every query param kept; ``page`` replaced when given."""
    kept = params if page is None else [(k, v) for k, v in params if k != "page"] + [("page", str(page))]
    return f"{url}?{urlencode(kept)}" if kept else url


def wants_archived(params: list[tuple[str, str]]) -> bool:
    """Single-record GETs show archived rows only when asked (``q[]=archived_at:*`` or ``:?``)."""
    return any(f.field == "archived_at" and f.op in ("*", "?") for f in parse_filters(params))
