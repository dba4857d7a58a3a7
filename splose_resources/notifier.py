"""Tells the clinic how its import ended: one email per outcome, with counts only, never record data.

Two ways to deliver, one rule: a message is keyed by the import and the outcome
(``import-<id>-<outcome>``) and told at most once, whichever process or node tries again.

- **SMTP** (``smtp_host``; the code location reads ``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_USERNAME``,
  ``SMTP_PASSWORD``; with a username, STARTTLS before logging in): the message goes to the deployment's
  mail server. Nothing stays on the machine that sent it but a private copy in ``sent/``.
- **Outbox** (the embedded default): one RFC 5322 file per message in a 0700 folder, written atomically
  (0600), that a mail relay sends; it must keep what it sent (in the outbox or its ``sent/`` folder).

What was told is recorded where every node sees it when the shared state is configured
(``SHARED_STATE_POSTGRES_URL``: a row per message in ``import_emails``, claimed before sending, so two
nodes never send the same outcome twice); else by the files of the outbox and its ``sent/`` folder.
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from cliniko_assets.partitions import validate_tenant
from splose_resources.deployment import check_run, setting
from splose_resources.shared_limits import SharedStore, shared_state_field
from splose_resources.staging import instance_home
from splose_resources.storage import private_dir, write_private

OUTCOME_PATTERN = re.compile(r"[a-z0-9-]{1,80}")
SMTP_TIMEOUT_SECONDS = 30

EMAILS_SCHEMA = """
CREATE TABLE IF NOT EXISTS import_emails (
    import_id bigint NOT NULL,
    outcome text NOT NULL,
    tenant text NOT NULL,
    state text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    PRIMARY KEY (import_id, outcome)
);
"""
# A claim older than this whose sender never said "sent" (its process died mid-send) may be taken over.
STALE_CLAIM_MINUTES = 10


class NotifierError(RuntimeError):
    """The email could not be sent; the message names the import and the server, never a credential."""


class NotifierResource(dg.ConfigurableResource):
    outbox: str | None = Field(
        default=None, description="Outbox folder; defaults to the 'outbox' folder of the instance's home."
    )
    sender: str = "imports@splose.com"
    smtp_host: str | None = Field(default=None, description="Mail server; unset: messages go to the outbox.")
    smtp_port: int | None = Field(default=None, description="The mail server's port: SMTP_PORT, else 25.")
    smtp_username: str | None = Field(default=None, description="Set: STARTTLS, then login (never in clear).")
    smtp_password: str | None = Field(default=None, repr=False, json_schema_extra={"dagster__is_secret": True})
    shared_state_postgres_url: str | None = shared_state_field()
    _instance_home: Path | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        check_run(context)
        self._instance_home = instance_home(context)

    def _setting(self, name: str) -> str | None:
        """A deployment setting of the mail server or the shared state (see :mod:`splose_resources.deployment`)."""
        value = setting("notifier", self, name)
        return None if value is None else str(value)

    def outbox_dir(self) -> Path:
        if self.outbox:
            return private_dir(Path(self.outbox))
        if self._instance_home is None:
            raise RuntimeError("The notifier has no outbox: set its outbox, or use it inside a Dagster instance.")
        return private_dir(self._instance_home / "outbox")

    def message_path(self, import_id: int, outcome: str) -> Path:
        if not OUTCOME_PATTERN.fullmatch(outcome):
            raise ValueError(f"outcome {outcome!r} is not a file-name-safe key")
        return self.outbox_dir() / f"import-{int(import_id)}-{outcome}.eml"

    def send_once(self, *, tenant: str, import_id: int, outcome: str, subject: str, body: str) -> bool:
        """Send the message unless this outcome of this import was told already; True when sent now."""
        path = self.message_path(import_id, outcome)
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = f"owner@{validate_tenant(tenant)}.workspace.splose.com"
        message["Subject"] = subject
        message["Message-ID"] = f"<{path.stem}@{self.sender.rpartition('@')[2]}>"
        message["X-Splose-Import"] = f"{int(import_id)} {outcome}"
        message.set_content(body)
        with self._claim(tenant, int(import_id), outcome, path) as claimed:
            if claimed:
                self._deliver(message, path, int(import_id))
        return claimed

    @contextmanager
    def _claim(self, tenant: str, import_id: int, outcome: str, path: Path) -> Iterator[bool]:
        """True when this process is to send the message; a failed send gives the claim back."""
        shared_url = self._setting("shared_state_postgres_url")
        if not shared_url:
            yield not (path.exists() or (path.parent / "sent" / path.name).exists())
            return
        store = SharedStore.for_url(shared_url)
        store.ensure_schema("import_emails", EMAILS_SCHEMA)
        with store.transaction() as cursor:
            cursor.execute(
                "INSERT INTO import_emails (import_id, outcome, tenant, state) VALUES (%s, %s, %s, 'sending') "
                "ON CONFLICT (import_id, outcome) DO UPDATE SET claimed_at = now() "
                "WHERE import_emails.state = 'sending' "
                "AND import_emails.claimed_at < now() - make_interval(mins => %s) "
                "RETURNING 1",
                (import_id, outcome, tenant, STALE_CLAIM_MINUTES),
            )
            claimed = cursor.fetchone() is not None
        try:
            yield claimed
        except BaseException:
            with store.transaction() as cursor:
                cursor.execute(
                    "DELETE FROM import_emails WHERE import_id = %s AND outcome = %s AND state = 'sending'",
                    (import_id, outcome),
                )
            raise
        if claimed:
            with store.transaction() as cursor:
                cursor.execute(
                    "UPDATE import_emails SET state = 'sent', sent_at = now() WHERE import_id = %s AND outcome = %s",
                    (import_id, outcome),
                )

    def _deliver(self, message: EmailMessage, path: Path, import_id: int) -> None:
        host, username = self._setting("smtp_host"), self._setting("smtp_username")
        port = int(self._setting("smtp_port") or 25)
        if not host:
            write_private(path, bytes(message))
            return
        try:
            with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
                if username:
                    smtp.starttls()
                    smtp.login(username, self._setting("smtp_password") or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            raise NotifierError(
                f"Could not email the clinic about import {import_id} through the mail server "
                f"{host}:{port} ({type(error).__name__}); check SMTP_HOST, SMTP_PORT and "
                "the server's credentials. Nothing was recorded as sent: the next attempt sends it."
            ) from None
        write_private(private_dir(path.parent / "sent") / path.name, bytes(message))
