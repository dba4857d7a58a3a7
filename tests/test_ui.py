"""The Dagster UI used as a person uses it: Debian's Chromium, driven by Playwright, on the real webserver.

``sandbox.ui_tour`` (also ``make screenshots``) opens the asset graph, backfills both tenants from
``import_job``'s *Materialize all…* with nothing typed, waits for the runs and reads each tenant's
``splose/import_report``. Here, what it read is checked against the definitions, the runs, the run's own
metadata and the Cliniko sandbox's ground truth.
"""

from __future__ import annotations

from collections import Counter

import pytest

from cliniko_assets.definitions import defs
from cliniko_assets.rows import ROWS
from sandbox.ui_tour import CLINICS, browse, clinics_in_dagster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def shown_as(name: str, shown: str) -> bool:
    """Whether the graph's label is ``name``, middle-truncated as the graph does for long names."""
    head, _, tail = shown.partition("…")
    return shown == name or ("…" in shown and name.startswith(head) and name.endswith(tail))


def test_a_backfill_of_two_tenants_from_the_ui_imports_both_and_the_report_shows_their_counts(tmp_path):
    with clinics_in_dagster(tmp_path / "work") as clinics:
        tenants = sorted(clinics.imports)
        tour = browse(clinics.dagster.url, tenants, tmp_path / "screenshots")
        truth = {tenant: clinics.cliniko.truth(account) for tenant, (account, _) in CLINICS.items()}

    # The asset graph shows every group open and every asset of the definitions, by group.
    assert sorted(tour.graph_groups) == ["cliniko", "review", "splose"]
    expected = sorted(key.path[-1] for key in defs.resolve_asset_graph().get_all_asset_keys())
    shown = list(tour.graph_assets)
    for name in expected:
        match = next((label for label in shown if shown_as(name, label)), None)
        assert match is not None, f"{name} is not on the asset graph: {shown}"
        shown.remove(match)
    assert shown == []

    # One run per tenant, launched by the backfill, each a success.
    assert [(run.tenant, run.status) for run in tour.runs] == [(tenant, "SUCCESS") for tenant in tenants]
    assert {run.tenant: run.import_id for run in tour.runs} == {t: str(i) for t, i in clinics.imports.items()}

    for run in tour.runs:
        report = tour.reports[run.tenant]
        # The page shows the report this backfill's run materialized, with every row of the reconciliation,
        assert run.run_id.startswith(report.run)
        assert [row["row"] for row in report.rows] == list(ROWS.values())
        # and its numbers are the run's own.
        assert report.rows == tour.recorded[run.tenant]
        rows = {row["row"]: row for row in report.rows}
        patients = truth[run.tenant]["patients"]
        clients = rows[ROWS["clients"]]
        assert int(clients["cliniko"]) == sum(patients.values())
        assert int(clients["loaded"]) == sum(n for state, n in patients.items() if state != "deleted")
        assert all(int(row["cliniko"]) == int(row["loaded"]) + int(row["skipped"]) for row in report.rows)
        assert {row["rejected"] for row in report.rows} == {"0"}
    # Two clinics, two reports: the tables are each tenant's own.
    assert tour.reports[tenants[0]].rows != tour.reports[tenants[1]].rows

    assert Counter(path.name for path in tour.screenshots) == Counter(
        ["asset-graph.png", "backfill-dialog.png", "backfill-created.png", "backfill-runs.png"]
        + [f"import-report-{tenant}.png" for tenant in tenants]
    )
    assert all(path.stat().st_size > 20_000 for path in tour.screenshots)
