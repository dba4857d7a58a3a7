"""The completion email through a real SMTP server (aiosmtpd on loopback): one email per outcome, across nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller

from sandbox import postgres
from sandbox.dagster_server import free_port
from splose_resources.notifier import NotifierError, NotifierResource
from tests.conftest import PROJECT
from tests.test_shared_limits import shared_state_url  # noqa: F401 (fixture)


class Sink:
    """An SMTP server that keeps what it is sent."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_sink():
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield sink, controller.port
    finally:
        controller.stop()


def notifier(port: int, tmp_path, name: str = "node", **settings) -> NotifierResource:
    return NotifierResource(outbox=str(tmp_path / name / "outbox"), smtp_host="127.0.0.1", smtp_port=port, **settings)


def send(resource: NotifierResource, outcome: str = "complete") -> bool:
    return resource.send_once(
        tenant="clinic-42", import_id=7, outcome=outcome, subject="Your Cliniko import is complete", body="1 row"
    )


def test_an_outcome_is_emailed_once_through_the_mail_server(smtp_sink, tmp_path):
    sink, port = smtp_sink
    resource = notifier(port, tmp_path)

    assert send(resource) is True
    assert send(resource) is False  # a re-run, a re-evaluated tick
    assert send(resource, "failed-abc") is True

    assert len(sink.messages) == 2
    recipients, content = sink.messages[0]
    assert recipients == ["owner@clinic-42.workspace.splose.com"]
    email = message_from_bytes(content)
    assert email["Subject"] == "Your Cliniko import is complete"
    assert email["Message-ID"] == "<import-7-complete@splose.com>"
    assert email.get_payload().strip() == "1 row"
    # Nothing is left for a relay: the sent copy is private.
    outbox = tmp_path / "node" / "outbox"
    assert not list(outbox.glob("*.eml"))
    assert sorted(p.name for p in (outbox / "sent").iterdir()) == ["import-7-complete.eml", "import-7-failed-abc.eml"]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in (outbox / "sent").iterdir())


@pytest.mark.postgres
def test_a_mail_server_that_is_down_fails_clearly_and_the_next_attempt_sends(smtp_sink, tmp_path, shared_state_url):
    sink, port = smtp_sink
    down = notifier(free_port(), tmp_path, smtp_password="hunter2-secret", shared_state_postgres_url=shared_state_url)

    with pytest.raises(NotifierError) as failure:
        send(down)
    assert "import 7" in str(failure.value) and "SMTP_HOST" in str(failure.value)
    assert "hunter2" not in str(failure.value) and "hunter2" not in repr(down)

    assert send(notifier(port, tmp_path, shared_state_postgres_url=shared_state_url)) is True
    assert len(sink.messages) == 1


NODE = """
import json, sys, time
from splose_resources.notifier import NotifierResource
port, outbox, url, start = json.loads(sys.argv[1])
resource = NotifierResource(outbox=outbox, smtp_host="127.0.0.1", smtp_port=port, shared_state_postgres_url=url)
time.sleep(max(0.0, start - time.time()))
sent = [resource.send_once(tenant="clinic-42", import_id=7, outcome=o, subject="s", body="b")
        for o in ("complete", "failed-run-1", "failed-run-2")]
print(json.dumps(sent))
"""


@pytest.mark.postgres
def test_two_nodes_never_send_the_same_outcome_twice(smtp_sink, tmp_path, shared_state_url):
    """Two processes with nothing on disk in common, one Postgres: each outcome is emailed exactly once."""
    import time

    sink, port = smtp_sink
    start = time.time() + 8
    nodes = []
    for n in range(2):
        job = [port, str(tmp_path / f"node-{n}" / "outbox"), shared_state_url, start]
        env = {**os.environ, "PYTHONPATH": str(PROJECT), "TMPDIR": str(tmp_path)}
        nodes.append(
            subprocess.Popen([sys.executable, "-c", NODE, json.dumps(job)], env=env, stdout=subprocess.PIPE, text=True)
        )
    results = [json.loads(node.communicate(timeout=120)[0]) for node in nodes]

    assert [a or b for a, b in zip(*results, strict=True)] == [True, True, True]
    assert not any(a and b for a, b in zip(*results, strict=True))
    told = sorted(message_from_bytes(content)["X-Splose-Import"] for _, content in sink.messages)
    assert told == ["7 complete", "7 failed-run-1", "7 failed-run-2"]
    with postgres.connect(shared_state_url.rsplit("/", 1)[1]) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT outcome, tenant, state FROM import_emails ORDER BY outcome")
        assert cursor.fetchall() == [
            ("complete", "clinic-42", "sent"),
            ("failed-run-1", "clinic-42", "sent"),
            ("failed-run-2", "clinic-42", "sent"),
        ]
