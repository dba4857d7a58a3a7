"""A failed step reads as the pipeline's own message: every error we know of becomes a ``dg.Failure``.

Dagster shows a step failure's description first on the run's page; any other exception shows as
"Error occurred while executing op" over its stack trace. The errors of the clients and of staging
already say what happened and what to do (tenant, resource, fix, never a secret): :func:`step_failures`
raises each as a ``dg.Failure`` whose description is that message, with metadata to act on (tenant,
import id, the asset or row, the error's kind, what to do). A ``dg.Failure`` of the pipeline's own gets
the same metadata added. Anything else is a bug and keeps its stack trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg

from cliniko_assets.paging import PagingAnomaly
from cliniko_assets.partitions import InvalidTenant
from splose_resources.cliniko import ClinikoAuthError, ClinikoError
from splose_resources.splose import SploseAuthError, SploseConflict, SploseError, SploseNotFound, SploseUnavailable
from splose_resources.staging import StagingBusy, StagingUnavailable

# First match wins: subclasses before their bases.
REMEDIES: tuple[tuple[type[Exception], str], ...] = (
    (SploseAuthError, "set SPLOSE_PLATFORM_TOKEN to the import-scoped platform token, then re-run"),
    (SploseUnavailable, "re-run once Splose answers again: writes are idempotent"),
    (SploseNotFound, "check the import id and that it belongs to the tenant's workspace"),
    (SploseConflict, "read Splose's message: the import's state does not allow this"),
    (SploseError, "fix what Splose's message names, then re-run"),
    (ClinikoAuthError, "ask the clinic for a new Cliniko API key (Administrator role) and resubmit the import"),
    (PagingAnomaly, "re-run the extraction; if it recurs, ask Cliniko support about sorting by id"),
    (ClinikoError, "re-run: the extraction resumes where it stopped"),
    (StagingBusy, "wait for the tenant's other extraction to finish, then re-run"),
    (StagingUnavailable, "set STAGING_URI (a private local folder, or s3://bucket/prefix with the AWS_* variables)"),
    (InvalidTenant, "run the partition of the clinic's Splose workspace id (a lowercase slug)"),
)
KNOWN = tuple(kind for kind, _ in REMEDIES)


@dataclass
class Where:
    """What a step works on, for its failure's metadata; the import id is filled in once known."""

    tenant: str
    subject: str
    import_id: int | None = None

    def metadata(self) -> dict[str, str | int]:
        found: dict[str, str | int] = {"tenant": self.tenant, "step_subject": self.subject}
        if self.import_id is not None:
            found["import_id"] = self.import_id
        return found


def remedy(error: Exception) -> str:
    return next(text for kind, text in REMEDIES if isinstance(error, kind))


@contextmanager
def step_failures(tenant: str, subject: str) -> Iterator[Where]:
    """Raise what goes wrong inside as a ``dg.Failure`` with the pipeline's message and metadata."""
    where = Where(tenant=tenant, subject=subject)
    try:
        yield where
    except dg.Failure as failure:
        raise dg.Failure(
            description=failure.description,
            metadata={**where.metadata(), **failure.metadata},
            allow_retries=failure.allow_retries,
        ) from None
    except KNOWN as error:
        message = str(error)
        raise dg.Failure(
            description=message if f"'{tenant}'" in message else f"Tenant '{tenant}', {subject}: {message}",
            metadata={**where.metadata(), "error": type(error).__name__, "what_to_do": remedy(error)},
        ) from None
