"""A small client for the Cliniko sandbox's ``/_sandbox`` endpoints (tests, demo, benchmarks)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import requests


class ClinikoSandboxAdmin:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False

    def _get(self, path: str, **kwargs) -> requests.Response:
        response = self.session.get(f"{self.url}/_sandbox/{path}", timeout=120, **kwargs)
        response.raise_for_status()
        return response

    def _post(self, path: str, body: dict | None = None) -> dict:
        response = self.session.post(f"{self.url}/_sandbox/{path}", json=body or {}, timeout=600)
        response.raise_for_status()
        return response.json() if response.content else {}

    def keys(self, account: str) -> dict[str, str]:
        return self._get(f"accounts/{account}").json()["keys"]

    def create_account(self, name: str, seed: int, scale: str, shard: str = "au1", **options) -> dict:
        """``options``: ``legacy_filters``, ``documented_filters``, ``no_older_routes``,
        ``nested_reference_numbers``, ``individual_attendees`` (bools; the last on by default, as in real
        accounts), ``envelopes`` (realistic, every_quirk, none)."""
        return self._post("accounts", {"name": name, "seed": seed, "scale": scale, "shard": shard, **options})

    def describe(self, account: str) -> dict:
        return self._get(f"accounts/{account}").json()

    def truth(self, account: str) -> dict[str, dict[str, int]]:
        return self._get(f"accounts/{account}/truth").json()

    def export(self, account: str, resource: str) -> Iterator[dict]:
        response = self._get(f"accounts/{account}/export/{resource}", stream=True)
        for line in response.iter_lines():
            if line:
                yield json.loads(line)

    def settings(self, account: str) -> dict:
        """The account's settings as its administrator's key reads them (``GET /settings``), read through the
        admin API: setting up a scenario spends none of the key's request budget."""
        return self._get(f"accounts/{account}/settings").json()

    def patch_settings(self, account: str, patch: dict) -> dict:
        """Merge ``patch`` into the account's settings one level deep, e.g. ``{"account": {"time_zone": None}}``."""
        return self._post(f"accounts/{account}/settings", patch)

    def _shard(self, account: str) -> str:
        return self._get(f"accounts/{account}").json()["shard"]

    def mutate(self, account: str, **body) -> dict:
        return self._post(f"accounts/{account}/mutate", body)

    def churn(self, account: str, **rule) -> dict:
        """Delete records while lists are read (see ``sandbox.cliniko.accounts.Churn``); no rule clears it."""
        return self._post(f"accounts/{account}/churn", rule)

    def churned(self, account: str) -> list[str]:
        rule = self.churn_rule(account)
        return rule["deleted"] if rule else []

    def churn_rule(self, account: str) -> dict | None:
        """The account's churn rule and what it has deleted and created so far (None without one)."""
        return self._get(f"accounts/{account}/churn").json()["churn"]

    def stats(self) -> dict:
        return self._get("stats").json()

    def requests_by_route(self, account: str, key: str | None = None) -> Counter:
        """The requests the sandbox answered ``account``'s key ``key`` (every key of it when None) so far, by
        route (ids as ``:id``)."""
        routes: Counter = Counter()
        for label, entry in self.stats()["keys"].items():
            if label == f"{account}/{key}" or (key is None and label.startswith(f"{account}/")):
                routes.update(entry["paths"])
        return routes

    def reset_stats(self) -> None:
        self._post("stats/reset")

    def configure(self, **body) -> dict:
        return self._post("config", body)

    def clear_faults(self) -> dict:
        zero = {"error_rate": 0, "drop_rate": 0, "slow_rate": 0, "truncate_rate": 0, "wrong_total_rate": 0}
        zero |= {"storm_429": None, "file_host": None}
        return self.configure(faults=zero)
