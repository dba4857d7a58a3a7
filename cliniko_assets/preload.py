"""Loaded by each run's fork server before it forks the run's steps (:mod:`cliniko_assets.jobs`).

The code location is imported and resolved once per run, and every step's process starts from it,
instead of each step resolving the whole graph again.
"""

from cliniko_assets.definitions import defs

defs.get_repository_def()
