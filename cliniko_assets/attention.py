"""What of a reconciliation the clinic must hear about, decided in one place.

"Complete" means what it says: records Splose rejected and records skipped for a data problem make an
import complete *with warnings*, named row by row (counts, reasons, where to see the records) in the
import's status message, the email and the report's metadata. Records imported without an unusable field
(its value kept in the record's notes) are counted by field on a line of their own, not as warnings.
Skips that are the clinic's choice, or that Cliniko itself explains (deleted records, references to
records Cliniko no longer has), are reported but are not warnings. :data:`SKIP_REASONS` says which is
which; reasons that name a Cliniko id are matched with the id as ``<id>``. A reason missing from the
table is a warning, so nothing new is ever hidden.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Protocol

from cliniko_assets.attachments import FILE_KEPT_FAILING, FILE_NOT_FOUND, FILE_SIZE_DIFFERS
from cliniko_assets.transforms.salvage import ZERO_MINUTES
from splose_resources.cliniko import FILE_MISSING, FILE_REFUSED

EXPECTED = "expected"  # the clinic's choice, or explained by Cliniko: reported, not a warning
PROBLEM = "problem"  # a record the clinic may miss: a warning, named in the status and the email

# Why a record was skipped -> whether the clinic must be told. Add a row's new reasons here.
SKIP_REASONS: dict[str, str] = {
    "deleted in Cliniko": EXPECTED,
    "ignored by the clinic": EXPECTED,
    "location ignored": EXPECTED,
    "appointment type ignored by the clinic": EXPECTED,
    "not requested by the clinic": EXPECTED,
    "not mapped (no data)": EXPECTED,
    "not mapped (not a practitioner with data)": EXPECTED,
    "not mapped (no appointments use it)": EXPECTED,
    "no availability ranges": EXPECTED,  # an empty day: nothing to bring
    "booking is not a group appointment": EXPECTED,  # imported with its individual appointment
    "duplicate attendee": EXPECTED,  # the same attendee listed twice: imported once
    # Records other records point at that Cliniko no longer has (stubs, not the clinic's records), and
    # what only those references hold together: Cliniko itself lost them.
    "not in Cliniko (only referenced by other records)": EXPECTED,
    "not listed by Cliniko, not mapped": EXPECTED,  # mapping rows; their dependants are warned about
    "patient <id> not in Cliniko": EXPECTED,
    # Follow another row's skip, which is reported (and warned about, if it is a problem) on its own row.
    "client not imported": EXPECTED,
    "group appointment skipped": EXPECTED,
    # Data problems the clinic can act on.
    "business <id> not listed by Cliniko, not mapped": PROBLEM,  # map the business (or ignore it)
    "practitioner <id> not listed by Cliniko, not mapped": PROBLEM,  # map the practitioner
    "time zone of business <id> not known": PROBLEM,  # set the business's time zone in Cliniko
    "not yet processed by Cliniko": PROBLEM,
    "bytes could not be downloaded from Cliniko": PROBLEM,
    "no booking link": PROBLEM,
    FILE_NOT_FOUND: PROBLEM,
    FILE_MISSING: PROBLEM,
    FILE_REFUSED: PROBLEM,
    FILE_SIZE_DIFFERS: PROBLEM,
    FILE_KEPT_FAILING: PROBLEM,
}

# Skips meaning the record must not be in Splose: one that an earlier import brought across is removed from it.
# A record Splose holds whose client is "not imported" has a client on its way out (deleted in Cliniko):
# it goes with it, before it (Splose removes nothing that is still referred to).
GONE = (
    "deleted in Cliniko",
    "location ignored",
    "appointment type ignored by the clinic",
    "no availability ranges",
    "client not imported",
)
NO_LONGER_IN_CLINIKO = "no longer in Cliniko"  # held in Splose, and no longer listed by Cliniko at all
TO_REMOVE = "to_remove"  # a row's count of what it marked for removal from Splose
NOT_REMOVED_SHORT = "removals_skipped_listing_short"  # 1: Cliniko's listing fell short, nothing unlisted removed
FIELDS_CUT = "fields_cut_to_fit"  # values longer than their Splose field: cut there, kept whole in the notes

# Counts worth a line of their own under a row, by metadata name.
FACT_LABELS = {
    "notes_without_appointment": "not linked to an appointment (attached to client and practitioner)",
    TO_REMOVE: "brought across earlier, now deleted in Cliniko or ignored: marked for removal (splose/import_report)",
    NOT_REMOVED_SHORT: "listing short of Cliniko's count: what it no longer lists was not removed from Splose",
    FIELDS_CUT: "field(s) longer than Splose holds (255 characters): cut there, each kept whole in the record's notes "
    "(a progress note's or template's in its section's description)",
}

# Warnings naming a value imported adjusted, not a field left out: a line of their own, saying what was done.
ADJUSTED_LABELS = {
    ZERO_MINUTES: "of 0 minutes (Cliniko's end is its start): imported ending a minute later, said in their notes",
}


class Row(Protocol):
    row: str
    skipped: Mapping[str, int]
    skipped_ids: Mapping[str, list[str]]
    rejected: int
    rejected_ids: list[str]
    rejected_reasons: Mapping[str, int]
    warnings: Mapping[str, int]
    facts: Mapping[str, int]


def is_problem(reason: str) -> bool:
    kind = SKIP_REASONS.get(reason) or SKIP_REASONS.get(re.sub(r"\b\d+\b", "<id>", reason))
    return (kind or PROBLEM) == PROBLEM


def problem_skips(report: Row) -> dict[str, int]:
    return {reason: count for reason, count in sorted(report.skipped.items()) if is_problem(reason)}


def needs_attention(report: Row) -> list[str]:
    """What of one row the clinic must hear about: rejections and data-problem skips, with counts."""
    lines = []
    if report.rejected:
        shapes = "; ".join(f"{n}x {shape}" for shape, n in sorted(report.rejected_reasons.items())[:3])
        lines.append(f"{report.row}: {report.rejected} rejected by Splose ({shapes})")
    lines.extend(f"{report.row}: {count} skipped, {reason}" for reason, count in problem_skips(report).items())
    return lines


def row_notes(report: Row) -> list[str]:
    """Counts that are not warnings but are worth a line: fields left out, values adjusted, notes without an
    appointment."""
    lines = []
    left_out = {name: n for name, n in report.warnings.items() if name not in ADJUSTED_LABELS}
    if left_out:
        fields = ", ".join(f"{name} {n}" for name, n in sorted(left_out.items()))
        lines.append(f"{report.row}: loaded without an unusable or dangling field (kept in its notes): {fields}")
    lines.extend(
        f"{report.row}: {report.warnings[name]} {label}"
        for name, label in ADJUSTED_LABELS.items()
        if report.warnings.get(name)
    )
    lines.extend(
        f"{report.row}: {n} {FACT_LABELS.get(name, name.replace('_', ' '))}"
        for name, n in sorted(report.facts.items())
        if n
    )
    return lines


def attention_records(reports: Iterable[Row]) -> dict[str, dict]:
    """The Cliniko ids behind each warning, for the report's metadata (ids only, never a value)."""
    found: dict[str, dict] = {}
    for report in reports:
        entry: dict = {}
        if report.rejected:
            entry["rejected"] = {"count": report.rejected, "cliniko_ids": report.rejected_ids[:100]}
        for reason, count in problem_skips(report).items():
            entry[reason] = {"count": count, "cliniko_ids": list(report.skipped_ids.get(reason, []))[:100]}
        if entry:
            found[report.row] = entry
    return found


def completion_message(tenant: str, attention: list[str]) -> str:
    if not attention:
        return "Complete: every record is accounted for and none needs your attention."
    return (
        f"Complete with warnings: {len(attention)} item(s) need attention.\n"
        + "\n".join(f"- {line}" for line in attention)
        + f"\nThe records (Cliniko ids) are listed in the Dagster asset splose/import_report, partition '{tenant}' "
        "(metadata 'needs_attention'). Fix them in Cliniko and the next sync brings them across."
    )
