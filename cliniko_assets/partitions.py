"""Tenants: one dynamic partition per clinic, keyed by its Splose workspace id (a slug)."""

from __future__ import annotations

import re

import dagster as dg

tenants = dg.DynamicPartitionsDefinition(name="tenants")

# Matched with fullmatch: "$" alone would accept a trailing newline ("abc\n").
TENANT_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class InvalidTenant(ValueError):
    pass


def validate_tenant(key: str) -> str:
    """A tenant key must be a lowercase slug: 1-63 of a-z, 0-9 and '-', not starting or ending with '-'."""
    if not isinstance(key, str) or not TENANT_PATTERN.fullmatch(key) or "--" in key:
        raise InvalidTenant(
            f"Tenant key {key!r} is not a valid Splose workspace slug: use 1-63 lowercase letters, digits and "
            "single hyphens, starting and ending with a letter or digit (for example 'clinic-42')."
        )
    return key
