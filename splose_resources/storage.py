"""Where staged bytes live: a local folder or an S3-compatible bucket, behind one small interface.

Keys are '/'-separated paths under the staging root; only :class:`~splose_resources.staging.StagingStore`
builds them, from validated parts. Both backends keep the same promises:

- A write is atomic: a reader sees the previous content or the complete new one, never a part of it.
  Locally a 0600 temporary file is renamed into place. On S3 an object exists only once its upload
  completes (one PUT, or a multipart upload completed when the writer closes); a write that fails is
  aborted, and one killed mid-way leaves only an unfinished multipart upload, which no reader lists or
  reads and which the tenant's purge aborts.
- Private: local folders are 0700 and files 0600 from their first byte; S3 objects are written with no
  ACL: private to the bucket's owner (the credentials in the environment) unless a bucket policy grants
  more.
- Streamed: writers and readers move bounded blocks (:data:`BLOCK`), never a whole file.
- One writer per lock key: ``flock`` locally; on S3 a lock object created only if absent (a conditional
  PUT), rewritten while it is held and taken over once it has stayed unchanged for a lease (its holder
  died); a writer that finds it held waits at most that long to tell which.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Protocol

Opener = Callable[[], AbstractContextManager[BinaryIO]]
BLOCK = 8 << 20  # bytes an S3 reader or writer buffers (parts of a multipart upload are at least 5 MiB)
LEASE_SECONDS = 60.0  # an S3 lock left unchanged for this long belongs to a holder that died


class LockHeld(RuntimeError):
    """Another writer holds the lock."""


class StagingUnavailable(RuntimeError):
    """Staging has no usable root (a configuration problem)."""


@contextmanager
def _s3_failures(*also: type[Exception]) -> Iterator[None]:
    """A store that refuses the credentials or cannot be reached is a configuration problem, said as one
    (the bucket's name and the error's kind only: never a credential)."""
    from botocore.exceptions import BotoCoreError

    try:
        yield
    except (PermissionError, BotoCoreError, *also) as error:
        raise StagingUnavailable(
            f"Staging on S3 cannot be used ({type(error).__name__}): check that STAGING_URI names an existing bucket "
            "and that the code location's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION and "
            "AWS_ENDPOINT_URL reach it."
        ) from None


class Storage(Protocol):
    def exists(self, key: str) -> bool: ...

    def reader(self, key: str) -> AbstractContextManager[BinaryIO]: ...

    def writer(self, key: str) -> AbstractContextManager[BinaryIO]: ...

    def read_bytes(self, key: str) -> bytes | None: ...

    def write_bytes(self, key: str, data: bytes) -> None: ...

    def names(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...

    def delete_tree(self, prefix: str) -> None: ...

    def lock(self, key: str) -> AbstractContextManager[None]: ...


def storage_for(uri: str) -> Storage:
    """The backend of a staging URI: ``s3://bucket/prefix``, or a local folder (a path or ``file://`` URL)."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return LocalStorage(Path(uri))
    if scheme == "file":
        return LocalStorage(Path(rest))
    if scheme == "s3":
        return S3Storage(rest)
    raise ValueError(f"staging URI scheme '{scheme}' is not supported; use s3://bucket/prefix or a local folder")


