"""The per-key budget: a fixed window per API key, 429 with X-RateLimit-Reset, and the stats that prove it."""

from __future__ import annotations

import math
import time

import pytest


def wait_for_window_start(window: float) -> float:
    """Sleep to just after a window boundary, so a burst lands in one window; returns that window's start."""
    now = time.time()
    start = math.floor(now / window) * window + window
    time.sleep(start - now + 0.05)
    return start


@pytest.mark.parametrize("own_server", [["--rate-limit", "10", "--rate-window", "2", "--retry-after"]], indirect=True)
def test_eleventh_request_in_a_window_is_429_and_counted(own_server):
    api = own_server
    start = wait_for_window_start(2)
    statuses = [api.get("/v1/businesses").status_code for _ in range(10)]
    limited = api.get("/v1/businesses")
    assert statuses == [200] * 10
    assert limited.status_code == 429
    assert int(limited.headers["X-RateLimit-Reset"]) == int(start + 2)
    assert 1 <= int(limited.headers["Retry-After"]) <= 2
    assert api.get("/v1/businesses", role="receptionist").status_code == 200  # the budget is per key

    time.sleep(max(0.0, start + 2.05 - time.time()))
    assert api.get("/v1/businesses").status_code == 200  # a new window, a new budget

    stats = api.admin_get("stats")
    assert (stats["window_seconds"], stats["limit"]) == (2, 10)
    admin = stats["keys"]["main/admin"]
    assert admin["total"] == 12
    assert admin["rate_limited"] == 1
    assert admin["windows"][str(int(start))] == 11
    assert sum(admin["minutes"].values()) == 12
    assert admin["paths"] == {"/v1/businesses": 12}
    assert stats["keys"]["main/receptionist"]["total"] == 1
    assert not any(api.keys[role] in str(stats) for role in ("admin", "receptionist"))


def test_stats_count_paths_by_route_and_reset(api):
    api.admin_post("stats/reset", {})
    appointment = api.get("/v1/individual_appointments", {"per_page": 1}).json()["individual_appointments"][0]
    api.get(f"/v1/individual_appointments/{appointment['id']}")
    api.get("/v1/individual_appointments/cancelled", {"q[]": "updated_at:>2020-01-01T00:00:00Z"})
    api.get("/v1/patients", role="revoked")  # not a recognised key: not counted
    paths = api.admin_get("stats")["keys"]["main/admin"]["paths"]
    assert paths == {
        "/v1/individual_appointments": 1,
        "/v1/individual_appointments/:id": 1,
        "/v1/individual_appointments/cancelled": 1,
    }
    api.admin_post("stats/reset", {})
    assert api.admin_get("stats")["keys"] == {}
