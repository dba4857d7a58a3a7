"""What the support CLI asks a Dagster webserver, through Dagster's own GraphQL client.

Queries and mutations are the ones the UI uses (runs by tag, an asset's latest materialization, the
partition backfill of a job); nothing here needs a secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

IMPORT_JOB = "import_job"
PREVIEW_JOB = "preview_job"
UNDO_JOB = "undo_import_job"
REPORT_ASSET = ["splose", "import_report"]
PREVIEW_ASSET = ["splose", "import_preview"]
IN_PROGRESS = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED"]
START_WAIT_SECONDS = 30.0  # how long a cancel waits for a run that is still starting


class WebserverError(Exception):
    pass


class TenantNotFound(Exception):
    pass


@dataclass
class RunSummary:
    run_id: str
    status: str
    tenant: str = ""
    import_id: str = ""
    when: str = ""
    failures: list[str] = field(default_factory=list)


RUN_FIELDS = """
  runId status startTime endTime
  tags { key value }
"""

RUNS = f"""
query Runs($filter: RunsFilter, $limit: Int) {{
  runsOrError(filter: $filter, limit: $limit) {{
    __typename
    ... on Runs {{ results {{ {RUN_FIELDS} }} }}
    ... on PythonError {{ message }}
  }}
}}"""

IMPORT_RUNS = f"""
query ImportRuns($filter: RunsFilter, $limit: Int) {{
  runsOrError(filter: $filter, limit: $limit) {{
    __typename
    ... on Runs {{ results {{ {RUN_FIELDS} jobName assetSelection {{ path }} }} }}
    ... on PythonError {{ message }}
  }}
}}"""
IMPORT_RUN_LOOKBACK = 50  # the tenant's latest runs searched for its latest import (previews, undos between)

RUN = f"""
query Run($runId: ID!) {{
  runOrError(runId: $runId) {{
    __typename
    ... on Run {{
      {RUN_FIELDS}
      eventConnection(afterCursor: null) {{
        events {{
          __typename
          ... on ExecutionStepFailureEvent {{ stepKey error {{ message }} failureMetadata {{ description }} }}
          ... on RunFailureEvent {{ message }}
        }}
      }}
    }}
    ... on RunNotFoundError {{ message }}
    ... on PythonError {{ message }}
  }}
}}"""

PARTITION_KEYS = """
query PartitionKeys($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode { partitionKeys }
  }
}"""

LATEST_MATERIALIZATION = """
query Latest($assetKey: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: $partitions, limit: 1) {
        runId timestamp
        metadataEntries { label __typename ... on MarkdownMetadataEntry { mdStr } }
      }
    }
  }
}"""

LAUNCH_BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}"""

REPOSITORIES = """
query Repositories {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name location { name } jobs { name } } }
    ... on PythonError { message }
  }
}"""