class LocalStorage:
    """A private folder on this machine."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    @contextmanager
    def reader(self, key: str) -> Iterator[BinaryIO]:
        with open(self.path(key), "rb") as handle:
            yield handle

    def writer(self, key: str) -> AbstractContextManager[BinaryIO]:
        path = self.path(key)
        private_dir(path.parent)
        return open_private(path)

    def read_bytes(self, key: str) -> bytes | None:
        path = self.path(key)
        return path.read_bytes() if path.exists() else None

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.writer(key) as out:
            out.write(data)

    def names(self, prefix: str) -> list[str]:
        folder = self.path(prefix)
        return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_tree(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        path = self.path(key)
        private_dir(path.parent)
        with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockHeld(key) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class S3Storage:
    """A prefix of an S3-compatible bucket; credentials, region and endpoint come from the environment
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``)."""

    def __init__(self, location: str) -> None:
        self.base = location.strip("/")
        if not self.base:
            raise ValueError("staging URI s3:// names no bucket; use s3://bucket/prefix")
        self._client: Any = None
        self._pid = 0

    @property
    def fs(self) -> Any:
        """One client per process: an s3fs client does not survive a fork. No listing cache: another
        process's writes are seen at once."""
        if self._client is None or self._pid != os.getpid():
            import s3fs

            self._client = s3fs.S3FileSystem(
                endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None,
                use_listings_cache=False,
                skip_instance_cache=True,
            )
            self._pid = os.getpid()
        return self._client

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}"

    @_s3_failures()
    def exists(self, key: str) -> bool:
        return self.fs.exists(self._path(key))

    @contextmanager
    def reader(self, key: str) -> Iterator[BinaryIO]:
        with _s3_failures():
            opened = self.fs.open(self._path(key), "rb", block_size=BLOCK)
        with _Sized(opened) as handle:
            yield handle

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        handle = self.fs.open(self._path(key), "wb", block_size=BLOCK, autocommit=False)
        try:
            yield handle
            with _s3_failures(FileNotFoundError):
                handle.close()
        except BaseException:
            handle.discard()
            handle.closed = True  # nothing left to flush, even when collected
            raise
        with _s3_failures(FileNotFoundError):
            handle.commit()

    @_s3_failures()
    def read_bytes(self, key: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None

    @_s3_failures(FileNotFoundError)
    def write_bytes(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(key), data)

    @_s3_failures()
    def names(self, prefix: str) -> list[str]:
        try:
            listed = self.fs.ls(self._path(prefix), detail=False)
        except FileNotFoundError:
            return []
        names = (path.rstrip("/").rsplit("/", 1)[-1] for path in listed)
        return sorted(name for name in names if not name.startswith("."))

    @_s3_failures()
    def delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self._path(key))
        except FileNotFoundError:
            return

    @_s3_failures(FileNotFoundError)
    def delete_tree(self, prefix: str) -> None:
        """Every object under ``prefix``, and every upload begun there and never completed."""
        bucket, _, key = self._path(prefix).partition("/")
        listing = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=f"{key}/")
        for upload in listing.get("Uploads", []):
            self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        found = self.fs.find(self._path(prefix))
        if found:
            self.fs.rm(found)

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        lease = _Lease(self, key)
        with _s3_failures(FileNotFoundError):
            lease.acquire()
        try:
            yield
        finally:
            lease.release()


class _Sized(io.BufferedReader):
    """An S3 object read in ranges, whose ``len()`` is its size (what a streamed multipart upload asks)."""

    def __len__(self) -> int:
        return self.raw.size


class _Lease:
    """An S3 lock object: created only if absent and rewritten every third of its lease while held.

    A writer that finds it held watches it on its own clock (no clock is compared across machines): a
    holder seen rewriting it is alive (:class:`LockHeld`); one that left it unchanged for a whole lease
    died (killed, its machine gone), and the lock is taken over, only if still unchanged."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self.bucket, _, self.object_key = storage._path(key).partition("/")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, daemon=True, name="staging lease")

    def _put(self, **condition: str) -> None:
        body = json.dumps({"at": time.time()}).encode()
        self.storage.fs.call_s3("put_object", Bucket=self.bucket, Key=self.object_key, Body=body, **condition)

    def _etag(self) -> str | None:
        try:
            return self.storage.fs.info(self.storage._path(self.key))["ETag"]
        except FileNotFoundError:
            return None

    def acquire(self) -> None:
        seen = None
        started = time.monotonic()
        while True:
            if seen is None:
                try:
                    self._put(IfNoneMatch="*")
                    break
                except FileExistsError:
                    seen, started = self._etag(), time.monotonic()
                    continue
            if time.monotonic() - started >= LEASE_SECONDS:
                self._take_over(seen)
                break
            time.sleep(LEASE_SECONDS / 20)
            current = self._etag()
            if current is not None and current != seen:
                raise LockHeld(self.key)
            seen = current
        self._thread.start()

    def _take_over(self, etag: str) -> None:
        try:
            self._put(IfMatch=etag)
        except OSError:  # rewritten or taken over meanwhile
            raise LockHeld(self.key) from None

    def _refresh(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 3):
            self._put()

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        self.storage.delete(self.key)


@contextmanager
def open_private(path: Path) -> Iterator[BinaryIO]:
    """Write ``path`` atomically and privately: a 0600 temporary file, renamed into place once complete.

    The file is never readable by others, not even while it is written; if writing fails, ``path`` keeps
    its previous content and the temporary file is removed.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    handle = os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
    try:
        with handle:
            yield handle
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_private(path: Path, data: str | bytes) -> None:
    """The one private atomic write of a small local file."""
    with open_private(path) as out:
        out.write(data.encode() if isinstance(data, str) else data)


def private_dir(path: Path) -> Path:
    """``path`` and every parent it has to create are made 0700 (``mkdir(mode=...)`` only sets the last)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made by a concurrent writer
        os.chmod(directory, 0o700)  # whatever the umask
    return path
