"""Fixtures for the Splose sandbox suite: real servers on loopback, one workspace per test.

Every server started here records its v1 responses (``--record-v1``) into one session directory,
so ``test_zz_openapi_contract.py`` can validate every v1 response the suite received.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.harness import ServerProcess, running_server

PLATFORM_TOKEN = "test-platform-token-0123456789"
CLINIKO_KEY = "MS0xMjM0NTY3ODkwMTIzNDU2Nzg5MGFiY2RlZg-au2"
_servers = itertools.count(1)
_workspaces = itertools.count(1)


@dataclass
class Splose:
    """One running sandbox and ways to call it."""

    server: ServerProcess
    db: Path

    @property
    def url(self) -> str:
        return self.server.url

    def as_key(self, key: str) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        return session

    def as_platform(self, workspace_id: str | None = None) -> requests.Session:
        session = self.as_key(PLATFORM_TOKEN)
        if workspace_id:
            session.headers["X-Splose-Workspace"] = workspace_id
        return session

    def seed(self, **overrides: Any) -> Workspace:
        document = {**seed_document(f"clinic-{next(_workspaces)}"), **overrides}
        response = requests.post(f"{self.url}/_sandbox/workspaces", json=document, timeout=10)
        assert response.status_code == 201, response.text
        return Workspace(self, response.json())


@dataclass
class Workspace:
    splose: Splose
    described: dict[str, Any]

    @property
    def id(self) -> str:
        return self.described["id"]

    @property
    def v1(self) -> requests.Session:
        return self.splose.as_key(self.described["key"])

    @property
    def platform(self) -> requests.Session:
        return self.splose.as_platform(self.id)

    def location(self, title: str) -> int:
        return self.described["locations"][title]

    def practitioner(self, email: str) -> int:
        return self.described["practitioners"][email]

    def service(self, name: str) -> int:
        return self.described["services"][name]

    def start_import(self, **body: Any) -> dict[str, Any]:
        request = {"source": "cliniko", "clinikoApiKey": CLINIKO_KEY, "mapping": {}, "include": ["patients"], **body}
        response = self.platform.post(f"{self.splose.url}/v1/imports", json=request, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()

    def patch(self, import_id: int, **body: Any) -> requests.Response:
        return self.platform.patch(f"{self.splose.url}/v1/imports/{import_id}", json=body, timeout=10)

    def delete(self, import_id: int) -> requests.Response:
        return self.platform.delete(f"{self.splose.url}/v1/imports/{import_id}", timeout=30)

    def finish(self, import_id: int, status: str = "complete") -> dict[str, Any]:
        """Run the import to ``status`` as the pipeline does (running, then complete or failed)."""
        for step in ("running", status):
            response = self.patch(import_id, status=step)
            assert response.status_code == 200, response.text
        return response.json()

    def put(self, import_id: int, entity: str, records: list[dict[str, Any]]) -> requests.Response:
        return self.platform.put(
            f"{self.splose.url}/v1/imports/{import_id}/records/{entity}", json={"records": records}, timeout=30
        )

    def upsert(self, import_id: int, entity: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        response = self.put(import_id, entity, records)
        assert response.status_code == 200, response.text
        return response.json()

    def dump(self, table: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.splose.url}/_sandbox/workspaces/{self.id}/dump/{table}", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["data"]


def seed_document(workspace_id: str) -> dict[str, Any]:
    return {
        "id": workspace_id,
        "name": f"Clinic {workspace_id}",
        "locations": [
            {"title": "Main Street", "timezone": "Australia/Sydney", "address": "1 Main St", "state": "NSW"},
            {"title": "Old Rooms", "timezone": "Australia/Sydney", "archived": True},
        ],
        "practitioners": [
            {
                "firstname": "Ann",
                "lastname": "Lee",
                "email": "ann@example.com",
                "profession": "Physiotherapist",
                "providerNumbers": [{"type": "Medicare", "number": "2423451T", "location": "Main Street"}],
            },
            {"firstname": "Bob", "lastname": "Ray", "email": "bob@example.com", "isActive": False},
        ],
        "services": [
            {"name": "Initial consult", "duration": 60},
            {"name": "Pilates class", "duration": 45, "maxPatients": 8, "type": "Group"},
            {"name": "Retired service", "duration": 30, "archived": True},
        ],
    }


@pytest.fixture(scope="session")
def record_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("splose-v1-records")


@pytest.fixture(scope="session")
def start_splose(record_dir, tmp_path_factory):
    """Start a sandbox with extra options; every one records its v1 responses into ``record_dir``."""

    @contextlib.contextmanager
    def start(*args: str, db: Path | None = None) -> Iterator[Splose]:
        number = next(_servers)
        db = db or tmp_path_factory.mktemp("splose-db") / "splose.db"
        options = [
            "--db",
            str(db),
            "--platform-token",
            PLATFORM_TOKEN,
            "--record-v1",
            str(record_dir / f"server-{number}.ndjson"),
            *args,
        ]
        with running_server("sandbox.splose", options, startup_timeout=30) as server:
            yield Splose(server, db)

    return start


@pytest.fixture(scope="session")
def splose(start_splose) -> Iterator[Splose]:
    """The suite's main sandbox: generous limits, so only the rate-limit tests meet a 429."""
    with start_splose("--v1-rate-limit", "100000", "--import-rate-limit", "100000") as server:
        yield server


@pytest.fixture
def workspace(splose) -> Workspace:
    return splose.seed()
