"""``make screenshots``: the Dagster UI used as a person uses it, in a headless browser.

Starts both sandboxes and ``dagster dev`` (webserver + daemon) on loopback with two tiny clinics that
have each submitted an import in Splose, registers both workspaces as tenants, then in Debian's
Chromium (driven by Playwright; no downloaded browser):

1. opens the asset graph (groups ``cliniko`` and ``splose``);
2. on ``import_job``: *Materialize all* -> every partition -> *Launch backfill*, with no config typed;
3. waits for both runs of the backfill (the runs page);
4. opens ``splose/import_report`` of each tenant and reads its reconciliation table.

Each page is saved as a PNG in ``--out``. Everything started is stopped at the end, also on failure.
``tests/test_ui.py`` runs the same tour and checks what it read.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from cliniko_assets.cli_graphql import REPORT_ASSET, Dagster, RunSummary
from sandbox.admin import ClinikoSandboxAdmin
from sandbox.dagster_server import DagsterServer, dagster_server, stop_sensor
from sandbox.demo import submit_import
from sandbox.harness import running_server

CLINICS = {"clinic-north": ("north", 31), "clinic-south": ("south", 32)}
CHROMIUM = "/usr/bin/chromium"
ASSET_NODES = "query { assetNodes { id } }"
VIEWPORT = {"width": 1600, "height": 900}
GRAPH_VIEWPORT = {"width": 2200, "height": 1000}
# The graph top to bottom with the cliniko, splose and review groups open (the UI keeps both in localStorage),
# and no "Join the Dagster community" dialog: on loopback, the first visit of an instance opens it a second
# after any page loads, over the page, unless "communityNux" is set (what its "Skip" button stores).
GRAPH_SETTINGS = """
localStorage.setItem("communityNux", JSON.stringify("1"));
localStorage.setItem("asset-graph-direction", JSON.stringify("vertical"));
localStorage.setItem("asset-graph-open-graph-nodes-global-__GLOBAL__",
  JSON.stringify({expanded: "global@global:cliniko,global@global:splose,global@global:review"}));
