"""Each step's stdout and stderr, kept for the UI and echoed to the run's own output, without helper processes.

Dagster's ``LocalComputeLogManager`` redirects a step's stdout and stderr into files (the UI's *stdout* and
*stderr* tabs of a step) and mirrors each file back to where the output went before with a ``tail -F``
process, watched by a Python process of its own that kills the ``tail`` should the step die: four processes
started and stopped for every step, about 0.05 CPU-s each time (an import runs eleven steps).
:class:`MirroredComputeLogManager` keeps the same files, in the same place, read by the UI the same way; what
is appended to them is copied back to the original outputs by a thread of the step's own process, every
:data:`INTERVAL` seconds and once more when the step ends. A step that dies takes its thread with it: nothing
is left behind to watch.

Configured as the instance's ``compute_logs`` (``dagster.yaml``) and as the embedded default's
(:class:`~cliniko_assets.sqlite_storage.EmbeddedInstance`); ``base_dir`` defaults to Dagster's own place,
``storage/`` under the instance's home.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Generator, Sequence
from contextlib import ExitStack, contextmanager
from typing import IO

from dagster import DagsterInstance, Field, StringSource
from dagster._core.execution.compute_logs import redirect_to_file, should_disable_io_stream_redirect
from dagster._core.instance.ref import compute_logs_directory
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._serdes import ConfigurableClassData
from dagster._utils import ensure_file, touch_file

INTERVAL = 0.5  # seconds between copies of what the step wrote (tail -F's: 1)
CHUNK = 1 << 16


class MirroredComputeLogManager(LocalComputeLogManager):
    """Dagster's local compute logs, mirrored to the step's original stdout and stderr by a thread."""

    def __init__(
        self,
        base_dir: str | None = None,
        polling_timeout: float | None = None,
        inst_data: ConfigurableClassData | None = None,
    ) -> None:
        super().__init__(base_dir or "", polling_timeout=polling_timeout, inst_data=inst_data)
        self._configured_dir = base_dir

    @classmethod
    def config_type(cls) -> dict:
        return {"base_dir": Field(StringSource, is_required=False), "polling_timeout": Field(float, is_required=False)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: dict
    ) -> MirroredComputeLogManager:  # type: ignore[override]
        return cls(inst_data=inst_data, **config_value)

    def register_instance(self, instance: DagsterInstance) -> None:
        super().register_instance(instance)
        if not self._configured_dir:
            self._base_dir = compute_logs_directory(instance.root_directory)

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Generator[CapturedLogContext, None, None]:
        if should_disable_io_stream_redirect():  # Dagster's own handling where redirection cannot work
            with super().capture_logs(log_key) as captured:
                yield captured
            return
        paths = {
            stream: self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[io_type])
            for stream, io_type in ((sys.stdout, ComputeIOType.STDOUT), (sys.stderr, ComputeIOType.STDERR))
        }
        mirror = Mirror()
        with ExitStack() as stack:
            stack.callback(mirror.close)  # after the redirections are undone: the last of the output copied
            for stream, path in paths.items():
                ensure_file(path)
                mirror.add(stream, path)
                stack.enter_context(redirect_to_file(stream, path))
            mirror.start()
            yield CapturedLogContext(log_key)
        # leave artifact on filesystem so that we know the capture is completed (as Dagster's manager does)
        touch_file(self.complete_artifact_path(log_key))


class Mirror:
    """Copies what is appended to files to the outputs they were redirected from, on one thread."""

    def __init__(self) -> None:
        self._pairs: list[tuple[IO[bytes], int]] = []  # (the file, read from its end; a copy of the output's fd)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="compute-log-mirror", daemon=True)

    def add(self, stream: IO, path: str) -> None:
        """Mirror to ``stream``'s file descriptor what is appended to ``path`` from now on (nothing when
        ``stream`` has none, as Dagster's redirection then captures nothing either)."""
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            return
        reader = open(path, "rb")  # noqa: SIM115 (closed by close())
        reader.seek(0, os.SEEK_END)  # what an earlier attempt of the step wrote was mirrored then
        self._pairs.append((reader, os.dup(fd)))

    def start(self) -> None:
        if self._pairs:
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._copy()
        for reader, target in self._pairs:
            reader.close()
            if target >= 0:
                os.close(target)
        self._pairs = []

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            self._copy()

    def _copy(self) -> None:
        for index, (reader, target) in enumerate(self._pairs):
            if target < 0:
                continue
            while chunk := reader.read(CHUNK):
                try:
                    _write_all(target, chunk)
                except OSError:  # the output is gone (a closed pipe): the file still has everything
                    os.close(target)
                    self._pairs[index] = (reader, -1)
                    break


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
