"""A streaming ``multipart/form-data`` reader: file parts go straight to disk, hashed on the way.

Starlette's own form parser needs ``python-multipart``, which the project does not depend on; this
one also lets the file upload enforce its size cap while streaming (bytes past the cap are read and
dropped, never written) and compute the sha256 without a second pass.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from email.message import Message
from email.utils import collapse_rfc2231_value
from pathlib import Path
from typing import IO

from starlette.requests import Request

MAX_FIELD_BYTES = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024


class MultipartError(ValueError):
    pass


@dataclass
class UploadedFile:
    field_name: str
    filename: str | None
    content_type: str | None
    path: Path
    size: int = 0
    over_cap: bool = False
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


@dataclass
class Form:
    fields: dict[str, str]
    files: dict[str, UploadedFile]

    def discard(self) -> None:
        for upload in self.files.values():
            upload.path.unlink(missing_ok=True)


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    message = Message()
    message["content-type"] = value
    params = dict(message.get_params(failobj=[])[1:])
    return message.get_content_type(), {key.lower(): val for key, val in params.items()}


def _disposition_params(value: str) -> dict[str, str]:
    message = Message()
    message["content-disposition"] = value
    params = message.get_params(header="content-disposition", failobj=[])[1:]
    return {key.lower(): collapse_rfc2231_value(val) for key, val in params}


class _Part:
    def __init__(self, headers: dict[str, str], spool_dir: Path, cap: int) -> None:
        params = _disposition_params(headers.get("content-disposition", ""))
        self.name = params.get("name")
        if not self.name:
            raise MultipartError("a part has no name in its Content-Disposition header")
        self.cap = cap
        self.value = bytearray()
        self.upload: UploadedFile | None = None
        self.out: IO[bytes] | None = None
        if "filename" in params:
            path = spool_dir / f"upload-{uuid.uuid4().hex}"
            self.upload = UploadedFile(self.name, params["filename"], headers.get("content-type"), path)
            self.out = open(path, "wb")  # noqa: SIM115 - closed in finish()

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.upload is None:
            self.value += chunk
            if len(self.value) > MAX_FIELD_BYTES:
                raise MultipartError(f"form field {self.name!r} is longer than {MAX_FIELD_BYTES} bytes")
            return
        self.upload.size += len(chunk)
        if self.upload.size > self.cap:
            self.upload.over_cap = True
            return
        self.upload.digest.update(chunk)
        assert self.out is not None
        self.out.write(chunk)

    def finish(self) -> None:
        if self.out is not None:
            self.out.close()


async def read_form(request: Request, spool_dir: Path, file_cap: int) -> Form:
    """Parse the request body; file parts land in ``spool_dir`` (the caller moves or discards them)."""
    content_type, params = _header_params(request.headers.get("content-type", ""))
    boundary = params.get("boundary")
    if content_type != "multipart/form-data" or not boundary or not boundary.isascii():
        raise MultipartError("expected a multipart/form-data body with an ASCII boundary")
    delimiter = b"\r\n--" + boundary.encode("ascii")
    form = Form({}, {})
    buffer = bytearray(b"\r\n")  # so the first boundary looks like every other one
    state = "preamble"
    part: _Part | None = None
    try:
        async for chunk in request.stream():
            buffer += chunk
            while True:
                if state in ("preamble", "data"):
                    index = buffer.find(delimiter)
                    if index == -1:
                        if part is not None:
                            keep = len(delimiter) - 1
                            part.write(bytes(buffer[: max(0, len(buffer) - keep)]))
                            del buffer[: max(0, len(buffer) - keep)]
                        break
                    if part is not None:
                        part.write(bytes(buffer[:index]))
                        _store_part(form, part)
                        part = None
                    del buffer[: index + len(delimiter)]
                    state = "after_boundary"
                if state == "after_boundary":
                    if len(buffer) < 2:
                        break
                    if buffer[:2] == b"--":
                        state = "end"
                        break
                    if buffer[:2] != b"\r\n":
                        raise MultipartError("malformed multipart boundary")
                    del buffer[:2]
                    state = "headers"
                if state == "headers":
                    index = buffer.find(b"\r\n\r\n")
                    if index == -1:
                        if len(buffer) > MAX_HEADER_BYTES:
                            raise MultipartError("multipart part headers are too long")
                        break
                    headers = _parse_headers(bytes(buffer[:index]))
                    del buffer[: index + 4]
                    part = _Part(headers, spool_dir, file_cap)
                    if part.upload is not None:
                        form.files[part.name] = part.upload
                    state = "data"
                if state == "end":
                    break
        if state != "end":
            raise MultipartError("the multipart body ended before its closing boundary")
    except BaseException:
        if part is not None:
            part.finish()
        form.discard()
        raise
    return form


def _store_part(form: Form, part: _Part) -> None:
    part.finish()
    if part.upload is None:
        try:
            form.fields[part.name or ""] = part.value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MultipartError(f"form field {part.name!r} is not UTF-8 (invalid byte at {error.start})") from error


def _parse_headers(raw: bytes) -> dict[str, str]:
    headers = {}
    for line in raw.decode("utf-8", errors="replace").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers
