"""An S3-protocol server (moto in server mode) on 127.0.0.1, for staging on S3 in tests and benchmarks.

Started as a child process on a free port and stopped on exit; state lives in its memory only. Staging
reaches it only through the ``AWS_*`` variables of :meth:`S3Server.environment`, as a deployment's would.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests


@dataclass
class S3Server:
    url: str

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": "staging-sandbox",
            "AWS_SECRET_ACCESS_KEY": "staging-sandbox-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.url,
        }

    def client(self):
        """An s3fs client of its own (no listing cache): what the server holds, as it holds it."""
        import s3fs

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
        listing = self.client().call_s3("list_multipart_uploads", Bucket=bucket)
        return [upload["Key"] for upload in listing.get("Uploads", [])]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_s3_server(log_dir: Path, startup_timeout: float = 60) -> Iterator[S3Server]:
    port = _free_port()
    log = log_dir / "moto.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = S3Server(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + startup_timeout
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
