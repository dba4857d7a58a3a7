"""The ``/v1`` routes of one account: what a request path means and what Cliniko answers to it.

Everything here is synchronous SQLite work; the app runs it in a worker thread.
"""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass, field

from sandbox.cliniko.accounts import Account
from sandbox.cliniko.envelopes import envelope_for
from sandbox.cliniko.mutate import MutationError, Mutator, churn
from sandbox.cliniko.queries import (
    LEGACY_IGNORED,
    RESOURCES,
    BadRequest,
    ListQuery,
    list_page,
    old_appointment,
    render,
    wants_archived,
)
from sandbox.cliniko.settings import settings_body

ARCHIVED_ROUTES = {"patients", "appointment_types"}
DELETED_ROUTES = {
    "appointments",
    "patients",
    "individual_appointments",
    "group_appointments",
    "attendees",
    "treatment_notes",
    "treatment_note_templates",
}
CANCELLED_ROUTES = {"appointments", "individual_appointments", "attendees"}
# The older routes a newer account (``no_older_routes``) no longer serves.
OLDER_VIEWS = ("archived", "cancelled", "deleted")
# Parents whose records link to the old appointments routes: /<parent>/:id/appointments[/deleted|/cancelled].
APPOINTMENT_PARENTS = {"businesses": "business_id", "practitioners": "practitioner_id", "patients": "patient_id"}
# (parent, child) -> the child's column that holds the parent id.
NESTED = {
    ("practitioners", "practitioner_reference_numbers"): "practitioner_id",
    ("group_appointments", "attendees"): "booking_id",
    ("individual_appointments", "attendees"): "booking_id",
    ("patients", "patient_attachments"): "patient_id",
    ("patients", "treatment_notes"): "patient_id",
    ("businesses", "daily_availabilities"): "business_id",
    ("practitioners", "daily_availabilities"): "practitioner_id",
}
# What a receptionist's key may not read (Cliniko keys carry their user's role permissions).
RECEPTIONIST_DENIED = {"treatment_notes", "treatment_note_templates", "patient_attachments"}
NOT_FOUND = '{"message": "Not found"}'


@dataclass
class Answer:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"


def route_template(segments: list[str]) -> str:
    """The route a path belongs to, ids replaced by ``:id`` (what stats count requests by)."""
    return "/v1/" + "/".join(":id" if s.isdigit() else s for s in segments)


def list_routes() -> list[str]:
    """Every collection route this API serves, as route templates."""
    views = {"archived": ARCHIVED_ROUTES, "deleted": DELETED_ROUTES, "cancelled": CANCELLED_ROUTES}
    routes = [f"/v1/{name}" for name in RESOURCES]
    routes += [f"/v1/{name}/{view}" for view, names in views.items() for name in sorted(names)]
    routes += [
        "/v1/practitioners/inactive",
        "/v1/businesses/:id/practitioners",
        "/v1/businesses/:id/practitioners/inactive",
    ]
    for parent in APPOINTMENT_PARENTS:
        routes += [f"/v1/{parent}/:id/appointments{tail}" for tail in ("", "/deleted", "/cancelled")]
    routes += [f"/v1/{parent}/:id/{child}" for parent, child in NESTED]
    return routes


def forbidden_for(role: str, segments: list[str]) -> bool:
    if segments == ["settings"]:
        return role != "admin"  # "only accessible to users with a role that can view settings"
    if role != "receptionist" or not segments:
        return False
    if segments[0] in RECEPTIONIST_DENIED:
        return True
    return len(segments) >= 3 and segments[2] in RECEPTIONIST_DENIED


