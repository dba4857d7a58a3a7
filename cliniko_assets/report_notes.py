"""The lines under the reconciliation: what was imported without a field, and what needs the clinic.

``needs_attention`` holds skip reasons the clinic can act on (a business nobody mapped, a business without a
known time zone): an import that has any is not complete without a warning the clinic sees. ``warnings``
counts records imported without a field (by Cliniko field name, never a value), ``facts`` other counts worth
a line (progress notes not linked to an appointment).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

FACT_LABELS = {"notes_without_appointment": "not linked to an appointment (attached to client and practitioner)"}


def row_lines(
    row: str, warnings: Mapping[str, int], attention: Mapping[str, int], facts: Mapping[str, int]
) -> list[str]:
    lines = []
    if warnings:
        fields = ", ".join(f"{field} {n}" for field, n in sorted(warnings.items()))
        lines.append(f"{row}: loaded without an unusable or dangling field: {fields}")
    lines.extend(
        f"{row}: {n} {FACT_LABELS.get(name, name.replace('_', ' '))}" for name, n in sorted(facts.items()) if n
    )
    lines.extend(f"{row}: NEEDS ATTENTION: {n} skipped, {reason}" for reason, n in sorted(attention.items()))
    return lines


def report_lines(reports: Iterable) -> list[str]:
    """The lines of every row (``RowReport``s), in the report's order."""
    return [line for r in reports for line in row_lines(r.row, r.warnings, r.needs_attention, r.facts)]


def attention_total(reports: Iterable) -> int:
    return sum(sum(r.needs_attention.values()) for r in reports)
