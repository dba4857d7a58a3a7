"""Fixtures for the Cliniko sandbox's own tests: real servers on loopback, a tiny clinic, a small client."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sandbox.harness import ServerProcess, running_server

USER_AGENT = "Sandbox tests (sandbox-tests@example.com)"
_names = itertools.count(1)


class ClinikoClient:
    """Just enough HTTP to poke the sandbox the way a Cliniko client would."""

    def __init__(self, server: ServerProcess, account: str = "main") -> None:
        self.url = server.url
        self.server = server
        self.account = account
        self.session = requests.Session()
        self.session.trust_env = False
        self.keys = self.admin_get(f"accounts/{account}")["keys"]

    def get(
        self,
        path: str,
        params: list[tuple[str, str]] | dict | None = None,
        role: str = "admin",
        key: str | None = None,
        headers: dict | None = None,
        **kwargs,
    ) -> requests.Response:
        url = path if path.startswith("http") else f"{self.url}{path}"
        auth = (key if key is not None else self.keys[role], "")
        sent = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        return self.session.get(url, params=params, auth=auth, headers=sent, timeout=30, **kwargs)

    def items(self, path: str, params: list[tuple[str, str]] | None = None) -> list[dict]:
        """Every record of a collection, following links.next."""
        response = self.get(path, [*(params or []), ("per_page", "100")])
        found = []
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            found.extend(next(v for v in body.values() if isinstance(v, list)))
            if "next" not in body["links"]:
                return found
            response = self.get(body["links"]["next"])

    def total(self, path: str, params: list[tuple[str, str]] | None = None) -> int:
        response = self.get(path, [*(params or []), ("per_page", "1")])
        assert response.status_code == 200, response.text
        return count_of(response.json())

    def quirks(self) -> dict[str, list[str]]:
        """Which routes of this account show each envelope quirk (see sandbox/cliniko/envelopes.py)."""
        return self.admin_get(f"accounts/{self.account}")["envelope_quirks"]

    def admin_get(self, path: str, **kwargs) -> dict:
        response = self.session.get(f"{self.url}/_sandbox/{path}", timeout=60, **kwargs)
        response.raise_for_status()
        return response.json()

    def admin_post(self, path: str, body: dict) -> dict:
        response = self.session.post(f"{self.url}/_sandbox/{path}", json=body, timeout=120)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def truth(self) -> dict[str, dict[str, int]]:
        return self.admin_get(f"accounts/{self.account}/truth")

    def export(self, resource: str) -> list[dict]:
        response = self.session.get(f"{self.url}/_sandbox/accounts/{self.account}/export/{resource}", timeout=60)
        response.raise_for_status()
        assert response.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in response.text.splitlines() if line]

    def for_account(self, account: str) -> ClinikoClient:
        return ClinikoClient(self.server, account)


def count_of(body: dict) -> int:
    """A list envelope's count, in whichever of Cliniko's documented shapes the route serves it."""
    return int(body["total_entries"] if "total_entries" in body else body["total_entires"])


def start(tmp_path: Path, *args: str) -> Iterator[ServerProcess]:
    with running_server(
        "sandbox.cliniko",
        [
            "--account",
            "main:3:tiny",
            "--latency-ms",
            "0",
            "--jitter-ms",
            "0",
            "--cache-dir",
            str(tmp_path / "cache"),
            *args,
        ],
        log_dir=tmp_path,
        startup_timeout=120,
    ) as server:
        yield server


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """The shared read-mostly server: no rate-limit pressure, no faults."""
    yield from start(tmp_path_factory.mktemp("cliniko-sandbox"), "--rate-limit", "100000")


@pytest.fixture(scope="session")
def api(sandbox_server) -> ClinikoClient:
    return ClinikoClient(sandbox_server)


@pytest.fixture
def fresh_account(api) -> ClinikoClient:
    """A new tiny clinic on the shared server, for tests that change data."""
    return new_account(api)


def new_account(api: ClinikoClient, **options) -> ClinikoClient:
    name = f"mut{next(_names)}"
    api.admin_post("accounts", {"name": name, "seed": 40 + next(_names), "scale": "tiny", "shard": "au1", **options})
    return api.for_account(name)


@pytest.fixture
def own_server(tmp_path, request) -> Iterator[ClinikoClient]:
    """A server of the test's own, started with ``@pytest.mark.parametrize("own_server", [[args]], indirect=True)``."""
    for server in start(tmp_path, *request.param):
        yield ClinikoClient(server)
