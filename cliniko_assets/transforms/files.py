"""Cliniko patient attachments -> the form fields of a Splose file upload (``POST /imports/{id}/files``).

Mapping, Splose field <- Cliniko field: rule

    externalId         <- id
    clientExternalId   <- patient link (required; missing -> Skip("missing patient link"))
    filename           <- filename; missing -> "attachment-<id>"
    contentType        <- content_type; missing -> "application/octet-stream"
    description        <- description; an archived attachment is still imported and its description
                          says so: "<description> (archived in Cliniko)", or "Archived in Cliniko"
    createdAt          <- created_at (UTC "...Z")
    sha256             <- the staged bytes' digest (64 hex digits, lower case); Splose recomputes and compares

The staged size is checked against Cliniko's ``size`` when Cliniko gives one: a difference means the
bytes are not the file Cliniko holds -> Skip("staged size differs from size"). A deleted attachment ->
Skip("deleted in Cliniko").
"""

from __future__ import annotations

import re
from typing import Any

from cliniko_assets.transforms.common import (
    DELETED,
    Malformed,
    Record,
    Skipped,
    integer,
    is_archived,
    is_deleted,
    require_id,
    require_link,
    text,
    timestamp,
    total,
)

SIZE_DIFFERS = "staged size differs from size"


@total
def to_splose_file(attachment: Record, sha256: str, size: int) -> dict[str, Any]:
    external_id = require_id(attachment)
    if is_deleted(attachment):
        raise Skipped(DELETED)
    client = require_link(attachment, "patient")
    if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise Malformed("sha256")
    expected = integer(attachment, "size")
    if expected is not None and expected != size:
        raise Skipped(SIZE_DIFFERS)
    description = text(attachment, "description")
    if is_archived(attachment):
        description = f"{description} (archived in Cliniko)" if description else "Archived in Cliniko"
    return {
        "externalId": external_id,
        "clientExternalId": client,
        "filename": text(attachment, "filename") or f"attachment-{external_id}",
        "contentType": text(attachment, "content_type") or "application/octet-stream",
        "description": description,
        "createdAt": timestamp(attachment, "created_at"),
        "sha256": sha256.lower(),
    }
