"""``GET /settings`` and ``GET /settings/public`` as Cliniko documents them (sections/settings.md).

``/settings`` is "only accessible to users with a role that can view settings" (here: the administrator's
key; receptionists and practitioners get 403), ``/settings/public`` "to any authenticated user" and leaves
out what only administrators see (``account.email_from``, ``account.admin``, the online-bookings tracking
ids). Each account's settings are one row of its database, written by the generator (or, for the
``examples`` account, Cliniko's documented example verbatim); ``/_sandbox/accounts/{name}/settings`` patches
them so tests can take the account's time zone away.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from sandbox.cliniko.queries import render

ADMIN_ONLY_ACCOUNT = ("email_from", "admin")
ADMIN_ONLY_BOOKINGS = ("adroll", "google_analytics")


def settings_body(db: sqlite3.Connection, base: str, public: bool) -> str | None:
    row = db.execute("SELECT body FROM settings WHERE id = 1").fetchone()
    if row is None:
        return None
    body = json.loads(render(row[0], base))
    if public:
        body["account"] = {k: v for k, v in (body.get("account") or {}).items() if k not in ADMIN_ONLY_ACCOUNT}
        bookings = body.get("online_bookings")
        if isinstance(bookings, dict):
            body["online_bookings"] = {k: v for k, v in bookings.items() if k not in ADMIN_ONLY_BOOKINGS}
    body.setdefault("links", {"self": f"{base}/settings{'/public' if public else ''}"})
    return json.dumps(body, ensure_ascii=False)


def store_settings(db: sqlite3.Connection, body: dict[str, Any]) -> None:
    db.execute("INSERT OR REPLACE INTO settings (id, body) VALUES (1, ?)", (json.dumps(body, ensure_ascii=False),))


def patch_settings(db: sqlite3.Connection, patch: dict[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` one level deep (``{"account": {"time_zone": null}}``); returns the new body."""
    row = db.execute("SELECT body FROM settings WHERE id = 1").fetchone()
    body = json.loads(row[0]) if row else {}
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    store_settings(db, body)
    return body


def generated_settings(
    account_id: int, name: str, country: str, time_zone: str | None, custom_fields: dict
) -> dict[str, Any]:
    """A generated account's settings, in the documented shape (without ``links``, added per request)."""
    slug = "".join(ch for ch in name.lower() if ch.isalnum()) or "clinic"
    return {
        "terminology": {"patient": "patient"},
        "account": {
            "id": account_id,
            "name": name,
            "country": country,
            "time_zone": time_zone,
            "currency_symbol": "$",
            "subdomain": slug,
            "email_from": f"reception@{slug}.example",
            "admin": {"email": f"owner@{slug}.example", "first_name": "Sam", "last_name": "Owner"},
        },
        "calendar": {
            "start_hour": 7,
            "end_hour": 20,
            "timeslot_height_in_pixels": 15,
            "timeslot_size_in_minutes": 15,
            "show_current_time_indicator": True,
            "multiple_appointments_gap": False,
        },
        "online_bookings": {
            "adroll": None,
            "calendar_info": None,
            "enabled": True,
            "google_analytics": None,
            "logo_url": None,
            "max_appointments_per_day_segment": None,
            "min_hours_advance_required_to_book": 2,
            "min_hours_notice_for_patient_cancellation": 24,
            "notify_practitioner_by_email": True,
            "notify_practitioner_by_sms": False,
            "policy": None,
            "practitioner_order": [],
            "require_patient_address": False,
            "show_appointment_duration": True,
            "show_prices": False,
        },
        "patient_custom_fields_definition": custom_fields,
        "reminders": {"default_reminder_type": "SMS & Email"},
    }