class AccountApi:
    def __init__(
        self, account: Account, role: str, base: str, url: str, params: list[tuple[str, str]], route: str
    ) -> None:
        self.account = account
        self.role = role
        self.base = base
        self.url = url
        self.params = params
        self.route = route
        self.db: sqlite3.Connection = account.db()

    def get(self, segments: list[str]) -> Answer:
        try:
            return self._get(segments)
        except BadRequest as exc:
            return Answer(400, json.dumps({"message": str(exc)}))

    def _get(self, s: list[str]) -> Answer:
        n = len(s)
        if s == ["user"]:
            return self.one("users", self.account.users[self.role], archived_ok=True)
        if s[0] == "settings" and n <= 2:
            return self.settings(public=n == 2 and s[1] == "public")
        if s[0] not in RESOURCES:
            return Answer(404, NOT_FOUND)
        resource = RESOURCES[s[0]]
        if n == 1:
            if s[0] == "practitioner_reference_numbers" and self.account.nested_reference_numbers:
                return Answer(404, NOT_FOUND)  # Cliniko's older docs: listed per practitioner only
            return self.page(ListQuery(resource))
        if n == 2 and not s[1].isdigit():
            view = s[1]
            if view in OLDER_VIEWS and self.account.no_older_routes:
                return Answer(404, NOT_FOUND)
            allowed = (
                (view == "archived" and s[0] in ARCHIVED_ROUTES)
                or (view == "deleted" and s[0] in DELETED_ROUTES)
                or (view == "cancelled" and s[0] in CANCELLED_ROUTES)
                or (view == "inactive" and s[0] == "practitioners")
            )
            return self.page(ListQuery(resource, view)) if allowed else Answer(404, NOT_FOUND)
        if not s[1].isdigit():
            return Answer(404, NOT_FOUND)
        parent_id = int(s[1])
        if n == 2:
            legacy = self.account.legacy_filters and LEGACY_IGNORED.get(s[0]) == "archived_at"
            return self.one(s[0], parent_id, archived_ok=not legacy and wants_archived(self.params))
        if n == 3 and s[2] == "content" and s[0] == "patient_attachments":
            return self.content(parent_id)
        if s[0] == "businesses" and s[2] == "practitioners" and n in (3, 4):
            view = "inactive" if n == 4 and s[3] == "inactive" else "main"
            cond = (
                "id IN (SELECT practitioner_id FROM practitioner_reference_numbers WHERE business_id = ?)",
                [parent_id],
            )
            return self.page(ListQuery(RESOURCES["practitioners"], view, [cond]))
        if s[2] == "appointments" and s[0] in APPOINTMENT_PARENTS and n in (3, 4):
            view = s[3] if n == 4 else "main"
            if view not in ("main", "deleted", "cancelled") or (view in OLDER_VIEWS and self.account.no_older_routes):
                return Answer(404, NOT_FOUND)
            cond = (f"{APPOINTMENT_PARENTS[s[0]]} = ?", [parent_id])
            return self.page(ListQuery(RESOURCES["appointments"], view, [cond]))
        column = NESTED.get((s[0], s[2])) if n == 3 else None
        if column is None:
            return Answer(404, NOT_FOUND)
        if self.find(s[0], parent_id) is None:
            return Answer(404, NOT_FOUND)
        return self.page(ListQuery(RESOURCES[s[2]], "main", [(f"{column} = ?", [parent_id])]))

    def page(self, query: ListQuery) -> Answer:
        account = self.account
        query.legacy = account.legacy_filters
        query.documented = account.documented_filters
        query.deleted_filter = account.no_older_routes
        churn(account, self.route)
        envelope = envelope_for(account.seed, account.envelopes, self.route)
        return Answer(200, list_page(self.db, query, self.params, self.base, self.url, account.page_cache, envelope))

    def find(self, resource: str, rid: int) -> tuple[str, str | None] | None:
        tables = ("individual_appointments", "group_appointments") if resource == "bookings" else (resource,)
        for table in tables:
            row = self.db.execute(
                f"SELECT body, archived_at FROM {table} WHERE id = ? AND deleted_at IS NULL", (rid,)
            ).fetchone()
            if row:
                return row
        return None

    def one(self, resource: str, rid: int, archived_ok: bool) -> Answer:
        row = self.find("individual_appointments" if resource == "appointments" else resource, rid)
        if row is None or (row[1] and not archived_ok):
            return Answer(404, NOT_FOUND)
        shown = old_appointment if resource == "appointments" else render
        return Answer(200, shown(row[0], self.base))

    def content(self, rid: int) -> Answer:
        """Marker answer: the app turns it into a redirect to a signed file URL."""
        row = self.find("patient_attachments", rid)
        if row is None:
            return Answer(404, NOT_FOUND)
        return Answer(302, headers={"x-attachment-id": str(rid)})

    def settings(self, public: bool) -> Answer:
        body = settings_body(self.db, self.base, public)
        return Answer(200, body) if body is not None else Answer(404, NOT_FOUND)

    # -- writes (the admin mutate endpoint is what tests use; these mirror Cliniko's few write routes) --
    def write(self, method: str, s: list[str], payload: dict) -> Answer:
        if len(s) < 2 or not s[1].isdigit() or s[0] not in RESOURCES or s[0] in ("bookings", "appointments"):
            return Answer(404, NOT_FOUND)
        rid, resource = int(s[1]), s[0]
        if self.find(resource, rid) is None:
            return Answer(404, NOT_FOUND)
        action = s[2] if len(s) == 3 else None
        plan = {
            ("PATCH", None): ("update", 200),
            ("PUT", None): ("update", 200),
            ("DELETE", None): ("delete", 204),
            ("POST", "archive"): ("archive", 204),
            ("POST", "unarchive"): ("unarchive", 200),
            ("PATCH", "cancel"): ("cancel", 204),
        }.get((method, action))
        if plan is None or not isinstance(payload, dict):
            return Answer(404, NOT_FOUND) if plan is None else Answer(422, '{"message": "must be an object"}')
        op, status = plan
        fields = {k: v for k, v in payload.items() if k not in ("id", "created_at", "updated_at", "links")}
        with self.account.write_lock:
            mutator = Mutator(self.account, random.Random(rid))
            try:
                mutator.apply(op, resource, rid, fields)
            except MutationError as exc:
                return Answer(422, json.dumps({"message": "Validation Failed", "errors": {"base": str(exc)}}))
        if status == 204:
            return Answer(204)
        return self.one(resource, rid, archived_ok=True)