def webserver_address(url: str) -> tuple[str, int | None, bool, str]:
    """Host, port, https and path prefix of a webserver URL, as Dagster's GraphQL client takes them."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if not parts.hostname:
        raise WebserverError(f"{url!r} is not a webserver URL (for example http://127.0.0.1:3000).")
    return parts.hostname, parts.port, parts.scheme == "https", parts.path.rstrip("/")


class Dagster:
    """One Dagster webserver, seen through Dagster's GraphQL client."""

    def __init__(self, client: DagsterGraphQLClient, url: str) -> None:
        self.client = client
        self.url = url
        self.repository, self.location = self._repository()

    @classmethod
    def connect(cls, url: str) -> Dagster:
        host, port, https, prefix = webserver_address(url)
        try:
            client = DagsterGraphQLClient(host, port_number=port, use_https=https, path_prefix=prefix, timeout=60)
        except DagsterGraphQLClientError as error:
            raise WebserverError(_unreachable(url)) from error
        return cls(client, url)

    def query(self, text: str, **variables: Any) -> dict:
        try:
            return self.client._execute(text, variables)  # Dagster's client: its public methods cover runs only
        except DagsterGraphQLClientError as error:
            raise WebserverError(_unreachable(self.url)) from error

    def tenants(self) -> list[str]:
        node = self.query(PARTITION_KEYS, assetKey={"path": REPORT_ASSET})["assetNodeOrError"]
        if node["__typename"] != "AssetNode":
            raise WebserverError(f"The webserver at {self.url} does not serve the importer's code location.")
        return list(node["partitionKeys"])

    def require_tenant(self, tenant: str) -> str:
        known = self.tenants()
        if tenant not in known:
            listed = ", ".join(known[:20]) + (f" ... ({len(known)} in all)" if len(known) > 20 else "")
            raise TenantNotFound(
                f"Unknown tenant {tenant!r} (a tenant is a clinic's Splose workspace id). Known tenants: "
                f"{listed or 'none yet'}. A tenant appears once its clinic submits an import in Splose."
            )
        return tenant

    def latest_import_run(self, tenant: str) -> RunSummary | None:
        """The tenant's latest run that loaded into Splose: an ``import_job`` run, or a run launched from the
        asset graph (an asset job or asset backfill) that materialized any ``splose/*`` asset but the preview."""
        return self.latest_import_and_undo(tenant)[0]

    def latest_import_and_undo(self, tenant: str) -> tuple[RunSummary | None, RunSummary | None]:
        """The tenant's latest import run (:meth:`latest_import_run`), and the successful undo run that came
        after it, if any: then the import is deleted in Splose, whatever its report said."""
        tenant_tag = {"tags": [{"key": "dagster/partition", "value": tenant}]}
        found = self.query(IMPORT_RUNS, filter=tenant_tag, limit=IMPORT_RUN_LOOKBACK)["runsOrError"]
        if found["__typename"] != "Runs":
            raise WebserverError(f"The webserver at {self.url} could not list runs: {found.get('message', '')}")
        undone = None
        for run in found["results"]:  # newest first
            if _is_import(run):
                return _summary(run), undone
            if undone is None and run["jobName"] == UNDO_JOB and run["status"] == "SUCCESS":
                undone = _summary(run)
        return None, undone

    def run(self, run_id: str) -> RunSummary:
        found = self.query(RUN, runId=run_id)["runOrError"]
        if found["__typename"] != "Run":
            raise WebserverError(f"Run {run_id} not found on {self.url}: {found.get('message', '')}")
        summary = _summary(found)
        for event in found["eventConnection"]["events"]:
            if event["__typename"] == "ExecutionStepFailureEvent":
                text = (event.get("failureMetadata") or {}).get("description") or event["error"]["message"]
                summary.failures.append(f"{event['stepKey']}: {text.strip()}")
            elif event["__typename"] == "RunFailureEvent" and not summary.failures:
                summary.failures.append(event["message"])
        return summary

    def latest_report(self, tenant: str) -> str | None:
        found = self._markdown(REPORT_ASSET, tenant)
        return found[0] if found else None

    def latest_report_of_run(self, tenant: str) -> tuple[str, str, str] | None:
        """The tenant's latest import report: its text, the run that wrote it, and when."""
        return self._markdown(REPORT_ASSET, tenant)

    def latest_preview(self, tenant: str) -> str | None:
        found = self._markdown(PREVIEW_ASSET, tenant)
        return found[0] if found else None

    def launch(self, tenant: str, job: str, tags: dict[str, str] | None = None) -> str:
        try:
            return self.client.submit_job_execution(
                job,
                repository_location_name=self.location,
                repository_name=self.repository,
                tags={"dagster/partition": tenant, **(tags or {})},
            )
        except DagsterGraphQLClientError as error:
            raise WebserverError(
                f"The webserver at {self.url} refused to launch {job} for '{tenant}': {error}"
            ) from None

    def launch_backfill(self, tenants: list[str]) -> str:
        params = {
            "selector": {
                "partitionSetName": f"{IMPORT_JOB}_partition_set",
                "repositorySelector": {"repositoryName": self.repository, "repositoryLocationName": self.location},
            },
            "partitionNames": tenants,
            "fromFailure": False,
        }
        result = self.query(LAUNCH_BACKFILL, params=params)["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise WebserverError(f"The webserver refused the backfill: {result}")
        return result["backfillId"]

    def wait_for_backfill(
        self, backfill_id: str, expected: int, poll_seconds: float, timeout: float | None = None
    ) -> list[RunSummary]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            runs = self._runs({"tags": [{"key": "dagster/backfill", "value": backfill_id}]}, expected + 10)
            if len(runs) >= expected and all(run.status in ("SUCCESS", "FAILURE", "CANCELED") for run in runs):
                return sorted(runs, key=lambda run: run.tenant)
            if deadline is not None and time.monotonic() > deadline:
                states = ", ".join(f"{run.tenant}: {run.status.lower()}" for run in runs) or "no run yet"
                raise WebserverError(f"Backfill {backfill_id} has not finished after {timeout:.0f}s ({states}).")
            time.sleep(poll_seconds)

    def cancel_runs(self, tenant: str) -> list[str]:
        """Cancel the tenant's queued and running runs. Dagster cannot terminate a run that is still starting: it
        is asked again each second until it has started, for up to :data:`START_WAIT_SECONDS`; a run that ended
        meanwhile is left as it ended. Returns the ids of the runs cancelled."""
        runs = self._runs({"statuses": IN_PROGRESS, "tags": [{"key": "dagster/partition", "value": tenant}]}, 100)
        pending, cancelled = [run.run_id for run in runs], []
        deadline = time.monotonic() + START_WAIT_SECONDS
        while pending:
            for run_id in list(pending):
                try:
                    self.client.terminate_run(run_id)
                except DagsterGraphQLClientError:
                    continue
                pending.remove(run_id)
                cancelled.append(run_id)
            if pending:  # still starting, or ended since they were listed (then not ours to cancel)
                pending = [run.run_id for run in self._runs({"runIds": pending, "statuses": IN_PROGRESS}, 100)]
            if pending and time.monotonic() > deadline:
                raise WebserverError(
                    f"{tenant}: cancelled {len(cancelled)} run(s); Dagster would not cancel {', '.join(pending)} "
                    f"(still starting after {START_WAIT_SECONDS:.0f}s): run 'cliniko-import cancel {tenant}' again."
                )
            if pending:
                time.sleep(1)
        return cancelled

    def _runs(self, run_filter: dict, limit: int) -> list[RunSummary]:
        found = self.query(RUNS, filter=run_filter, limit=limit)["runsOrError"]
        if found["__typename"] != "Runs":
            raise WebserverError(f"The webserver at {self.url} could not list runs: {found.get('message', '')}")
        return [_summary(run) for run in found["results"]]

    def _markdown(self, asset: list[str], tenant: str) -> tuple[str, str, str] | None:
        """The latest materialization's markdown of ``asset`` for ``tenant``, its run id and its time."""
        found = self.query(LATEST_MATERIALIZATION, assetKey={"path": asset}, partitions=[tenant])["assetOrError"]
        if found["__typename"] != "Asset" or not found["assetMaterializations"]:
            return None
        latest = found["assetMaterializations"][0]
        entries = latest["metadataEntries"]
        texts = [entry["mdStr"] for entry in entries if entry["__typename"] == "MarkdownMetadataEntry"]
        if not texts:
            return None
        return "\n\n".join(texts), latest.get("runId") or "", _when(float(latest["timestamp"]) / 1000)

    def _repository(self) -> tuple[str, str]:
        found = self.query(REPOSITORIES)["repositoriesOrError"]
        if found["__typename"] != "RepositoryConnection":
            raise WebserverError(f"The webserver at {self.url} has no loaded code location: {found}")
        for node in found["nodes"]:
            if any(job["name"] == IMPORT_JOB for job in node["jobs"]):
                return node["name"], node["location"]["name"]
        raise WebserverError(f"The webserver at {self.url} does not serve the importer's code location.")


def _summary(run: dict) -> RunSummary:
    tags = {tag["key"]: tag["value"] for tag in run.get("tags") or []}
    moment = run.get("endTime") or run.get("startTime")
    when = _when(moment) if moment else ""
    return RunSummary(
        run_id=run["runId"],
        status=run["status"],
        tenant=tags.get("dagster/partition", ""),
        import_id=tags.get("splose/import_id", ""),
        when=when,
    )


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _is_import(run: dict) -> bool:
    loads = [key["path"] for key in run.get("assetSelection") or [] if key["path"][0] == REPORT_ASSET[0]]
    return run["jobName"] == IMPORT_JOB or any(path != PREVIEW_ASSET for path in loads)


def _unreachable(url: str) -> str:
    return (
        f"Cannot reach the Dagster webserver at {url}. Start it (make dev, or make dev-postgres), or point "
        "--url / DAGSTER_WEBSERVER_URL at the running one."
    )
