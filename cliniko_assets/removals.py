"""What Cliniko no longer has leaves Splose: removed by the import report once every load is done.

A load that finds a record Splose holds (an earlier import brought it across) that must no longer be there
marks it for removal (:meth:`cliniko_assets.changes.RunCrosswalk.retire`): skipped for a reason that says
so (:data:`cliniko_assets.attention.GONE`: deleted in Cliniko, its location or appointment type now
ignored by the clinic), or, for what Cliniko deletes without a trace and lists in full (reference numbers,
templates, an availability's ranges), no longer listed at all. The report then removes them through the
import API (``POST /imports/{id}/records/{entity}/remove``), entity by entity from the records that refer
to others to the records referred to (:data:`ORDER`), so that a client goes after its appointments, notes
and files. Splose removes a record only when nothing left refers to it, never cascading: what it refuses
(a record of the clinic's own in Splose still points at it, or a record this import keeps does) stays, and
the clinic hears about it, with Splose's reason (kinds and counts of what refers to it). More than half of
what Splose holds of a kind of record (over :data:`MOST`) is held back and reported unless the run confirms
it (run config ``import_request.config.remove_most``): a wrong mapping or an account answering badly must
not empty a clinic's Splose.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cliniko_assets.changes import RunCrosswalk
from splose_resources.splose import MAX_BATCH, RejectedRecord, SploseImportClient

# Referring entities before the entities they refer to.
ORDER = (
    "progressNotes",
    "files",
    "appointments",
    "availability",
    "providerNumbers",
    "clients",
    "contacts",
    "progressNoteTemplates",
)
KEPT_IDS = 100  # external ids of refused removals kept per entity, for the report's metadata
MOST = 20  # more than this, and more than half of what Splose holds of an entity, is held back unless confirmed


@dataclass
class Removals:
    """What the report removed from Splose, per entity, and what Splose would not remove."""

    removed: Counter = field(default_factory=Counter)
    absent: Counter = field(default_factory=Counter)  # already gone from Splose
    refused: Counter = field(default_factory=Counter)
    refused_ids: dict[str, list[str]] = field(default_factory=dict)
    refused_reason: dict[str, str] = field(default_factory=dict)  # the first of Splose's messages
    held_back: dict[str, tuple[int, int]] = field(default_factory=dict)  # entity -> (to remove, held)
    found: int = 0  # records marked by the loads that the report found marked
    missed: int = 0  # records the rows say they marked, that the report did not find (see :meth:`check`)

    def check(self, marked: int) -> None:
        """Compare with what the rows say they marked (their ``to_remove``)."""
        self.missed = max(0, marked - self.found)

    def gone(self, entity: str) -> int:
        """How many of the entity's crosswalk entries (as the run knew it) are no longer in Splose."""
        return self.removed[entity] + self.absent[entity]

    def attention(self) -> list[str]:
        missed = (
            [
                f"{self.missed} record(s) the loads marked for removal were not found by the report (a run that did "
                "not load again what an earlier one marked): nothing of them was removed; re-run the whole import"
            ]
            if self.missed
            else []
        )
        held_back = missed + [
            f"{entity}: {n} of the {held} Splose holds are deleted in Cliniko or ignored by the mapping, more "
            "than half: none was removed. Check the mapping and the Cliniko account; if they are right, re-run "
            "with run config resources.import_request.config.remove_most: true"
            for entity, (n, held) in sorted(self.held_back.items())
        ]
        return held_back + [
            f"{entity}: {n} deleted in Cliniko or ignored by the mapping could not be removed from Splose "
            f"({self.refused_reason[entity]}); remove or change what refers to them in Splose, then re-sync"
            for entity, n in sorted(self.refused.items())
        ]

    def notes(self) -> list[str]:
        return [
            f"{entity}: {n} removed from Splose (deleted in Cliniko, or ignored by the mapping)"
            for entity, n in sorted(self.removed.items())
        ]

    def metadata(self) -> dict:
        return {
            "removed_from_splose": dict(self.removed),
            "not_removed": {
                entity: {"count": n, "external_ids": self.refused_ids.get(entity, [])}
                for entity, n in self.refused.items()
            },
            "removals_held_back": {entity: n for entity, (n, _) in self.held_back.items()},
        }


def held_back(count: int, held: int, most: bool) -> bool:
    """Whether removing ``count`` of the ``held`` records Splose holds of an entity waits for confirmation."""
    return not most and count > MOST and 2 * count > held


def remove_retired(known: RunCrosswalk, imports: SploseImportClient, import_id: int, most: bool) -> Removals:
    """Remove from Splose every record this run's loads marked, in :data:`ORDER`; more than half of what Splose
    holds of an entity (over :data:`MOST`) only when ``most`` confirms it."""
    removals = Removals()
    for entity in ORDER:
        pending = list(known.retired(entity))
        removals.found += len(pending)
        held = len(known.entries(entity)) if pending else 0
        if held_back(len(pending), held, most):
            removals.held_back[entity] = (len(pending), held)
            continue
        refused: list[RejectedRecord] = []
        while pending:  # again while a pass removes some: a record may refer to another of a later batch
            result = imports.remove(import_id, entity, pending)
            removals.removed[entity] += len(result.removed)
            removals.absent[entity] += len(result.absent)
            refused = result.errors
            again = [error.external_id for error in refused if error.external_id]
            pending = again if result.removed and again and len(pending) > MAX_BATCH else []
        for error in refused:
            removals.refused[entity] += 1
            removals.refused_reason.setdefault(entity, error.message)
            ids = removals.refused_ids.setdefault(entity, [])
            if error.external_id and len(ids) < KEPT_IDS:
                ids.append(error.external_id)
    return removals
