"""The reconciliation: one row of the mission's table per Cliniko resource, and how a person reads it.

Every row is Cliniko count = loaded + skipped (by reason) + rejected. In the UI each load asset and
``splose/import_report`` show it as a table (:func:`reconciliation_table`) with a markdown summary, its
counts as numeric metadata (plotted over re-syncs) and its ``reconciled`` check carrying the numbers.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg

from cliniko_assets.attention import needs_attention, problem_skips, row_notes
from cliniko_assets.sinks import CREATED
from cliniko_assets.transforms import Skip
from splose_resources.splose import UpsertResult

RECONCILED = "reconciled"


def splose_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["splose", name])


@dataclass
class RowReport:
    """One row of the reconciliation."""

    row: str
    cliniko: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)
    rejected: int = 0
    rejected_reasons: Counter = field(default_factory=Counter)
    rejected_ids: list[str] = field(default_factory=list)
    skipped_ids: dict[str, list[str]] = field(default_factory=dict)
    # Cliniko field name -> records loaded without that field (an unusable value, or a dangling reference).
    warnings: Counter = field(default_factory=Counter)
    # Other counts worth a line in the reconciliation, e.g. {"notes_without_appointment": 12}.
    facts: dict[str, int] = field(default_factory=dict)

    @property
    def loaded(self) -> int:
        return self.created + self.updated + self.unchanged

    @property
    def unaccounted(self) -> int:
        return self.cliniko - self.loaded - sum(self.skipped.values()) - self.rejected

    def skip(self, reason: str, count: int = 1, record_id: str | None = None) -> None:
        self.skipped[reason] += count
        ids = self.skipped_ids.setdefault(reason, [])
        if record_id and len(ids) < 100:
            ids.append(record_id)

    def count_skip(self, skip: Skip) -> None:
        self.skip(skip.reason, record_id=skip.cliniko_id or None)

    def absorb(self, result: UpsertResult) -> None:
        counts = Counter(record.action for record in result.records)
        self.created += counts[CREATED]
        self.updated += counts["updated"]
        self.unchanged += counts["unchanged"]
        for rejected in result.errors:
            self.reject(rejected.external_id, rejected.message)

    def reject(self, external_id: str | None, message: str) -> None:
        self.rejected += 1
        self.rejected_reasons[_message_shape(message)] += 1
        if external_id and len(self.rejected_ids) < 500:
            self.rejected_ids.append(external_id)

    def merge(self, part: RowReport) -> None:
        """Add the counts of another part of the same row (e.g. the clients found by id to the listed ones)."""
        for name in ("cliniko", "created", "updated", "unchanged", "rejected"):
            setattr(self, name, getattr(self, name) + getattr(part, name))
        self.skipped.update(part.skipped)
        self.rejected_reasons.update(part.rejected_reasons)
        self.warnings.update(part.warnings)
        self.rejected_ids = (self.rejected_ids + part.rejected_ids)[:500]
        for reason, ids in part.skipped_ids.items():
            self.skipped_ids[reason] = (self.skipped_ids.get(reason, []) + ids)[:100]
        for name, count in part.facts.items():
            self.facts[name] = self.facts.get(name, 0) + count

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.update(
            skipped=dict(self.skipped),
            rejected_reasons=dict(self.rejected_reasons),
            loaded=self.loaded,
            unaccounted=self.unaccounted,
        )
        return data

    @classmethod
    def from_json(cls, data: dict) -> RowReport:
        names = {f.name for f in dataclasses.fields(cls)}
        report = cls(**{k: v for k, v in data.items() if k in names})
        for name in ("skipped", "rejected_reasons", "warnings"):
            setattr(report, name, Counter(getattr(report, name)))
        return report


def _message_shape(message: str) -> str:
    """Splose's message without the values it may quote: only field names and the kind of problem remain."""
    masked = re.sub(r"'[^']*'|\"[^\"]*\"", "<value>", message)
    return re.sub(r"\d+", "#", masked)[:160]