"""
RECONCILIATION = """
query Reconciliation($assetKey: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $assetKey) {
    ... on Asset {
      assetMaterializations(partitions: $partitions, limit: 1) {
        runId metadataEntries { label ... on TableMetadataEntry { table { records } } }
      }
    }
  }
}"""
ADD_PARTITION = """
mutation Add($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename ... on PythonError { message } ... on UnauthorizedError { message }
  }
}"""


@dataclass
class Clinics:
    """The running sandboxes and Dagster, and the import id each tenant submitted."""

    dagster: DagsterServer
    cliniko: ClinikoSandboxAdmin
    imports: dict[str, int]


@contextmanager
def clinics_in_dagster(work: Path) -> Iterator[Clinics]:
    """Both sandboxes and ``dagster dev``, two clinics' imports submitted and their tenants registered.

    The import-request sensor is stopped before any request exists, so only the UI launches runs.
    """
    token = secrets.token_urlsafe(24)
    accounts = [f"{account}:{seed}:tiny:au1" for account, seed in CLINICS.values()]
    cliniko_args = [arg for spec in accounts for arg in ("--account", spec)]
    cliniko_args += ["--latency-ms", "0", "--jitter-ms", "0", "--data-dir", str(work / "cliniko")]
    splose_args = [f"--platform-token={token}", "--db", str(work / "splose.db")]
    with (
        running_server("sandbox.cliniko", cliniko_args, log_dir=work) as cliniko,
        running_server("sandbox.splose", splose_args, log_dir=work) as splose,
    ):
        env = {
            "CLINIKO_API_URL": f"{cliniko.url}/{{shard}}/v1",
            "SPLOSE_API_URL": f"{splose.url}/v1",
            "SPLOSE_PLATFORM_TOKEN": token,
            "RATE_LIMIT_STATE_DIR": str(work / "rate"),
        }
        with dagster_server(work / "dagster-home", daemon=True, env=env) as server:
            stop_sensor(server.url, "import_requests")
            admin = ClinikoSandboxAdmin(cliniko.url)
            imports = {
                tenant: submit_import(admin, account, splose.url, tenant) for tenant, (account, _) in CLINICS.items()
            }
            register_tenants(server.url, sorted(imports))
            yield Clinics(server, admin, imports)


def register_tenants(url: str, tenants: list[str]) -> None:
    """What *Add partition* does in the UI (the sensor does it when it sees a request)."""
    dagster = Dagster.connect(url)
    selector = {"repositoryName": dagster.repository, "repositoryLocationName": dagster.location}
    for tenant in tenants:
        added = dagster.query(ADD_PARTITION, selector=selector, name="tenants", key=tenant)["addDynamicPartition"]
        if added["__typename"] != "AddDynamicPartitionSuccess":
            raise RuntimeError(f"Could not register tenant '{tenant}': {added}")


@dataclass
class Report:
    run: str  # the run the page says materialized it (its short id)
    rows: list[dict[str, str]]  # the reconciliation table as the page shows it


@dataclass
class Tour:
    """What the browser read on each page, what the run recorded, and the screenshots taken."""

    graph_groups: list[str]
    graph_assets: list[str]  # as the graph shows them (long names middle-truncated with "…")
    backfill_id: str
    runs: list[RunSummary]
    reports: dict[str, Report]  # tenant -> its import report as the page shows it
    recorded: dict[str, list[dict[str, str]]]  # tenant -> the same table as the run's metadata holds it
    screenshots: list[Path] = field(default_factory=list)


def browse(url: str, tenants: list[str], out: Path, run_timeout: float = 1200) -> Tour:
    """The tour in Chromium: the asset graph, a backfill of every tenant, its runs, each tenant's report."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium).")
    out.mkdir(parents=True, exist_ok=True)
    dagster = Dagster.connect(url)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            context = browser.new_context(viewport=VIEWPORT, device_scale_factor=2)
            context.add_init_script(GRAPH_SETTINGS)
            page = context.new_page()
            page.set_default_timeout(120_000)
            shots = Shots(page, out)
            groups, assets = asset_graph(page, url, shots, len(dagster.query(ASSET_NODES)["assetNodes"]))
            backfill_id = launch_backfill(page, url, len(tenants), shots)
            runs = dagster.wait_for_backfill(backfill_id, len(tenants), poll_seconds=3, timeout=run_timeout)
            runs_page(page, url, backfill_id, len(runs), shots)
            reports = {tenant: import_report(page, url, tenant, shots) for tenant in tenants}
        finally:
            browser.close()
    recorded = {tenant: recorded_reconciliation(dagster, tenant) for tenant in tenants}
    return Tour(groups, assets, backfill_id, runs, reports, recorded, shots.taken)


@dataclass
class Shots:
    page: Page
    out: Path
    taken: list[Path] = field(default_factory=list)

    def take(self, name: str, size: dict[str, int] | None = None, dialogs: int = 0) -> None:
        """A PNG of the page, at ``size`` (then back to the usual viewport), with ``dialogs`` dialogs open."""
        if size:
            self.page.set_viewport_size(size)
        self.page.wait_for_timeout(1000)  # animations (zoom to fit, toasts) settle
        expect(self.page.get_by_role("dialog")).to_have_count(dialogs)  # nothing else over the page
        path = self.out / f"{name}.png"
        self.page.screenshot(path=path)
        self.page.set_viewport_size(VIEWPORT)
        self.taken.append(path)


