"""Loaded by each run's fork server before it forks the run's steps (:mod:`cliniko_assets.jobs`).

The code location is imported and resolved once per run, and every step's process starts from it,
instead of each step resolving the whole graph again. The malloc arenas are limited here too, so every
step forked from it inherits the limit.
"""

import ctypes

from cliniko_assets.definitions import defs

M_ARENA_MAX = -8  # glibc's mallopt parameter
ARENAS = 2


def _fewer_malloc_arenas() -> None:
    """glibc gives threads that allocate at once arenas of their own (up to eight per core), and what is
    freed in an arena stays with it: an extraction's page and resource threads would each keep what they
    once decoded. Two arenas keep a step's peak near what its threads hold at once. Not glibc: nothing."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, ARENAS)
    except (OSError, AttributeError):
        return


_fewer_malloc_arenas()
defs.get_repository_def()
