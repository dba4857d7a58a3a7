"""Deployment settings: where Cliniko and Splose are, the platform token, staging's root, the shared state and
the mail server. They are the deployment's, read from the environment the code location runs in (the
variables :mod:`cliniko_assets.definitions` names), never a run's:

- a run whose config sets one (``resources: {splose: {config: {api_url: ...}}}``, which the launchpad
  allows) is refused before the resource does anything: such a run could send the platform token, a
  clinic's Cliniko key or its patients' data to any host, or stage one clinic's data under another's root;
- a run whose config sets a resource's other fields (``cliniko: {config: {concurrency: 8}}``) gets a
  resource Dagster rebuilt from those fields alone, every other one at its class default: the deployment
  settings are then read from the same variables, so such a run still goes where the deployment does and
  shares its budget.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

# Resource key -> its fields that are the deployment's -> the environment variable the code location reads
# (SHARED_STATE_POSTGRES_URL is shared_limits.SHARED_STATE_VARIABLE, not imported: shared_limits imports staging).
DEPLOYMENT_FIELDS: dict[str, dict[str, str | None]] = {
    "cliniko": {
        "api_url": "CLINIKO_API_URL",
        "shared_state_postgres_url": "SHARED_STATE_POSTGRES_URL",
        "rate_limit_state_dir": None,
    },
    "splose": {
        "api_url": "SPLOSE_API_URL",
        "platform_token": "SPLOSE_PLATFORM_TOKEN",
        "shared_state_postgres_url": "SHARED_STATE_POSTGRES_URL",
        "rate_limit_state_dir": None,
    },
    "staging": {"uri": "STAGING_URI"},
    "notifier": {
        "outbox": None,
        "smtp_host": "SMTP_HOST",
        "smtp_port": "SMTP_PORT",
        "smtp_username": "SMTP_USERNAME",
        "smtp_password": "SMTP_PASSWORD",
        "shared_state_postgres_url": "SHARED_STATE_POSTGRES_URL",
    },
}


NO_RETRIES = ("dagster/max_retries", "0")  # Dagster's run tag: this run is not retried


class DeploymentSettingInRunConfig(ValueError):
    """A run's config sets what only the deployment sets."""


def setting(key: str, resource: Any, name: str) -> Any:
    """``resource``'s (the resource ``key``'s) deployment setting ``name``: as the resource has it, or, when it
    has none, the variable the deployment sets it with (None when that is unset too)."""
    value = getattr(resource, name)
    variable = DEPLOYMENT_FIELDS[key][name]
    if value not in (None, "") or variable is None:
        return value
    return os.environ.get(variable) or None


def refuse_in_run_config(run_config: Mapping[str, Any] | None) -> None:
    """Refuse a run whose config sets a deployment setting of any resource; names each one and what to do."""
    resources = (run_config or {}).get("resources") or {}
    found = []
    for key, fields in DEPLOYMENT_FIELDS.items():
        entry = resources.get(key)
        config = entry.get("config") if isinstance(entry, Mapping) else None
        if isinstance(config, Mapping):
            found += [
                f"resources.{key}.config.{name}" + (f" (the deployment's {fields[name]})" if fields[name] else "")
                for name in fields
                if name in config
            ]
    if found:
        raise DeploymentSettingInRunConfig(
            f"This run's config sets {', '.join(found)}: where Cliniko, Splose, staging and the mail server are, "
            "their tokens and the shared state are the deployment's settings, never a run's. Remove them from the "
            "run config and launch again (the Launchpad fills in every resource's settings: delete them, or the whole "
            "resources section but what this run changes); to change them, change the code location's environment."
        )


def check_run(context: Any) -> None:
    """For a resource's ``setup_for_execution``: refuse the run (a sensor's tick has none) as above. A refused
    run is not retried (Dagster's run retries would launch the same config, refused again): its
    ``dagster/max_retries`` tag is set to 0 first."""
    run = getattr(context, "run", None)
    if run is None:
        return
    try:
        refuse_in_run_config(run.run_config)
    except DeploymentSettingInRunConfig:
        instance = getattr(context, "instance", None)
        if instance is not None:
            instance.add_run_tags(run.run_id, {NO_RETRIES[0]: NO_RETRIES[1]})
        raise
