"""A backfill of two tenants launched from the CLI against a real webserver and daemon, nothing typed.

``cliniko-import backfill`` asks the webserver (GraphQL ``launchPartitionBackfill`` of
``import_job_partition_set``, as the UI's backfill dialog does) for one run per tenant, with no run
config: the daemon launches them and each run finds its tenant's import in Splose.
"""

from __future__ import annotations

import dagster as dg
import pytest
import requests

from cliniko_assets import cli
from cliniko_assets.cli_graphql import Dagster
from sandbox.dagster_server import dagster_server, stop_sensor
from tests.test_import import TOKEN, Import, splose_sandbox  # noqa: F401 (fixtures)
from tests.test_trust import other_clinic

pytestmark = pytest.mark.slow

RESOURCE = """
query Resource($selector: ResourceSelector!) {
  topLevelResourceDetailsOrError(resourceSelector: $selector) {
    __typename ... on ResourceDetails { configFields { name isSecret } configuredValues { key value type } }
  }
}"""


def graphql(url: str, query: str, **variables) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def repository(url: str) -> dict[str, str]:
    dagster = Dagster.connect(url)
    return {"repositoryName": dagster.repository, "repositoryLocationName": dagster.location}


def test_a_cli_backfill_of_two_tenants_imports_each_completely_with_nothing_typed(
    clinic, splose_sandbox, tmp_path, monkeypatch, capsys
):
    first = Import(clinic, splose_sandbox.url, tmp_path, monkeypatch)
    second = Import(other_clinic(clinic, monkeypatch), splose_sandbox.url, tmp_path, monkeypatch)
    imports = {imp.clinic.tenant: imp for imp in (first, second)}
    home = tmp_path / "dagster-home"
    with dagster_server(home, daemon=True) as server:
        stop_sensor(server.url, "import_requests")  # only the backfill launches runs
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions("tenants", sorted(imports))
        submitted = {tenant: imp.submit()["id"] for tenant, imp in imports.items()}

        code = cli.main(["--url", server.url, "--poll-seconds", "2", "backfill", *sorted(imports)])

        out = capsys.readouterr().out
        assert code == 0, out
        for tenant, import_id in submitted.items():
            assert f"{tenant}: import {import_id}, run " in out and " success " in out
        token_shown = graphql(server.url, RESOURCE, selector={**repository(server.url), "resourceName": "splose"})
    for tenant, imp in imports.items():
        assert imp.status(submitted[tenant])["status"] == "complete"
        truth = imp.clinic.truth()
        live = sum(n for state, n in truth["patients"].items() if state != "deleted")
        assert len(imp.dump("clients")) == live
    # The UI's resource page names the token's variable; the token itself is nowhere in it.
    details = token_shown["topLevelResourceDetailsOrError"]
    assert {f["name"]: f["isSecret"] for f in details["configFields"]}["platform_token"] is True
    values = {v["key"]: v for v in details["configuredValues"]}
    assert (values["platform_token"]["type"], values["platform_token"]["value"]) == ("ENV_VAR", "SPLOSE_PLATFORM_TOKEN")
    assert TOKEN not in str(token_shown)
