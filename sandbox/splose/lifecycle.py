"""The import request's life (``splose-api.md`` section 2): its status machine, its undo deadline, its cascade.

Status moves only along these edges; any other move is a 409 naming the current and requested status::

    POST      -> submitted
    submitted -> running                  (PATCH: a run started)
    running   -> complete | failed        (PATCH)
    failed    -> running                  (PATCH: a retry)
    complete  -> running                  (PATCH: a re-sync)
    any but deleted -> deleted            (DELETE only; final)

A PATCH that repeats the current status (``running``, ``complete`` or ``failed``) is not a move: a
client retrying a PATCH whose answer was lost gets the same answer, and may update counts and message.
``submitted`` is reached only through POST and ``deleted`` only through DELETE, so a PATCH to either is
always refused.

``completedAt`` is stamped the first time an import reaches ``complete`` and never again, so the undo
deadline (``completedAt`` + the delete window) cannot be moved by any sequence of requests.

At most one import per workspace is active (``submitted`` or ``running``): creating another, or moving a
finished one back to ``running``, while one is active is a 409 naming it.

DELETE removes what the import created and, so that no reference dangles, every record of another import
that refers to a removed record, transitively: a re-sync's appointment of a deleted client, a file of a
deleted client, a progress note of a deleted appointment (``splose-api.md``: "records of other imports
that refer to a deleted record are deleted with it").

A record no import created (one the clinic made through v1, such as ``POST /v1/patients``, or a seeded
one) is the clinic's own and is never deleted by an undo: where it refers to a removed record (a walk-in
patient whose ``invoiceRecipientId`` is an imported contact) it keeps existing with that reference
cleared (``null``, as if it had never been set), and its ``updatedAt`` moves so a delta sync sees the
change. The DELETE answer counts those records under ``clearedReferences``.

Removing records by external id (``POST /imports/{id}/records/{entity}/remove``) never cascades and never
clears a reference: a requested record that a record outside the request still refers to stays, and so
does every requested record it refers to (:func:`still_referred`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sandbox.splose.app import ApiError
from sandbox.splose.store import ImportRequest, Store, StoredObject, iso, parse_iso

STATUSES = ("submitted", "running", "complete", "failed", "deleted")
ACTIVE = ("submitted", "running")
PATCH_TARGETS = ("running", "complete", "failed")
PATCH_MOVES: dict[str, tuple[str, ...]] = {
    "submitted": ("running",),
    "running": ("running", "complete", "failed"),
    "complete": ("complete", "running"),
    "failed": ("failed", "running"),
    "deleted": (),
}
# Fields through which one stored record refers to another (Splose ids, resolved from external ids).
REFERENCE_FIELDS = (
    "referringContactId",
    "invoiceRecipientId",
    "serviceId",
    "repeatOfId",
    "patientId",
    "appointmentId",
    "templateId",
)


def check_patch(current: ImportRequest, requested: str) -> None:
    """Refuse (409) a PATCH that would move ``current`` to ``requested`` off the status machine."""
    allowed = PATCH_MOVES[current.status]
    if requested in allowed:
        return
    if current.status == "deleted":
        reason = "a deleted import is final"
    elif requested == "deleted":
        reason = "an import is deleted only through DELETE /imports/{id}"
    elif requested == "submitted":
        reason = "an import is submitted only through POST /imports"
    else:
        reason = f"from {current.status!r} a PATCH may only set {' or '.join(map(repr, allowed))}"
    raise ApiError(
        409,
        f"Import {current.id} is {current.status!r} and cannot move to {requested!r}: {reason}",
        {"status": f"{current.status} -> {requested} is not allowed"},
    )


def check_one_active(store: Store, workspace_id: str, *, other_than: int | None = None) -> None:
    """Refuse (409) a new active import while another import of the workspace is still active."""
    marks = ", ".join("?" for _ in ACTIVE)
    row = store.query_one(
        f"SELECT id, status FROM imports WHERE workspace_id = ? AND status IN ({marks}) AND id IS NOT ?"
        " ORDER BY id LIMIT 1",
        (workspace_id, *ACTIVE, other_than),
    )
    if row is not None:
        raise ApiError(
            409,
            f"Import {row['id']} of workspace {workspace_id!r} is still {row['status']!r}: a workspace has one"
            " active import at a time; wait until it is complete or failed (or delete it) and try again",
            {"status": f"import {row['id']} is {row['status']}"},
        )


def delete_deadline(current: ImportRequest, window: timedelta) -> datetime | None:
    return parse_iso(current.completed_at) + window if current.completed_at else None


def check_delete(current: ImportRequest, now: datetime, window: timedelta) -> None:
    """Refuse (409) a DELETE of a deleted import, or of one whose undo deadline has passed."""
    if current.status == "deleted":
        raise ApiError(
            409, f"Import {current.id} is already 'deleted'; a deleted import is final", {"status": "deleted"}
        )
    deadline = delete_deadline(current, window)
    if deadline is not None and now > deadline:
        raise ApiError(
            409,
            f"Import {current.id} can no longer be deleted: the deadline was {iso(deadline)}"
            f" ({window.total_seconds() / 3600:g} hours after it first completed at {current.completed_at});"
            " nothing was deleted",
            {"status": f"delete deadline {iso(deadline)} has passed"},
        )


def references(data: dict[str, Any]) -> set[int]:
    """The Splose ids one stored record refers to."""
    found: list[Any] = [data.get(name) for name in REFERENCE_FIELDS]
    found += [patient.get("patientId") for patient in data.get("appointmentPatients") or []]
    return {ref for ref in found if isinstance(ref, int) and not isinstance(ref, bool)}


def cascade(objects: Iterable[StoredObject], doomed: set[int]) -> set[int]:
    """``doomed`` plus every imported object that refers, directly or through others, to one of them."""
    referrers: dict[int, set[int]] = defaultdict(set)
    for obj in objects:
        if obj.import_id is None:
            continue  # the clinic's own record: see ``without_references``
        for ref in references(obj.data):
            referrers[ref].add(obj.id)
    closed = set(doomed)
    frontier = list(doomed)
    while frontier:
        new = referrers.get(frontier.pop(), set()) - closed
        closed |= new
        frontier.extend(new)
    return closed


def still_referred(objects: Iterable[StoredObject], requested: set[int]) -> dict[int, dict[str, int]]:
    """The ``requested`` ids that must stay, each with its referrers outside the removal, by kind.

    A requested record stays while any record of ``objects`` not removed with it refers to it, and a record
    that stays keeps every requested record it refers to: a fixpoint, so an appointment and the one it
    repeats go together, or stay together while a note still refers to the repeat."""
    referrers: dict[int, list[StoredObject]] = defaultdict(list)
    refers_to: dict[int, set[int]] = {}
    for obj in objects:
        refs = references(obj.data) - {obj.id}
        for ref in refs & requested:
            referrers[ref].append(obj)
        if obj.id in requested:
            refers_to[obj.id] = refs & requested
    kept = {ref for ref in requested if any(obj.id not in requested for obj in referrers[ref])}
    frontier = list(kept)
    while frontier:
        new = refers_to.get(frontier.pop(), set()) - kept
        kept |= new
        frontier.extend(new)
    removed = requested - kept
    return {ref: count_kinds(obj for obj in referrers[ref] if obj.id not in removed) for ref in kept}


def without_references(data: dict[str, Any], removed: set[int]) -> dict[str, Any] | None:
    """``data`` with every reference to a ``removed`` id set to null, or None when it refers to none of them."""
    if not references(data) & removed:
        return None
    cleared = {**data, **{name: None for name in REFERENCE_FIELDS if data.get(name) in removed}}
    if data.get("appointmentPatients"):
        cleared["appointmentPatients"] = [
            {**patient, "patientId": None} if patient.get("patientId") in removed else patient
            for patient in data["appointmentPatients"]
        ]
    return cleared


def count_kinds(objects: Iterable[StoredObject]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for obj in objects:
        counts[obj.kind] = counts.get(obj.kind, 0) + 1
    return counts
