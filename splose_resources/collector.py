"""Python's cycle collector, set for a step that decodes and encodes records in bulk.

A page of Cliniko records, or a batch of staged ones, allocates thousands of dicts and lists that die
young. At the interpreter's thresholds (700, 10, 10) they set off a young collection every 700 of them
and, every hundred young ones, a full collection that walks every object the step process holds: Dagster,
pyarrow, pandas and the project, hundreds of thousands of objects that live as long as the process and
are never garbage. :func:`bulk_work` moves what the process holds when the step starts out of the
collector's sight (``gc.freeze``) and collects the young generation less often, for the step's duration
only; both are undone when it ends. Reference counting still frees every record as soon as it is let go:
the collector only finds cycles, which the records (parsed JSON) never form.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000  # container objects allocated between young collections (the interpreter's: 700)


@contextmanager
def bulk_work() -> Iterator[None]:
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
