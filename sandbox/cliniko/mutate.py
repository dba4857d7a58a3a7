"""Changing a running account's data, as a clinic would between two syncs (or while a sync runs).

Every change stamps ``updated_at`` with the server clock, so an incremental sync from the previous
cursor sees exactly the changed rows; ``stamped_seconds_ago`` makes them late writes, stamped that long
before they become visible. Deletion follows each resource's Cliniko behaviour: reference
numbers, daily availabilities, contacts and patient attachments vanish (a real ``DELETE``: no stub on any
route; contacts and attachments are remembered in ``_removed`` for the ground truth, counted as
``deleted``); patients, appointments, attendees, treatment notes and templates get ``deleted_at`` and
move to the ``/deleted`` lists; the rest are archived instead.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3

from sandbox.cliniko.accounts import Account, Churn
from sandbox.cliniko.generator import individual_attendee
from sandbox.cliniko.schema import REPLACE_SQL, RESOURCES, STATE_NAMES, row_for

INCREMENTAL = (
    "patients",
    "contacts",
    "individual_appointments",
    "group_appointments",
    "attendees",
    "patient_attachments",
    "treatment_notes",
)
CONFIGURATION = (
    "businesses",
    "practitioners",
    "appointment_types",
    "practitioner_reference_numbers",
    "daily_availabilities",
    "treatment_note_templates",
)
HARD_DELETE = {"practitioner_reference_numbers", "daily_availabilities", "contacts", "patient_attachments"}
# Hard deletions an importer is expected to notice (no deletion feed): the ground truth counts them.
REMEMBERED = {"contacts", "patient_attachments"}
SOFT_DELETE = {
    "patients",
    "individual_appointments",
    "group_appointments",
    "attendees",
    "treatment_notes",
    "treatment_note_templates",
}
ARCHIVABLE = {
    "patients",
    "contacts",
    "individual_appointments",
    "group_appointments",
    "attendees",
    "patient_attachments",
    "treatment_notes",
    "appointment_types",
    "businesses",
}
CANCELLABLE = {"individual_appointments", "attendees"}
# The field a random update edits, so the change is visible in the record as well as in updated_at.
EDITED_FIELD = {
    "patients": "notes",
    "contacts": "notes",
    "individual_appointments": "notes",
    "group_appointments": "notes",
    "attendees": "notes",
    "patient_attachments": "description",
    "treatment_notes": "title",
    "businesses": "additional_information",
    "practitioners": "description",
    "appointment_types": "description",
    "practitioner_reference_numbers": "reference_number",
    "daily_availabilities": "availabilities",
    "treatment_note_templates": "name",
}
ATTENDEE_ID_REACH = 64  # how far after an individual appointment's id its attendee's is looked for
OPS = ("update", "create", "archive", "unarchive", "delete", "cancel", "process")
# What an attachment created while processing (``processing_completed: false``, its file fields null, as
# Cliniko's docs show one) holds once processed, unless the ``process`` op's fields say otherwise.
PROCESSED = {"content_type": "application/pdf", "filename": "scanned-referral.pdf", "size": 48_213}


class MutationError(ValueError):
    pass


def now_stamp(seconds_ago: float = 0) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Mutator:
    def __init__(self, account: Account, rng: random.Random, stamped_seconds_ago: float = 0) -> None:
        self.account = account
        self.db: sqlite3.Connection = account.db()
        self.rng = rng
        # A write that reaches the lists late carries a time before it became visible (a long transaction,
        # an application server's clock behind): every stamp of this mutation is that many seconds old.
        self.now = now_stamp(stamped_seconds_ago)
        self.changed: dict[str, dict[str, list[str]]] = {}
        self._touched: dict[str, set[str]] = {}
        # Ids each pick chooses among, in id order (one scan per resource and op, not one per pick), dropped
        # whenever a change could move a record in or out of them.
        self._candidates: dict[tuple[str, str], list[int]] = {}

    def record(self, resource: str, kind: str, rid: int | str) -> None:
        buckets = self.changed.setdefault(resource, {"updated": [], "created": [], "archived": [], "deleted": []})
        buckets[kind].append(str(rid))
        self._touched.setdefault(resource, set()).add(str(rid))

    def forget_candidates(self, resource: str) -> None:
        for key in [key for key in self._candidates if key[0] == resource]:
            del self._candidates[key]

    def load(self, resource: str, rid: int) -> dict:
        row = self.db.execute(f"SELECT body FROM {resource} WHERE id = ?", (rid,)).fetchone()
        if row is None:
            raise MutationError(f"no {resource} record {rid}")
        return json.loads(row[0])

    def save(self, resource: str, body: dict) -> None:
        try:
            self.db.execute(REPLACE_SQL[resource], row_for(resource, body))
        finally:
            self.account.page_cache.changed()  # outside a transaction the write is committed by now

    # -- single operations -----------------------------------------------------------------------
    def apply(self, op: str, resource: str, rid: int | None, fields: dict) -> None:
        if resource not in RESOURCES or resource == "users":
            raise MutationError(f"cannot change {resource!r}")
        if op == "create":
            self.create(resource, fields)
            return
        if rid is None:
            raise MutationError(f"{op} needs an id")
        if op == "process":
            if resource != "patient_attachments":
                raise MutationError(f"{resource} are not processed")
            self.process(resource, rid, self.load(resource, rid), fields)
            return
        body = self.load(resource, rid)
        if op == "update":
            body.update(fields or {EDITED_FIELD[resource]: self.edited_value(resource, body)})
            kind = "updated"
        elif op == "archive" or (op == "delete" and resource not in HARD_DELETE | SOFT_DELETE):
            if resource not in ARCHIVABLE:
                raise MutationError(f"{resource} cannot be archived")
            body["archived_at"] = self.now
            kind = "archived"
        elif op == "unarchive":
            body["archived_at"] = None
            kind = "updated"
        elif op == "delete" and resource in HARD_DELETE:
            self.remove(resource, rid, body)
            return
        elif op == "delete":
            body["deleted_at"] = self.now
            kind = "deleted"
        elif op == "cancel":
            if resource not in CANCELLABLE:
                raise MutationError(f"{resource} cannot be cancelled")
            reason = int(fields.get("cancellation_reason", 50))
            body.update(
                cancelled_at=self.now,
                cancellation_reason=reason,
                cancellation_reason_description=fields.get("cancellation_reason_description", "Other"),
                cancellation_note=fields.get("cancellation_note"),
            )
            kind = "updated"
        else:
            raise MutationError(f"unknown op {op!r}; use one of {', '.join(OPS)}")
        body["updated_at"] = self.now
        self.save(resource, body)
        if op != "update" or fields:  # a random edit keeps the record where it was; anything else may not
            self.forget_candidates(resource)
        self.record(resource, kind, rid)
        self.follow_booking(resource, body, kind)

    def process(self, resource: str, rid: int, body: dict, fields: dict) -> None:  # patient_attachments only
        """Cliniko finishes processing an attachment: ``processing_completed`` becomes true and its file fields
        are filled. Its ``updated_at`` stays as it was: Cliniko's docs say to poll the attachment until it is
        processed, not that processing moves the stamp, and this is the case an incremental sync can miss."""
        body["processing_completed"] = True
        body.update({k: v for k, v in PROCESSED.items() if body.get(k) is None}, **fields)
        self.save(resource, body)
        self.record(resource, "updated", rid)

    def remove(self, resource: str, rid: int, body: dict) -> None:
        try:
            if resource in REMEMBERED:
                body.update(deleted_at=self.now, updated_at=self.now)
                self.db.execute(
                    "INSERT OR REPLACE INTO _removed (resource, id, body) VALUES (?, ?, ?)",
                    (resource, rid, json.dumps(body, ensure_ascii=False)),
                )
            self.db.execute(f"DELETE FROM {resource} WHERE id = ?", (rid,))
        finally:
            self.account.page_cache.changed()
            self.forget_candidates(resource)
        self.record(resource, "deleted", rid)

    def edited_value(self, resource: str, body: dict) -> object:
        if resource == "daily_availabilities":
            return [{"starts_at": "10:00", "ends_at": f"{self.rng.randint(13, 18)}:00"}]
        if resource == "practitioner_reference_numbers":
            return f"{self.rng.randrange(10**6):06d}Z"
        if resource == "treatment_note_templates":
            return f"{body['name'].split(' (rev')[0]} (rev {self.rng.randint(2, 99)})"
        return f"Edited at {self.now} #{self.rng.randrange(10**6)}"

    def new_id(self) -> int:
        while True:
            ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
            rid = (ms << 22) | self.rng.randrange(1 << 22)
            taken = any(self.db.execute(f"SELECT 1 FROM {t} WHERE id = ?", (rid,)).fetchone() for t in RESOURCES)
            if not taken:
                return rid

    def create(self, resource: str, fields: dict) -> None:
        """A new record modelled on a random existing one (so every link points somewhere real)."""
        template = self.pick(resource, "update")
        if template is None:
            raise MutationError(f"no {resource} record to model a new one on")
        old = self.load(resource, template)
        rid = self.new_id()
        text = json.dumps(old, ensure_ascii=False).replace(f"/{resource}/{old['id']}", f"/{resource}/{rid}")
        text = text.replace(f"repeated_from_id:={old['id']}", f"repeated_from_id:={rid}")
        body = json.loads(text)
        body.update(id=str(rid), created_at=self.now, updated_at=self.now)
        for key in ("archived_at", "deleted_at", "cancelled_at", "merged_at", "merged_with_patient"):
            if key in body:
                body[key] = None
        if resource in CANCELLABLE:
            body.update(cancellation_reason=None, cancellation_reason_description="", cancellation_note=None)
        if resource == "practitioners":
            body["active"] = True
        body.update(fields)
        self.save(resource, body)
        self.forget_candidates(resource)
        self.record(resource, "created", rid)
        self.follow_booking(resource, body, "created")

    def follow_booking(self, resource: str, appointment: dict, kind: str) -> None:
        """In an account whose ``/attendees`` holds one attendee per individual appointment (as a real account's
        does), that attendee follows its appointment: made with it, and changed, cancelled, archived or deleted
        with it (stamped alike)."""
        if resource != "individual_appointments" or not self.account.individual_attendees:
            return
        aid = int(appointment["id"])
        attendee_id, notes = None, None
        for candidate in range(aid + 1, aid + 1 + ATTENDEE_ID_REACH):  # made after the appointment's own id
            row = self.db.execute("SELECT body FROM attendees WHERE id = ?", (candidate,)).fetchone()
            if row is None:
                attendee_id = attendee_id or candidate  # the first free one, for a new appointment's attendee
                continue
            body = json.loads(row[0])
            if str(body.get("booking", {}).get("links", {}).get("self", "")).endswith(f"/bookings/{aid}"):
                attendee_id, notes = candidate, body.get("notes")
                break
        else:
            kind = "created"
        if attendee_id is None:
            return
        self.save("attendees", {**individual_attendee(appointment, attendee_id), "notes": notes})
        self.forget_candidates("attendees")
        self.record("attendees", kind, attendee_id)

    # -- random changes --------------------------------------------------------------------------
    def pick(self, resource: str, op: str) -> int | None:
        condition = {
            "update": "deleted_at IS NULL",
            "archive": "deleted_at IS NULL AND archived_at IS NULL",
            "delete": "deleted_at IS NULL AND archived_at IS NULL",
        }[op]
        candidates = self._candidates.get((resource, op))
        if candidates is None:
            rows = self.db.execute(f"SELECT id FROM {resource} WHERE {condition} ORDER BY id").fetchall()
            candidates = self._candidates[(resource, op)] = [row[0] for row in rows]
        if not candidates:
            return None
        return candidates[self.rng.randrange(len(candidates))]

    def random(self, counts: dict[str, int], resources: list[str] | None) -> None:
        for op, key in (("update", "updates"), ("create", "creates"), ("archive", "archives"), ("delete", "deletes")):
            pool = INCREMENTAL + CONFIGURATION if op in ("update", "create") else INCREMENTAL
            if resources is not None:
                unknown = set(resources) - set(RESOURCES)
                if unknown:
                    raise MutationError(f"unknown resources {sorted(unknown)}")
                pool = tuple(r for r in pool if r in resources)
            if not pool:
                continue
            for _ in range(int(counts.get(key, 0))):
                resource = self.rng.choice(pool)
                if op == "create":
                    self.create(resource, {})
                    continue
                rid = self.fresh_pick(resource, op)
                if rid is not None:
                    self.apply(op, resource, rid, {})

    def fresh_pick(self, resource: str, op: str) -> int | None:
        """A record this mutation has not touched yet, so each id is reported under one change only."""
        touched = self._touched.get(resource, set())
        for _ in range(10):
            rid = self.pick(resource, op)
            if rid is None or str(rid) not in touched:
                return rid
        return None


def mutate(account: Account, request: dict) -> dict:
    """Apply a ``/_sandbox/accounts/{name}/mutate`` body in one transaction; returns the changed ids."""
    with account.write_lock:
        mutator = Mutator(account, random.Random(request.get("seed", 0)), float(request.get("stamped_seconds_ago", 0)))
        mutator.db.execute("BEGIN IMMEDIATE")
        try:
            for op in request.get("ops", []):
                rid = op.get("id")
                mutator.apply(op.get("op", ""), op.get("resource", ""), int(rid) if rid else None, op.get("fields", {}))
            mutator.random(request, request.get("resources"))
        except BaseException:
            mutator.db.execute("ROLLBACK")
            account.page_cache.changed()
            raise
        mutator.db.execute("COMMIT")
        account.page_cache.changed()
    return {"changed": mutator.changed}


def truth(account: Account) -> dict[str, dict[str, int]]:
    """Records per state for every resource; states with no records are listed with 0. Contacts and
    attachments removed by a hard delete count as ``deleted``."""
    db = account.db()
    counts = {}
    removed = dict(db.execute("SELECT resource, COUNT(*) FROM _removed GROUP BY resource").fetchall())
    for resource, states in STATE_NAMES.items():
        found = dict(db.execute(f"SELECT state, COUNT(*) FROM {resource} GROUP BY state").fetchall())
        counts[resource] = {state: found.get(state, 0) for state in states}
        if resource in REMEMBERED:
            counts[resource]["deleted"] = removed.get(resource, 0)
    return counts


def set_churn(account: Account, rule: dict) -> dict:
    """Set (or with no ``resource``, clear) the account's churn rule; returns what it has deleted so far."""
    resource = rule.get("resource")
    if resource is None:
        account.churn = None
        return {"churn": None}
    if resource not in RESOURCES or resource in CONFIGURATION or resource == "users":
        raise MutationError(f"cannot churn {resource!r}; use one of {', '.join(INCREMENTAL)}")
    account.churn = Churn(
        resource,
        max(1, int(rule.get("every", 1))),
        int(rule["deletes"]),
        int(rule["limit"]),
        creates=max(0, int(rule.get("creates", 0))),
    )
    return {"churn": rule}


def churn(account: Account, route: str) -> None:
    """Apply the account's churn rule to a list request on ``route`` before it is answered."""
    rule = account.churn
    if rule is None or route != f"/v1/{rule.resource}":
        return
    with account.write_lock:
        rule.requests += 1
        count = min(rule.deletes, rule.limit - len(rule.deleted))
        if rule.requests % rule.every or count <= 0:
            return
        db = account.db()
        rows = db.execute(
            f"SELECT id FROM {rule.resource} WHERE deleted_at IS NULL AND archived_at IS NULL ORDER BY id LIMIT ?",
            (count,),
        ).fetchall()
        mutator = Mutator(account, random.Random(rule.requests))
        for (rid,) in rows:
            mutator.apply("delete", rule.resource, rid, {})
            rule.deleted.append(str(rid))
            for _ in range(rule.creates):
                mutator.create(rule.resource, {})
        rule.created.extend(mutator.changed.get(rule.resource, {}).get("created", []))
