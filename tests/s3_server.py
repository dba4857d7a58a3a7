"""A real S3-protocol server (moto in server mode, :mod:`sandbox.s3`) for the session, a bucket per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.s3 import S3Server, running_s3_server
from splose_resources.staging import StagingStore


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    with running_s3_server(tmp_path_factory.mktemp("s3-server")) as server:
        yield server


@pytest.fixture
def s3_staging(s3_server, monkeypatch) -> tuple[StagingStore, str]:
    """Staging in a fresh bucket of the S3 server, credentials from the environment; (store, bucket)."""
    for variable, value in s3_server.environment().items():
        monkeypatch.setenv(variable, value)
    bucket = s3_server.new_bucket()
    return StagingStore(uri=f"s3://{bucket}/staging"), bucket
