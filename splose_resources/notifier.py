"""Tells the clinic how its import ended: one email per outcome, with counts only, never record data.

Messages are written to an outbox folder (one RFC 5322 file each) that the mail relay of the
deployment sends; ``make demo`` and the tests read them there. A message's file name is derived from
the import and the outcome (``import-<id>-<outcome>.eml``) and written atomically, so the same outcome
is never told twice, whichever process tries again. The relay must keep sent messages (in the outbox or
its ``sent/`` folder): they are the record of what the clinic was told. Folder 0700, files 0600.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from cliniko_assets.partitions import validate_tenant
from splose_resources.staging import instance_home, private_dir, write_private

OUTCOME_PATTERN = re.compile(r"[a-z0-9-]{1,80}")


class NotifierResource(dg.ConfigurableResource):
    outbox: str | None = Field(
        default=None, description="Outbox folder; defaults to the 'outbox' folder of the instance's home."
    )
    sender: str = "imports@splose.com"
    _instance_home: Path | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._instance_home = instance_home(context)

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
        """Write the message unless this outcome of this import was told already; True when written now."""
        path = self.message_path(import_id, outcome)
        if path.exists() or (path.parent / "sent" / path.name).exists():
            return False
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = f"owner@{validate_tenant(tenant)}.workspace.splose.com"
        message["Subject"] = subject
        message["X-Splose-Import"] = f"{int(import_id)} {outcome}"
        message.set_content(body)
        write_private(path, bytes(message))
        return True
