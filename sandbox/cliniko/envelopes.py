"""List envelopes as Cliniko's own example responses show them, not as its docs describe them.

What the documented examples (redguava/cliniko-api, ``sections/*.md``) and the issue tracker show:

* ``links.self`` as the route with ``?page=N`` alone (every example; issue #16 reports links that left out
  the query's ``per_page``), while ``links.next`` keeps the query (communications.md, the newest example,
  keeps ``per_page`` in both): a client that rebuilds pages from ``links.self`` loses its filters.
* ``total_entries`` as a string, and one that is no count at all (practitioners.md: an 18-digit id).
* ``total_entires``: the key misspelt (businesses.md; issue #146 reports it in patients.md too).

A real client meets these on some routes and not on others, so each account gets, per route, a
deterministic mix at the rates below (a route's quirks depend only on the account's seed and the
route), and every account shows each quirk on at least one main list. Mode ``every_quirk`` puts all of
them on every route (the hostile case); ``none`` serves the documented shape (conformance tests).
A count that is wrong, rather than oddly shaped, is a fault to inject (``wrong_total_rate``), not a mode.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from sandbox.cliniko.schema import RESOURCES

MODES = ("realistic", "every_quirk", "none")
# Share of an account's list routes showing each quirk (assumed: the docs show them in a few of ~40 examples).
RATES = {"bare_self": 1 / 3, "total_as_string": 1 / 6, "total_entires": 1 / 10}
MAIN_ROUTES = tuple(f"/v1/{name}" for name in RESOURCES)


@dataclass(frozen=True)
class Envelope:
    bare_self: bool = False  # links.self is ?page=N alone, whatever the query
    total_as_string: bool = False
    total_entires: bool = False  # the count under the misspelt key

    @property
    def total_key(self) -> str:
        return "total_entires" if self.total_entires else "total_entries"

    def total(self, count: int | str) -> str:
        """The count as JSON text."""
        return f'"{count}"' if self.total_as_string else str(count)


PLAIN = Envelope()


def envelope_for(seed: int, mode: str, route: str) -> Envelope:
    """The envelope an account serves on a route template such as ``/v1/patients/:id/patient_attachments``."""
    if mode == "none":
        return PLAIN
    if mode == "every_quirk":
        return Envelope(bare_self=True, total_as_string=True, total_entires=True)
    featured = _featured(seed)
    return Envelope(**{quirk: featured[quirk] == route or _draw(seed, route, quirk) < RATES[quirk] for quirk in RATES})


def quirks_by_route(seed: int, mode: str, routes: list[str]) -> dict[str, list[str]]:
    """Which of ``routes`` show each quirk on this account (what ``/_sandbox/accounts/{name}`` lists)."""
    envelopes = {route: envelope_for(seed, mode, route) for route in routes}
    return {quirk: sorted(r for r, e in envelopes.items() if getattr(e, quirk)) for quirk in RATES}


def _featured(seed: int) -> dict[str, str]:
    """One main list per quirk that shows it whatever the draw, so every account has each quirk."""
    rng = random.Random(f"envelopes:{seed}")
    return {quirk: rng.choice(MAIN_ROUTES) for quirk in RATES}


def _draw(seed: int, route: str, quirk: str) -> float:
    digest = hashlib.sha256(f"{seed}:{route}:{quirk}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
