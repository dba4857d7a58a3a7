"""Requests on their way side by side: at most a few at once, each answer handled on the caller's thread.

A load sends its batches through :class:`InFlight`, so transforming the next batch overlaps Splose's
work on the previous ones. Answers are handed over in the order the calls were sent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")


class InFlight(Generic[T]):
    """Calls made on worker threads, at most ``limit`` at once (with 1, on the caller's own thread).

    Each answer goes to the ``answered`` given with its call, on the caller's thread. On a normal exit
    every answer is handed over; an exception (a call's, or the caller's) first waits for every call still
    on its way, so nothing is left running when it reaches the step. When the step is interrupted (a
    ``BaseException`` that is not an ``Exception``: Dagster's interrupt, a Ctrl-C), ``interrupted`` is called
    first, so the calls on their way give up their waits and retries rather than finish them.
    """

    def __init__(self, limit: int, name: str, interrupted: Callable[[], None] | None = None) -> None:
        self.limit = max(1, limit)
        self.name = name
        self.interrupted = interrupted
        self._pool: ThreadPoolExecutor | None = None
        self._waiting: deque[tuple[Future[T], Callable[[T], None]]] = deque()

    def __enter__(self) -> InFlight[T]:
        if self.limit > 1:
            self._pool = ThreadPoolExecutor(max_workers=self.limit, thread_name_prefix=self.name)
        return self

    def send(self, call: Callable[[], T], answered: Callable[[T], None]) -> None:
        if self._pool is None:
            answered(call())
            return
        while len(self._waiting) >= self.limit:
            self._hand_over()
        self._waiting.append((self._pool.submit(call), answered))

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception) and self.interrupted is not None:
            self.interrupted()
        try:
            while self._waiting:
                if exc_type is None:
                    self._hand_over()
                else:
                    self._waiting.popleft()[0].exception()  # failed already: only wait for what is on its way
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def _hand_over(self) -> None:
        future, answered = self._waiting.popleft()
        answered(future.result())
