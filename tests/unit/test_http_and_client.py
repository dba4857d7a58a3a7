import http.server
import json
import logging
import threading

import pytest
import requests

from splose_resources.cliniko import shard_from_key
from splose_resources.http import (
    RetriesExhausted,
    RetryPolicy,
    Secret,
    TransientError,
    json_body,
    rate_limit_wait,
    send,
    session,
)


@pytest.mark.parametrize(
    ("key", "shard"),
    [
        ("MS0xMjM0NTY3ODkwYWJjZGVm-au2", "au2"),
        ("abc-def-uk1", "uk1"),
        ("MS0xMjM0NTY3ODkwYWJjZGVm", "au1"),
        ("with-dash-but-no-shard", "au1"),
        ("key-us12", "us12"),
        ("key-AU2", "au2"),  # the docs match the shard case-insensitively
        ("key-A2", "au1"),
    ],
)
def test_shard_is_the_suffix_after_the_last_dash(key, shard):
    assert shard_from_key(key) == shard


def test_secret_never_shows_itself():
    secret = Secret("MS0xMjM0-au1")
    assert "MS0x" not in repr(secret)
    assert "MS0x" not in f"{secret}"
    assert secret.reveal() == "MS0xMjM0-au1"


def _response(status: int, headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    return response


def test_rate_limit_wait_prefers_reset_then_retry_after():
    assert 9.0 < rate_limit_wait(_response(429, {"X-RateLimit-Reset": "1010"}), now=1000.0) < 10.5
    assert rate_limit_wait(_response(429, {"Retry-After": "7"}), now=1000.0) == 7.0
    assert rate_limit_wait(_response(429, {}), now=1000.0) is None


def test_retry_policy_retries_transient_failures_then_gives_up():
    slept: list[float] = []
    calls = iter([TransientError("502"), TransientError("429", wait=3.0), "ok"])

    def attempt():
        outcome = next(calls)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert RetryPolicy().run(attempt, what="a test request", sleep=slept.append) == "ok"
    assert slept[1] == 3.0

    def always_fails():
        raise TransientError("503")

    with pytest.raises(RetriesExhausted, match="3 attempts"):
        RetryPolicy(max_attempts=3).run(always_fails, what="a test request", sleep=slept.append)


def _scripted(*outcomes):
    remaining = iter(outcomes)

    def attempt():
        outcome = next(remaining)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return attempt


def test_every_retry_is_logged_with_what_the_attempt_the_failure_and_the_wait(caplog):
    caplog.set_level(logging.INFO)
    slept: list[float] = []
    attempt = _scripted(TransientError("503"), TransientError("429", wait=3.0), TransientError("timeout"), "ok")

    what = "the Cliniko patients request of tenant 'clinic-1'"
    assert RetryPolicy().run(attempt, what=what, sleep=slept.append) == "ok"

    lines = [r.getMessage() for r in caplog.records if r.name.endswith(".retry")]
    assert len(lines) == len(slept) == 3
    assert lines[0].startswith(f"Retrying {what}: attempt 1 failed (HTTP 503); waiting ")
    assert lines[1] == f"Retrying {what}: attempt 2 failed (HTTP 429 rate limited); waiting 3.0 s before attempt 3"
    assert lines[2].startswith(f"Retrying {what}: attempt 3 failed (timeout); waiting ")


def test_429s_have_their_own_bound_and_waits_are_capped(caplog):
    slept: list[float] = []
    policy = RetryPolicy(max_attempts=2, max_rate_limited=4, max_wait=10)
    # Four 429s (one asking for an hour) and one 502 fit; they do not use up each other's bound.
    attempt = _scripted(*(TransientError("429", wait=w) for w in (1, 3600, None, 2)), TransientError("502"), "ok")
    assert policy.run(attempt, what="a request", sleep=slept.append) == "ok"
    assert slept[:2] == [1, 10] and slept[3] == 2

    with pytest.raises(RetriesExhausted, match="5 attempts; last failure: 429"):
        policy.run(_scripted(*[TransientError("429", wait=0)] * 6), what="a request", sleep=slept.append)


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers["Content-Type"], json.loads(body)))
        answer = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        return None


def test_json_bodies_reach_the_server_as_json_lone_surrogates_included():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/records"
        records = [{"externalId": "1", "notes": "café ✓", "n": 2}, {"externalId": "2", "notes": "bad \ud800 text"}]
        for sent in (records[:1], records):
            assert json_body(send(session(2), "PUT", url, json={"records": sent}, timeout=5)) == {}
        assert server.received == [("application/json", {"records": sent}) for sent in (records[:1], records)]
    finally:
        server.shutdown()
        server.server_close()