def asset_graph(page: Page, url: str, shots: Shots, assets: int) -> tuple[list[str], list[str]]:
    """The global asset lineage, every group expanded, zoomed to fit; the group and asset names it shows.
    ``assets``: how many assets the code location has (the graph is read once it draws them all)."""
    page.set_viewport_size(GRAPH_VIEWPORT)  # the graph is wide; it is zoomed to fit the width of the window
    page.goto(f"{url}/asset-groups")
    page.get_by_role("button", name="Hide navigation").click()
    page.locator('button:has([aria-label="panel_show_right"])').click()  # the group list: more room for the graph
    names = page.locator('[class*="AssetNode_assetName"]')
    names.filter(has_text="import_report").wait_for()
    # The graph fits itself once, to the room it had then; a double click on it fits it to the room it has now
    # (what is off screen is not drawn, so only then does the page hold every group and asset).
    page.locator('[data-svg-viewport="1"]').dispatch_event("dblclick")
    expect(names).to_have_count(assets, timeout=60_000)  # the zoom is animated: all are drawn once it has ended
    groups = [text for text in page.locator('[class*="GroupNode"]').all_inner_texts() if text]
    shown = names.all_inner_texts()
    shots.take("asset-graph", GRAPH_VIEWPORT)
    return groups, shown


def launch_backfill(page: Page, url: str, tenants: int, shots: Shots) -> str:
    """``import_job`` -> *Materialize all…* -> *All* partitions -> *Launch backfill*; nothing else typed."""
    page.goto(f"{url}/jobs")
    page.locator('a[href$="/jobs/import_job"]').first.click()
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="All", exact=True).click()
    dialog.get_by_text(f"{tenants} partitions", exact=True).wait_for()
    shots.take("backfill-dialog", dialogs=1)
    dialog.get_by_role("button", name="Launch backfill").click()
    created = page.get_by_text("Created backfill")
    created.wait_for()
    shots.take("backfill-created")
    return created.inner_text().split()[-1]


def runs_page(page: Page, url: str, backfill_id: str, runs: int, shots: Shots) -> None:
    """*Runs*, with the runs within backfills shown: the backfill's runs, newest first."""
    page.goto(f"{url}/runs")
    page.get_by_text("Show runs within backfills").click()
    expect(page.get_by_text(backfill_id, exact=True)).to_have_count(runs)
    shots.take("backfill-runs")


def import_report(page: Page, url: str, tenant: str, shots: Shots) -> Report:
    """``splose/import_report`` of the tenant (its latest materialization) and its reconciliation table."""
    page.goto(f"{url}/assets/splose/import_report?partition={tenant}&view=events")
    materialized = page.get_by_text(f"Partition {tenant} materialized in run")
    table = page.locator("table:not(:has(table))").filter(has=page.get_by_text("skipped_by_reason", exact=True))
    materialized.wait_for()
    table.wait_for()
    header = [cell.strip() for cell in table.locator("th").all_inner_texts()]
    rows = [
        dict(zip(header, (cell.strip() for cell in row.locator("td").all_inner_texts()), strict=True))
        for row in table.locator("tr:has(td)").all()
    ]
    shots.take(f"import-report-{tenant}", {"width": VIEWPORT["width"], "height": 1700})
    return Report(run=materialized.inner_text().split()[-1], rows=rows)


def recorded_reconciliation(dagster: Dagster, tenant: str) -> list[dict[str, str]]:
    """The ``reconciliation`` table of the tenant's latest report as the run recorded it (GraphQL)."""
    found = dagster.query(RECONCILIATION, assetKey={"path": REPORT_ASSET}, partitions=[tenant])["assetOrError"]
    (materialization,) = found["assetMaterializations"]
    (entry,) = [e for e in materialization["metadataEntries"] if e["label"] == "reconciliation"]
    return [{k: str(v) for k, v in json.loads(record).items()} for record in entry["table"]["records"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="where the PNGs go")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ui-tour-") as work, clinics_in_dagster(Path(work)) as clinics:
        print(f"Dagster UI at {clinics.dagster.url}; imports submitted: {clinics.imports}", flush=True)
        tour = browse(clinics.dagster.url, sorted(clinics.imports), args.out)
    for run in tour.runs:
        print(f"{run.tenant}: run {run.run_id} {run.status.lower()}")
    for path in tour.screenshots:
        print(f"wrote {path}")
    return 0 if all(run.status == "SUCCESS" for run in tour.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
