"""Injected faults: each kind is observable by a client, counted in the stats, and only hits /v1."""

from __future__ import annotations

import json
import time

import pytest
import requests

NO_FAULTS = {
    "error_rate": 0,
    "storm_429": None,
    "drop_rate": 0,
    "slow_rate": 0,
    "truncate_rate": 0,
    "wrong_total_rate": 0,
}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    from tests.sandbox.conftest import ClinikoClient, start

    for server in start(tmp_path_factory.mktemp("faults"), "--rate-limit", "100000"):
        yield ClinikoClient(server)


@pytest.fixture
def faults(faulty):
    """Set some faults for one test; every fault is switched off again afterwards."""

    def configure(**faults) -> dict:
        return faulty.admin_post("config", {"faults": {**NO_FAULTS, **faults}, "fault_seed": 11})

    faulty.admin_post("stats/reset", {})
    yield configure
    configure()


def injected(api) -> dict:
    return api.admin_get("stats")["keys"]["main/admin"]["injected"]


def test_error_rate_answers_5xx(faulty, faults):
    faults(error_rate=1.0)
    statuses = {faulty.get("/v1/patients").status_code for _ in range(20)}
    assert statuses <= {500, 502, 503, 504} and len(statuses) > 1
    assert injected(faulty)["5xx"] == 20


def test_storm_429_every_n_requests(faulty, faults):
    faults(storm_429={"every": 5, "length": 2, "reset_seconds": 3})
    responses = [faulty.get("/v1/businesses") for _ in range(10)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429] * 2
    reset = int(responses[3].headers["X-RateLimit-Reset"])
    assert time.time() < reset <= time.time() + 4
    stats = faulty.admin_get("stats")["keys"]["main/admin"]
    assert (stats["injected"]["429"], stats["rate_limited"]) == (4, 0)


def test_drop_closes_the_connection_without_an_answer(faulty, faults):
    faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        faulty.get("/v1/patients")
    assert injected(faulty)["drop"] == 1


def test_slow_responses_outlast_the_client_timeout(faulty, faults):
    faulty.admin_post("config", {"faults": {**NO_FAULTS, "slow_rate": 1.0, "slow_seconds": 1.5}})
    with pytest.raises(requests.exceptions.ReadTimeout):
        faulty.session.get(
            f"{faulty.url}/v1/businesses",
            auth=(faulty.keys["admin"], ""),
            headers={"User-Agent": "t (t@example.com)"},
            timeout=0.5,
        )
    assert injected(faulty)["slow"] == 1


def test_truncated_json(faulty, faults):
    faults(truncate_rate=1.0)
    response = faulty.get("/v1/patients")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)
    assert injected(faulty)["truncated"] == 1


def test_faults_spare_admin_routes_and_are_reported(faulty, faults):
    config = faults(error_rate=1.0, drop_rate=1.0)
    assert config["faults"]["error_rate"] == 1.0 and config["fault_seed"] == 11
    assert faulty.admin_get("accounts/main")["name"] == "main"
    assert faulty.admin_get("config")["faults"]["drop_rate"] == 1.0


def test_same_seed_same_faults(faulty, faults):
    def run() -> list[int]:
        faults(error_rate=0.5)
        return [faulty.get("/v1/businesses").status_code for _ in range(12)]

    first = run()
    assert first == run()
    assert 200 in first and any(s >= 500 for s in first)


def test_wrong_total_rate_replaces_a_list_count_with_an_id_sized_string(faulty, faults):
    faults(wrong_total_rate=1.0)
    body = faulty.get("/v1/patients", {"per_page": "1"}).json()
    count = body.get("total_entries", body.get("total_entires"))
    assert isinstance(count, str) and len(count) == 18 and len(body["patients"]) == 1
    assert injected(faulty)["wrong_total"] >= 1
