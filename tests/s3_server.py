"""A real S3-protocol server (moto in server mode) on 127.0.0.1, started and stopped by the tests.

The server is a child process of the test session; each test gets its own bucket, and staging reaches it
only through the ``AWS_*`` environment variables, as a deployment's would.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import s3fs

from splose_resources.staging import StagingStore


@dataclass
class S3Server:
    url: str

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": "staging-tests",
            "AWS_SECRET_ACCESS_KEY": "staging-tests-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.url,
        }

    def client(self) -> s3fs.S3FileSystem:
        env = self.environment()
        return s3fs.S3FileSystem(
            key=env["AWS_ACCESS_KEY_ID"],
            secret=env["AWS_SECRET_ACCESS_KEY"],
            endpoint_url=self.url,
            client_kwargs={"region_name": env["AWS_DEFAULT_REGION"]},
            use_listings_cache=False,
            skip_instance_cache=True,
        )

    def new_bucket(self) -> str:
        name = f"staging-{uuid.uuid4().hex[:12]}"
        self.client().call_s3("create_bucket", Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        """Every object of the bucket, as keys without the bucket."""
        return sorted(path.removeprefix(f"{bucket}/") for path in self.client().find(bucket))

    def unfinished_uploads(self, bucket: str) -> list[str]:
        return [u["Key"] for u in self.client().call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    port = _free_port()
    log = tmp_path_factory.mktemp("s3-server") / "moto.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = S3Server(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{server.url}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the S3 server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def s3_staging(s3_server, monkeypatch) -> tuple[StagingStore, str]:
    """Staging in a fresh bucket of the S3 server, credentials from the environment; (store, bucket)."""
    for variable, value in s3_server.environment().items():
        monkeypatch.setenv(variable, value)
    bucket = s3_server.new_bucket()
    return StagingStore(uri=f"s3://{bucket}/staging"), bucket