RECONCILIATION_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("row", "string", description="Cliniko resource -> Splose entity"),
        dg.TableColumn("cliniko", "int", description="records Cliniko has (as staged)"),
        dg.TableColumn("loaded", "int", description="created, updated or unchanged in Splose"),
        dg.TableColumn("skipped", "int", description="not sent to Splose, each with a reason"),
        dg.TableColumn("skipped_by_reason", "string", description="how many were skipped for which reason"),
        dg.TableColumn("rejected", "int", description="refused by Splose (its messages in the metadata)"),
    ]
)


def skipped_text(report: RowReport) -> str:
    return "; ".join(f"{n} {reason}" for reason, n in sorted(report.skipped.items())) or "-"


def reconciliation_table(reports: Iterable[RowReport]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "row": report.row,
                    "cliniko": report.cliniko,
                    "loaded": report.loaded,
                    "skipped": sum(report.skipped.values()),
                    "skipped_by_reason": skipped_text(report),
                    "rejected": report.rejected,
                }
            )
            for report in reports
        ],
        schema=RECONCILIATION_SCHEMA,
    )


def reconciliation_markdown(reports: Iterable[RowReport]) -> str:
    lines = ["| row | Cliniko | loaded | skipped by reason | rejected |", "|---|---:|---:|---|---:|"]
    lines += [f"| {r.row} | {r.cliniko:,} | {r.loaded:,} | {skipped_text(r)} | {r.rejected:,} |" for r in reports]
    return "\n".join(lines)


def row_summary(reports: list[RowReport]) -> str:
    """What a person reads first on a load asset: the equation, then anything needing attention."""
    lines = []
    for report in reports:
        verdict = "every record accounted for" if report.unaccounted == 0 else f"{report.unaccounted} UNACCOUNTED"
        lines.append(
            f"**{report.row}**: {report.cliniko:,} in Cliniko = {report.loaded:,} loaded (created {report.created:,}, "
            f"updated {report.updated:,}, unchanged {report.unchanged:,}) + {sum(report.skipped.values()):,} "
            f"skipped + {report.rejected:,} rejected: {verdict}."
        )
        lines += [f"- needs attention: {line}" for line in needs_attention(report)]
        lines += [f"- {line}" for line in row_notes(report)]
    return "\n\n".join([*lines, reconciliation_markdown(reports)])


def report_metadata(report: RowReport, *also: RowReport) -> dict:
    """A load asset's metadata: its row (and any row it reports with it) as a table and a summary, and
    every count as a number."""
    return {
        "reconciliation": reconciliation_table([report, *also]),
        "summary": dg.MetadataValue.md(row_summary([report, *also])),
        **counts_metadata(report),
    }


def counts_metadata(report: RowReport) -> dict:
    return {
        "cliniko": report.cliniko,
        "loaded": report.loaded,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "skipped": sum(report.skipped.values()),
        "skipped_by_reason": dg.MetadataValue.json(dict(report.skipped)),
        "rejected": report.rejected,
        "rejected_by_message": dg.MetadataValue.json(dict(report.rejected_reasons)),
        "rejected_ids": dg.MetadataValue.json(report.rejected_ids[:100]),
        "unaccounted": report.unaccounted,
        "warnings_by_field": dg.MetadataValue.json(dict(report.warnings)),
        "needs_attention": dg.MetadataValue.json(problem_skips(report)),
        **report.facts,
    }


def reconciliation_check(name: str, report: RowReport) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=splose_key(name),
        check_name=RECONCILED,
        passed=report.unaccounted == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{report.row}: Cliniko {report.cliniko} = loaded {report.loaded} + skipped "
        f"{sum(report.skipped.values())} + rejected {report.rejected}",
        metadata={
            "cliniko": report.cliniko,
            "loaded": report.loaded,
            "skipped": sum(report.skipped.values()),
            "rejected": report.rejected,
            "unaccounted": report.unaccounted,
        },
    )
