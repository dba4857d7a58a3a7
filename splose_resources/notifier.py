"""Tells the clinic its import finished: a completion email with counts only, never record data.

Messages are written to an outbox folder (one RFC 5322 file each) that the mail relay of the
deployment sends; ``make demo`` and the tests read them there.
"""

from __future__ import annotations

import os
import time
from email.message import EmailMessage
from pathlib import Path

import dagster as dg
from pydantic import Field


class NotifierResource(dg.ConfigurableResource):
    outbox: str | None = Field(default=None, description="Outbox folder; defaults to $DAGSTER_HOME/outbox.")
    sender: str = "imports@splose.com"

    def outbox_dir(self) -> Path:
        folder = Path(self.outbox or Path(os.environ.get("DAGSTER_HOME", ".")) / "outbox")
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder

    def import_finished(self, *, tenant: str, import_id: int, succeeded: bool, summary: str) -> Path:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = f"owner@{tenant}.workspace.splose.com"
        status = "is complete" if succeeded else "needs attention"
        message["Subject"] = f"Your Cliniko import {status}"
        message.set_content(
            f"Your import {import_id} from Cliniko {status}.\n\n{summary}\n\n"
            "You can undo this import from Splose within 48 hours of completion."
        )
        path = self.outbox_dir() / f"import-{import_id}-{int(time.time() * 1000)}.eml"
        path.write_bytes(bytes(message))
        return path
