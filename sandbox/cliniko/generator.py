"""Deterministic clinic generator: the same (seed, scale, anchor month) always gives the same database.

Records are streamed into SQLite in batches; only ids and a few labels of the parent records (patients,
practitioners, ...) are kept in memory, never the bulky children (appointments, notes, attachments),
so ``large`` builds in minutes on a small machine.

Every generated ``created_at``/``updated_at`` lies before the anchor, the first day of the month two
days ago, so it is at least a day old and incremental syncs after a mutation see only mutated rows.
Future ("booked") appointments start after the anchor.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sandbox.cliniko.schema import BASE, INSERT_SQL, UNLISTED, create_indexes, create_tables, row_for
from sandbox.cliniko.settings import generated_settings, store_settings

GENERATOR_VERSION = 9
BATCH = 5000
FIVE_MB = 5 * 1024 * 1024


@dataclass(frozen=True)
class Scale:
    businesses: int
    practitioners: int
    appointment_types: int
    patients: int
    contacts: int
    individual_appointments: int
    group_appointments: int
    treatment_notes: int
    attachments: int
    big_attachments: int
    templates: int


SCALES = {
    "tiny": Scale(3, 6, 6, 40, 12, 300, 10, 60, 15, 1, 4),
    "small": Scale(4, 12, 10, 1_000, 150, 10_000, 300, 2_000, 300, 4, 6),
    "large": Scale(6, 60, 20, 50_000, 2_000, 500_000, 8_000, 200_000, 20_000, 100, 10),
}

# (Rails time zone label, IANA zone, state, country code, country name, city)
TIME_ZONES = (
    ("Melbourne", "Australia/Melbourne", "VIC", "AU", "Australia", "Melbourne"),
    ("Perth", "Australia/Perth", "WA", "AU", "Australia", "Perth"),
    ("Auckland", "Pacific/Auckland", "Auckland", "NZ", "New Zealand", "Auckland"),
    ("London", "Europe/London", "Greater London", "GB", "United Kingdom", "London"),
    ("Brisbane", "Australia/Brisbane", "QLD", "AU", "Australia", "Brisbane"),
    ("Sydney", "Australia/Sydney", "NSW", "AU", "Australia", "Sydney"),
)
# Where a business's zone is written, by position (cycled): both fields, only the Rails label, or neither
# (the account has no "advanced time zone support": the business is in the account's zone, GET /settings).
ZONE_FIELDS = ("both", "label", "none")
BRANCHES = ("North", "East", "South", "West", "Central", "Bayside")
FIRST_NAMES = (
    "José",
    "Zoë",
    "Þór",
    "Ngā",
    "王芳",
    "Siobhán",
    "Olivia",
    "Liam",
    "Aroha",
    "Mia",
    "Noah",
    "Chloé",
    "Björn",
    "Søren",
    "Amélie",
    "Ravi",
    "Priya",
    "Tāne",
    "Ella",
    "Jack",
    "Müller",
    "Łukasz",
    "Yūki",
    "Anh",
)
LAST_NAMES = (
    "García",
    "Smith",
    "O'Brien",
    "Nguyễn",
    "Wang",
    "Müller",
    "Jónsson",
    "Te Rangi",
    "Kowalski",
    "Brown",
    "Dubois",
    "Patel",
    "Williams",
    "Ó Súilleabháin",
    "Taylor",
    "Kim",
    "Álvarez",
    "Wilson",
    "Singh",
    "Lee",
)
DESIGNATIONS = ("Osteopath", "Physiotherapist", "Chiropractor", "Podiatrist", "Psychologist", "Dietitian")
CANCELLATION_REASONS = {
    10: "Feeling Better",
    20: "Condition Worse",
    30: "Sick",
    31: "COVID-19 related",
    40: "Away",
    50: "Other",
    60: "Work",
}
# An enum value newer than the docs: clients must keep it rather than fail.
UNKNOWN_CANCELLATION = (70, "Weather")
# A delivery note written into an address line, longer than the 255 characters a Splose field holds (a patient in
# 331: one at tiny, 3 at small).
LONG_ADDRESS = (
    "Care of the building manager, rear entrance off the laneway behind the pharmacy; ring the intercom twice "
    "and wait, as the lift is slow. Parcels and letters are left with reception on level two between nine and "
    "five on weekdays only, never at the front door, which is kept locked after hours."
)
# The other answer of a note's checkboxes, by note number (mod 40): a short one and one longer than an option holds.
OTHER_ANSWERS = {
    9: "Left hip",
    29: "Lower back and both hips, worse on the left after long drives; the patient also reports stiffness in the "
    "upper back each morning that eases within an hour, tingling in the fingers of the left hand when typing, and "
    "headaches at the end of most working days since starting a new desk job in March.",
}
PHONE_TYPES = ("Mobile", "Home", "Work", "Fax", "Other")
REMINDER_TYPES = ("SMS & Email", "SMS", "None")
CONTENT_TYPES = (
    ("application/pdf", "pdf"),
    ("image/jpeg", "jpg"),
    ("image/png", "png"),
    ("text/plain", "txt"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
)
PARAGRAPHS = (
    "<p>Patient reports <b>lower back pain</b> after lifting.</p><p>Worse in the morning.<br>Eases with walking.</p>",
    "<p>Reviewed exercises.</p><ul><li>Bridges 3x10</li><li>Dead bugs 3x8</li></ul>",
    "<p><i>Improving</i> since last visit &amp; sleeping better.</p>",
    "<p>Referred to GP for imaging &lt;urgent&gt;.</p><blockquote>Pain 6/10</blockquote>",
)


def anchor_for(today: dt.date | None = None) -> dt.datetime:
    day = (today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=2)
    return dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC)


def ts(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def link(path: str) -> dict:
    return {"links": {"self": f"{BASE}{path}"}}


class IdMint:
    """One id space for the whole account: short legacy ids for rows created before the switch to
    64-bit ids, 19-digit snowflake-like ids after, as one real account mixes both."""

    def __init__(self, rng: random.Random, cutoff: dt.datetime) -> None:
        self.rng = rng
        self.cutoff = cutoff
        self.legacy = 10_000_000 + rng.randrange(1000)
        self.counter = 0

    def __call__(self, created: dt.datetime) -> int:
        self.counter += 1
        if created < self.cutoff:
            self.legacy += self.rng.randint(1, 9)
            return self.legacy
        ms = int(created.timestamp() * 1000) + self.rng.randrange(1000)
        return (ms << 22) | (self.counter & 0x3FFFFF)


class Generator:
    def __init__(self, seed: int, scale: str, anchor: dt.datetime) -> None:
        self.seed = seed
        self.scale = SCALES[scale]
        self.anchor = anchor
        self.start = anchor - dt.timedelta(days=6 * 365)
        self.rng = random.Random(seed)
        # The account's first two years predate 64-bit ids.
        self.mint = IdMint(random.Random(seed * 7919 + 1), self.start + dt.timedelta(days=730))
        self.notes_made = 0
        self.cancellations = 0
        self.ids_written = 0

    # -- helpers -----------------------------------------------------------------------------------
    def moment(self, lo: dt.datetime | None = None, hi: dt.datetime | None = None) -> dt.datetime:
        lo = lo or self.start
        hi = hi or (self.anchor - dt.timedelta(days=1))
        span = max(int((hi - lo).total_seconds()), 1)
        return lo + dt.timedelta(seconds=self.rng.randrange(span))

    def stamps(self, created: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
        created = created or self.moment()
        latest = self.anchor - dt.timedelta(days=1)
        updated = min(created + dt.timedelta(seconds=self.rng.randrange(60 * 86400)), latest)
        return created, max(updated, created)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def name(self) -> tuple[str, str]:
        return self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)

    def phone(self) -> str:
        return f"04{self.rng.randrange(10**8):08d}"

    def patient_phone(self) -> str:
        """Phone numbers as clinics type them: national, spaced, with the calling code but no "+" (as in
        Cliniko's own examples), international, and now and then free text."""
        digits = f"{self.rng.randrange(10**8):08d}"
        roll = self.rng.random()
        if roll < 0.4:
            return f"04{digits}"
        if roll < 0.6:
            return f"04{digits[:2]} {digits[2:5]} {digits[5:]}"
        if roll < 0.82:
            return f"614{digits}"
        if roll < 0.95:
            return f"+61 4{digits[:2]} {digits[2:5]} {digits[5:]}"
        return f"04{digits} (mum)" if roll < 0.99 else "ask at reception"

    def json_id(self, rid: int) -> int | str:
        """Ids are strings since Cliniko stringified them (64-bit ids do not fit every JSON reader); records
        of resources whose examples show JSON integers keep some integers, short legacy ids and long ones."""
        self.ids_written += 1
        return rid if self.ids_written % 4 == 1 else str(rid)

    def token(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # -- generation --------------------------------------------------------------------------------
    def build(self, path: Path) -> None:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.unlink(missing_ok=True)
        db = sqlite3.connect(tmp)
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        create_tables(db)
        self.db = db
        steps = (
            ("businesses", self.businesses),
            ("users", self.users),
            ("treatment_note_templates", self.templates),
            ("appointment_types", self.appointment_types),
            ("practitioners", self.practitioners),
            ("practitioner_reference_numbers", self.reference_numbers),
            ("daily_availabilities", self.daily_availabilities),
            ("contacts", self.contacts),
            ("patients", self.patients),
            ("patient_attachments", self.attachments),
            ("group_appointments", self.group_appointments),
        )
        for resource, produce in steps:
            self.insert(db, resource, produce())
        self.insert_appointments_and_notes(db)
        db.execute(f"UPDATE practitioners SET state = '{UNLISTED}' WHERE id = ?", (self.unlisted_practitioner,))
        store_settings(db, self.settings())
        create_indexes(db)
        db.commit()
        db.close()
        tmp.replace(path)

    def insert(self, db: sqlite3.Connection, resource: str, bodies: Iterator[dict]) -> None:
        batch: list[tuple] = []
        for body in bodies:
            batch.append(settled_row(resource, body))
            if len(batch) >= BATCH:
                db.executemany(INSERT_SQL[resource], batch)
                batch.clear()
        db.executemany(INSERT_SQL[resource], batch)

    def businesses(self) -> Iterator[dict]:
        """Open businesses, one archived, and one deleted that appointments still point at (listed nowhere,
        404 by id). Zones as ``ZONE_FIELDS`` says; in some accounts no business has one (only /settings)."""
        self.business_ids: list[int] = []
        self.account_zone = TIME_ZONES[0]
        self.settings_only = self.seed % 3 == 0
        n = self.scale.businesses + 2  # plus one archived and one deleted location
        names: set[str] = set()
        for i in range(n):
            fields = "none" if self.settings_only else ZONE_FIELDS[i % len(ZONE_FIELDS)]
            zone = self.account_zone if fields == "none" else TIME_ZONES[i % len(TIME_ZONES)]
            archived, deleted = i == n - 2, i == n - 1
            created, updated = self.stamps(self.moment(hi=self.start + dt.timedelta(days=400)))
            bid = self.mint(created)
            if not (archived or deleted):
                self.business_ids.append(bid)
            name = f"{zone[5]} Health Clinic"
            if name in names:
                name = f"{zone[5]} {BRANCHES[i % len(BRANCHES)]} Health Clinic"
            if name in names:
                name = f"{zone[5]} Health Clinic {i + 1}"
            names.add(name)
            body = self.business(bid, name, zone, fields, i)
            body.update(
                show_in_online_bookings=not (archived or deleted),
                archived_at=ts(self.moment(lo=updated)) if archived else None,
                deleted_at=ts(self.moment(lo=updated)) if deleted else None,
                created_at=ts(created),
                updated_at=ts(updated),
            )
            if deleted:
                self.deleted_business = bid
            yield body

    def business(self, bid: int, name: str, zone: tuple, fields: str, i: int) -> dict:
        label, identifier, state, code, country, city = zone
        return {
            "id": str(bid),
            "business_name": name,
            "display_name": None if i % 2 == 0 else name.removesuffix(" Clinic"),
            "label": name.removesuffix(" Clinic"),
            "address_1": f"{self.rng.randint(1, 300)} Main Street",
            "address_2": None if self.chance(0.5) else "Level 2",
            "city": city,
            "state": state,
            "post_code": f"{self.rng.randint(1000, 9999)}",
            "country": country,
            "country_code": code if i % 2 == 0 else None,
            "business_registration_name": "ABN" if code == "AU" else None,
            "business_registration_value": f"{self.rng.randrange(10**11):011d}" if code == "AU" else None,
            "contact_information": f"Phone {self.phone()}",
            "email_reply_to": f"reception.{city.lower()}{i}@clinic.example",
            "website_address": "https://clinic.example",
            "additional_information": None,
            "additional_invoice_information": None,
            "appointment_reminders_enabled": True,
            "appointment_type_ids": [],
            "time_zone": None if fields == "none" else label,
            "time_zone_identifier": identifier if fields == "both" else None,
            "practitioners": link(f"/businesses/{bid}/practitioners"),
            "appointments": link(f"/businesses/{bid}/appointments?page=1"),
            **link(f"/businesses/{bid}"),
        }

    def settings(self) -> dict:
        label, _, _, _, country, _ = self.account_zone
        return generated_settings(
            account_id=10_000 + self.seed, name=f"Clinic {self.seed}", country=country, time_zone=label,
            custom_fields=self.custom_fields_definition,
        )  # fmt: skip

    def user(self, uid: int, created: dt.datetime, first: str, last: str, role: str, active: bool) -> dict:
        _, updated = self.stamps(created)
        return {
            "id": self.json_id(uid),
            "title": self.rng.choice(("Dr", "Ms", "Mr", None)),
            "first_name": first,
            "last_name": last,
            "email": f"user{uid % 100000}@clinic.example",
            "role": role,
            "time_zone": "Melbourne",
            "user_active": active,
            "created_at": ts(created),
            "updated_at": ts(updated),
            **link(f"/users/{uid}"),
        }

    def users(self) -> Iterator[dict]:
        # Practitioners' users are minted here so every practitioner has a user, but not every user is one.
        self.staff_users: dict[str, int] = {}
        for role, active in (("administrator", True), ("receptionist", True), ("receptionist", False)):
            created = self.moment(hi=self.start + dt.timedelta(days=300))
            uid = self.mint(created)
            self.staff_users.setdefault(role if active else "inactive", uid)
            yield self.user(uid, created, *self.name(), role, active)
        self.practitioner_users: list[tuple[int, dt.datetime, str, str, bool]] = []
        n = self.scale.practitioners + 1  # the last one's practitioner is deleted: its links answer 404
        for i in range(n):
            created = self.moment()
            uid = self.mint(created)
            first, last = self.name()
            active = i < self.scale.practitioners - max(1, self.scale.practitioners // 5)
            self.practitioner_users.append((uid, created, first, last, active))
            yield self.user(uid, created, first, last, "practitioner", active)

    def practitioners(self) -> Iterator[dict]:
        """Active and inactive practitioners; the last active one is listed by no route (GET by id works),
        and one more is deleted (listed nowhere, 404 by id) while old appointments still point at it."""
        self.practitioner_ids: list[int] = []
        self.active_practitioner_ids: list[int] = []
        self.practitioner_names: dict[str, str] = {}
        for i, (uid, user_created, first, last, active) in enumerate(self.practitioner_users):
            created, updated = self.stamps(user_created + dt.timedelta(minutes=5))
            pid = self.mint(created)
            deleted = i == len(self.practitioner_users) - 1
            if deleted:
                self.missing_practitioner = pid
            else:
                self.practitioner_ids.append(pid)
            if active:
                self.active_practitioner_ids.append(pid)
                self.unlisted_practitioner = pid
            self.practitioner_names[str(pid)] = f"{first} {last}"
            body = self.practitioner(pid, uid, first, last, active, created, updated)
            if i % 3 == 1:
                body["display_name"] = None
            if deleted:
                body["deleted_at"] = ts(updated)
            yield body

    def practitioner(
        self, pid: int, uid: int, first: str, last: str, active: bool, created: dt.datetime, updated: dt.datetime
    ) -> dict:
        title = self.rng.choice(("Dr", None))
        default_type = self.individual_types[pid % len(self.individual_types)][0]
        return {
            "id": str(pid),
            "title": title,
            "first_name": first,
            "last_name": last,
            "display_name": f"{first} {last}",
            "label": " ".join(p for p in (title, first, last) if p),
            "designation": self.rng.choice(DESIGNATIONS),
            "description": None if self.chance(0.4) else "Special interest in sports injuries.",
            "show_in_online_bookings": active,
            "active": active,
            "created_at": ts(created),
            "updated_at": ts(updated),
            "user": link(f"/users/{uid}"),
            "default_appointment_type": link(f"/appointment_types/{default_type}"),
            "practitioner_reference_numbers": link(f"/practitioners/{pid}/practitioner_reference_numbers"),
            "appointment_types": link(f"/practitioners/{pid}/appointment_types"),
            "appointments": link(f"/practitioners/{pid}/appointments"),
            "invoices": link(f"/practitioners/{pid}/invoices"),
            **link(f"/practitioners/{pid}"),
        }

    def reference_numbers(self) -> Iterator[dict]:
        for pid in self.practitioner_ids:
            for bid in self.business_ids:
                created, updated = self.stamps()
                rid = self.mint(created)
                yield {
                    "id": self.json_id(rid),
                    "name": "Provider #",
                    "reference_number": f"{self.rng.randrange(10**6):06d}{self.rng.choice('ABCDEFHJK')}",
                    "created_at": ts(created),
                    "updated_at": ts(updated),
                    "business": link(f"/businesses/{bid}"),
                    "practitioner": link(f"/practitioners/{pid}"),
                    **link(f"/practitioner_reference_numbers/{rid}"),
                }

    def appointment_types(self) -> Iterator[dict]:
        """Individual and group types, two archived, and one deleted that appointments still point at
        (listed nowhere, 404 by id, as Cliniko does for deleted appointment types)."""
        self.individual_types: list[tuple[int, int]] = []
        self.group_types: list[tuple[int, int, int]] = []
        n = self.scale.appointment_types + 1
        for i in range(n):
            group = i % 3 == 2
            archived, deleted = i in (n - 2, n - 3), i == n - 1
            created, updated = self.stamps(self.moment(hi=self.start + dt.timedelta(days=200)))
            tid = self.mint(created)
            duration = self.rng.choice((15, 30, 45, 60)) if not group else 60
            max_attendees = self.rng.choice((4, 6, 8, 10)) if group else 1
            if deleted:
                self.deleted_type = (tid, duration)
            elif not archived:
                (
                    self.group_types.append((tid, duration, max_attendees))
                    if group
                    else self.individual_types.append((tid, duration))
                )
            name = "Group class" if group else self.rng.choice(("Initial consultation", "Follow up", "Review"))
            body = self.appointment_type(tid, f"{name} {i + 1}", group, duration, max_attendees)
            body.update(
                show_in_online_bookings=not (archived or deleted),
                archived_at=ts(self.moment(lo=updated)) if archived else None,
                created_at=ts(created),
                updated_at=ts(updated),
            )
            if deleted:
                body["deleted_at"] = ts(self.moment(lo=updated))
            yield body

    def appointment_type(self, tid: int, name: str, group: bool, duration: int, max_attendees: int) -> dict:
        billed = self.chance(0.6)
        return {
            "id": str(tid),
            "name": name,
            "category": "Group" if group else "Standard",
            "description": None,
            "color": self.rng.choice(("#3b82f6", "#10b981", "#f59e0b", "#f0f")),
            "duration_in_minutes": duration,
            "max_attendees": max_attendees,
            "telehealth_enabled": self.chance(0.3),
            "online_payments_enabled": False,
            "online_payments_mode": None,
            "online_bookings_lead_time_hours": self.rng.choice((0, 2, 24)),
            "add_deposit_to_account_credit": False,
            "deposit_price": None,
            "appointment_confirmation_template_ids": [],
            "appointment_reminder_template_ids": [],
            "billable_item": link(f"/billable_items/{self.rng.randint(1, 40)}") if billed else None,
            "product": link(f"/products/{self.rng.randint(1, 40)}") if billed and self.chance(0.3) else None,
            "treatment_note_template": (
                link(f"/treatment_note_templates/{self.rng.choice(self.template_ids)[0]}") if self.chance(0.5) else None
            ),
            "practitioners": link(f"/appointment_types/{tid}/practitioners"),
            "appointment_type_billable_items": link(f"/appointment_types/{tid}/billable_items"),
            "appointment_type_products": link(f"/appointment_types/{tid}/products"),
            **link(f"/appointment_types/{tid}"),
        }

    def daily_availabilities(self) -> Iterator[dict]:
        for pid in self.practitioner_ids:
            for bid in self.business_ids:
                if self.chance(0.4):
                    continue
                for day in range(1, 8):
                    if day >= 6 and self.chance(0.8):
                        continue
                    created, updated = self.stamps()
                    aid = self.mint(created)
                    start = self.rng.choice((7, 8, 9))
                    slots = [{"starts_at": f"{start:02d}:00", "ends_at": "13:00"}]
                    if self.chance(0.7):
                        slots.append({"starts_at": "14:00", "ends_at": f"{self.rng.choice((17, 18, 19))}:30"})
                    yield {
                        "id": self.json_id(aid),
                        "day_of_week": day,
                        "availabilities": slots,
                        "created_at": ts(created),
                        "updated_at": ts(updated),
                        "business": link(f"/businesses/{bid}"),
                        "practitioner": link(f"/practitioners/{pid}"),
                        **link(f"/daily_availabilities/{aid}"),
                    }

    def contacts(self) -> Iterator[dict]:
        self.doctor_ids: list[int] = []
        kinds = (("Doctor", 1), ("3rd Party Payer", 2), ("Standard", 0))
        for i in range(self.scale.contacts):
            kind, code = kinds[i % 3]
            created, updated = self.stamps()
            cid = self.mint(created)
            archived = i % 11 == 10
            if kind == "Doctor" and not archived:
                self.doctor_ids.append(cid)
            first, last = self.name()
            number = self.phone()
            yield {
                "id": self.json_id(cid),
                "title": "Dr" if kind == "Doctor" else None,
                "first_name": first,
                "last_name": last,
                "preferred_name": None,
                "company_name": "Allied Insurance" if kind == "3rd Party Payer" else None,
                "occupation": None,
                "email": None if self.chance(0.3) else f"contact{i}@example.org",
                "notes": None,
                "provider_number": f"{self.rng.randrange(10**6):06d}X" if kind == "Doctor" else None,
                "address_1": None,
                "address_2": None,
                "address_3": None,
                "city": "Melbourne",
                "state": "VIC",
                "post_code": "3000",
                "country": "Australia",
                "country_code": "AU",
                "phone_numbers": [{"number": number, "phone_type": "Work", "normalized_number": f"+61{number[1:]}"}],
                "type": kind,
                "type_code": code,
                "doctor_type": (("general_practitioner", "specialist")[i % 2] if kind == "Doctor" else None),
                "archived_at": ts(self.moment(lo=updated)) if archived else None,
                "deleted_at": None,
                "created_at": ts(created),
                "updated_at": ts(updated),
                **link(f"/contacts/{cid}"),
            }

    def templates(self) -> Iterator[dict]:
        self.template_ids: list[tuple[int, str, list]] = []
        for i in range(self.scale.templates):
            created, updated = self.stamps(self.moment(hi=self.start + dt.timedelta(days=500)))
            tid = self.mint(created)
            sections = [
                {
                    "name": "Subjective",
                    "description": "What the patient reports",
                    "questions": [
                        {"name": "Presenting complaint", "type": "text"},
                        {"name": "History", "type": "paragraph", "answer": "<p>No previous history.</p>"},
                    ],
                },
                {
                    "name": "Objective",
                    "questions": [
                        {
                            "name": "Areas assessed",
                            "type": "checkboxes",
                            "answers": [{"value": v} for v in ("Neck", "Back", "Shoulder", "Knee")],
                            "other": {"enabled": True},
                        },
                        {
                            "name": "Pain level",
                            "type": "radiobuttons",
                            "answers": [{"value": v} for v in ("Mild", "Moderate", "Severe")],
                        },
                        {"name": "Onset date", "type": "date"},
                    ],
                },
            ]
            name = ("Standard consultation", "Initial assessment", "Follow up", "Group session")[i % 4]
            deleted = i == self.scale.templates - 1
            if not deleted:
                self.template_ids.append((tid, name, sections))
            yield {
                "id": self.json_id(tid),
                "name": f"{name} v{i + 1}",
                "content": {"sections": sections},
                "print_settings": {
                    "include_patient_address": True,
                    "include_patient_dob": True,
                    "include_patient_medicare": self.chance(0.5),
                    "include_patient_occupation": False,
                    "include_patient_reference_number": None,
                    "title": f"{name} notes",
                },
                "deleted_at": ts(self.moment(lo=updated)) if deleted else None,
                "created_at": ts(created),
                "updated_at": ts(updated),
                **link(f"/treatment_note_templates/{tid}"),
            }

    def custom_fields_definition_for(self) -> dict:
        """The account's patient custom fields (``settings.patient_custom_fields_definition``), shaped like the
        documented example: a radiobuttons field with options and ``other``, a text field, checkboxes, a date."""
        option = lambda name: {"name": name, "token": self.token()}  # noqa: E731
        fields = [
            {"name": "Provider", "type": "radiobuttons", "other": {"enabled": True}, "token": self.token(),
             "options": [option("Great Insurance"), option("Super Insurance")]},
            {"name": "Policy number", "type": "text", "token": self.token()},
            {"name": "How did you hear about us", "type": "checkboxes", "other": {"enabled": True},
             "token": self.token(), "options": [option("Friend"), option("Doctor"), option("Online")]},
            {"name": "Last x-ray", "type": "date", "token": self.token()},
        ]  # fmt: skip
        return {"sections": [{"name": "Insurance coverage", "token": self.token(), "fields": fields}]}

    def custom_fields(self) -> dict:
        """One patient's answers to the account's custom fields, in Cliniko's patient ``custom_fields`` shape."""
        section = self.custom_fields_definition["sections"][0]
        answered = []
        for field in section["fields"]:
            item = {k: v for k, v in field.items() if k != "options"}
            if field["type"] in ("radiobuttons", "checkboxes"):
                other = self.chance(0.15)
                picked = set() if other else set(self.rng.sample(range(len(field["options"])), 1))
                item["options"] = [
                    {**o, "selected": True} if n in picked else dict(o) for n, o in enumerate(field["options"])
                ]
                item["other"] = (
                    {"enabled": True, "selected": True, "value": "Work cover"} if other else {"enabled": True}
                )
            elif field["type"] == "text" and self.chance(0.7):
                item["value"] = f"POL-{self.rng.randrange(10**6):06d}"
            elif field["type"] == "date" and self.chance(0.4):
                item["value"] = (self.anchor - dt.timedelta(days=self.rng.randint(30, 2000))).date().isoformat()
            answered.append(item)
        return {"sections": [{**{k: v for k, v in section.items() if k != "fields"}, "fields": answered}]}

    def patients(self) -> Iterator[dict]:
        self.custom_fields_definition = self.custom_fields_definition_for()
        # (id, label) of patients appointments may be booked for: not deleted, not merged away.
        self.patient_pool: list[tuple[int, str]] = []
        self.all_patient_ids: list[int] = []
        for i in range(self.scale.patients):
            created, updated = self.stamps()
            pid = self.mint(created)
            first, last = self.name()
            # A fixed pattern rather than dice, so even a tiny clinic has every patient state.
            roll = i % 25
            archived_at = deleted_at = merged_at = None
            merged_with = None
            if roll == 5:
                deleted_at = ts(self.moment(lo=updated))
            elif roll == 11:
                merged_at = ts(self.moment(lo=updated))
                archived_at = merged_at
                merged_with = self.rng.choice(self.patient_pool)[0]
            elif roll in (17, 23):
                archived_at = ts(self.moment(lo=updated))
            self.all_patient_ids.append(pid)
            if not (deleted_at or merged_at):
                self.patient_pool.append((pid, f"{first} {last}"))
            sparse = self.chance(0.15) and i % 331 != 29  # a patient with only the required fields filled in
            phones = (
                []
                if sparse
                else [
                    {
                        "phone_type": "Pager" if self.chance(0.01) else self.rng.choice(PHONE_TYPES),
                        "number": self.patient_phone(),
                    }
                    for _ in range(self.rng.randint(1, 3))
                ]
            )
            empty_stamp = "" if self.chance(0.05) else None  # old-doc style "" for an unset timestamp
            born = dt.date(1940, 1, 1) + dt.timedelta(days=self.rng.randrange(80 * 365))
            body = {
                "id": self.json_id(pid),
                "title": None if sparse else self.rng.choice(("Mr", "Ms", "Mrs", "Mx", "Dr")),
                "first_name": first,
                "last_name": last,
                "preferred_first_name": None if self.chance(0.8) else first[:3],
                "label": f"{first} {last}",
                "date_of_birth": None if sparse else born.isoformat(),
                "email": None if sparse else (f"patient{i} at mail" if i % 97 == 19 else f"patient{i}@mail.example"),
                "invoice_email": None,
                "address_1": None if sparse else f"{self.rng.randint(1, 999)} High Street",
                "address_2": LONG_ADDRESS if i % 331 == 29 else None,  # longer than Splose holds
                "address_3": None,
                "city": None if sparse else "Melbourne",
                "state": None if sparse else "VIC",
                "post_code": None if sparse else f"{self.rng.randint(3000, 3999)}",
                "country": None if sparse else "Australia",
                "country_code": None if sparse else "AU",
                "patient_phone_numbers": phones,
                "gender": None,
                "sex": None if sparse else self.rng.choice(("Female", "Male", "Intersex")),
                "gender_identity": None,
                "pronouns": None if self.chance(0.7) else {"accusative": "them", "nominative": "they"},
                "time_zone": None if sparse else "Australia/Melbourne",
                "accepted_privacy_policy": None if sparse else True,
                "accepted_email_marketing": self.chance(0.3),
                "accepted_sms_marketing": self.chance(0.3),
                "receives_confirmation_emails": True,
                "reminder_type": "Email" if self.chance(0.02) else self.rng.choice(REMINDER_TYPES),
                "medicare": None if self.chance(0.5) else f"{self.rng.randrange(10**10):010d}",
                "medicare_reference_number": None if self.chance(0.5) else str(self.rng.randint(1, 9)),
                "dva_card_number": None if self.chance(0.95) else f"N{self.rng.randrange(10**6):06d}",
                "occupation": None if sparse else self.rng.choice(("Teacher", "Nurse", "Builder", "Retired")),
                "emergency_contact": None,
                "notes": None,
                "appointment_notes": None,
                "old_reference_id": None if self.chance(0.7) else f"OLD-{i}",
                "referral_source": None,
                "invoice_default_to": None,
                "invoice_extra_information": None,
                "custom_fields": None if sparse or self.chance(0.6) else self.custom_fields(),
                "archived_at": archived_at or empty_stamp,
                "deleted_at": deleted_at or empty_stamp,
                "merged_at": merged_at,
                "merged_with_patient": link(f"/patients/{merged_with}") if merged_with else None,
                "concession_type": link(f"/concession_types/{self.rng.randint(1, 5)}") if self.chance(0.1) else None,
                "referring_doctor": (
                    link(f"/contacts/{self.rng.choice(self.doctor_ids)}")
                    if self.doctor_ids and self.chance(0.2)
                    else None
                ),
                "created_at": ts(created),
                "updated_at": ts(updated),
                "appointments": link(f"/patients/{pid}/appointments"),
                "invoices": link(f"/patients/{pid}/invoices"),
                "medical_alerts": link(f"/patients/{pid}/medical_alerts"),
                "attendees": link(f"/patients/{pid}/attendees"),
                "treatment_notes": link(f"/patients/{pid}/treatment_notes"),
                "patient_attachments": link(f"/patients/{pid}/patient_attachments"),
                **link(f"/patients/{pid}"),
            }
            if i % 20 == 13:
                # Older records lack fields added to the API later: clients must not require them.
                for key in ("preferred_first_name", "pronouns", "gender_identity", "custom_fields"):
                    del body[key]
            yield body

    def attachments(self) -> Iterator[dict]:
        n, big = self.scale.attachments, self.scale.big_attachments
        big_slots = set(random.Random(self.seed + 5).sample(range(n), big))
        for i in range(n):
            created, updated = self.stamps()
            aid = self.mint(created)
            content_type, ext = CONTENT_TYPES[i % len(CONTENT_TYPES)]
            if i in big_slots:
                content_type, ext = "application/pdf", "pdf"
                # Just over the 5 MB mark in tiny clinics (quick tests), up to 2 MB over in bigger ones.
                size = FIVE_MB + self.rng.randint(1, 256 * 1024 if self.scale.patients < 100 else 2 * 1024 * 1024)
            elif self.scale.patients < 100:
                size = self.rng.randint(1_000, 40_000)  # tiny clinics keep test downloads quick
            else:
                size = self.rng.randint(10_000, 200_000)
            archived = i % 13 == 3
            yield {
                "id": self.json_id(aid),
                "filename": f"document-{i + 1}.{ext}",
                "content_type": content_type,
                "size": size,
                "description": None if self.chance(0.5) else "Referral letter",
                "processing_completed": True,
                "processed_at": ts(created + dt.timedelta(seconds=20)),
                "pinned_at": None,
                "archived_at": ts(self.moment(lo=updated)) if archived else None,
                "created_at": ts(created),
                "updated_at": ts(updated),
                "content": link(f"/patient_attachments/{aid}/content"),
                "patient": link(f"/patients/{self.rng.choice(self.all_patient_ids)}"),
                "user": link(f"/users/{self.rng.choice(list(self.staff_users.values()))}"),
                **link(f"/patient_attachments/{aid}"),
            }

    def group_appointments(self) -> Iterator[dict]:
        # Attendees (and notes written for some of them) are produced alongside, flushed in batches.
        attendees: list[tuple] = []
        notes: list[tuple] = []
        previous: int | None = None  # the group made just before: the first of a series the next may repeat
        for i in range(self.scale.group_appointments):
            created, updated = self.stamps()
            gid = self.mint(created)
            # Series of two (a class booked again): the first of one is live, the first of the other deleted, so
            # a repeat of a deleted group is there too. Links only: nothing drawn, the rest of the clinic unchanged.
            heads = i % 9 in (1, 4) and i + 1 < self.scale.group_appointments
            repeated_from = previous if i % 9 in (2, 5) else None
            tid, duration, max_attendees = self.rng.choice(self.group_types)
            starts = self.moment(lo=created, hi=self.anchor + dt.timedelta(days=60))
            starts = starts.replace(minute=0, second=0)
            pid = self.rng.choice(self.active_practitioner_ids)
            bid = self.rng.choice(self.business_ids)
            deleted = i % 9 == 4
            archived = i % 9 == 7
            size = min(len(self.patient_pool), self.rng.randint(2, max_attendees))
            patients = self.rng.sample(self.patient_pool, size)
            current = []
            for patient_id, _label in patients:
                attendee = self.attendee(gid, patient_id, created, starts, deleted)
                if not attendee["cancelled_at"]:
                    current.append(str(patient_id))
                attendees.append(settled_row("attendees", attendee))
                if attendee["arrived"] and self.chance(0.1):
                    session = {
                        "id": str(gid),
                        "starts_at": ts(starts),
                        "ends_at": ts(starts + dt.timedelta(minutes=duration)),
                        "practitioner": link(f"/practitioners/{pid}"),
                        "patient": attendee["patient"],
                    }
                    note = self.treatment_note(session)
                    note["attendee"] = link(f"/attendees/{attendee['id']}")
                    notes.append(settled_row("treatment_notes", note))
            self.flush("attendees", attendees)
            self.flush("treatment_notes", notes)
            yield {
                "id": str(gid),
                "starts_at": ts(starts),
                "ends_at": ts(starts + dt.timedelta(minutes=duration)),
                "max_attendees": max_attendees,
                "notes": None if self.chance(0.6) else "Bring a mat.",
                "patient_ids": current,
                "repeat_rule": (
                    {"repeat_type": "Daily", "number_of_repeats": 1, "repeating_interval": 7} if heads else {}
                ),
                "repeats": link(f"/group_appointments?q[]=repeated_from_id:={gid}") if heads else None,
                "repeated_from": link(f"/group_appointments/{repeated_from}") if repeated_from else None,
                "telehealth_url": f"https://telehealth.example/g/{gid}",
                "archived_at": ts(self.moment(lo=updated)) if archived else None,
                "deleted_at": ts(self.moment(lo=updated)) if deleted else None,
                "created_at": ts(created),
                "updated_at": ts(updated),
                "appointment_type": link(f"/appointment_types/{tid}"),
                "business": link(f"/businesses/{bid}"),
                "practitioner": link(f"/practitioners/{pid}"),
                "attendees": link(f"/group_appointments/{gid}/attendees"),
                "conflicts": link(f"/group_appointments/{gid}/conflicts"),
                **link(f"/group_appointments/{gid}"),
            }
            previous = gid
        self.flush("attendees", attendees, final=True)
        self.flush("treatment_notes", notes, final=True)

    def attendee(self, booking: int, patient_id: int, created: dt.datetime, starts: dt.datetime, gone: bool) -> dict:
        created, updated = self.stamps(created + dt.timedelta(minutes=self.rng.randint(1, 600)))
        aid = self.mint(created)
        cancelled = self.chance(0.12)
        past = starts < self.anchor
        reason = self.rng.choice(list(CANCELLATION_REASONS))
        return {
            "id": self.json_id(aid),
            # Cliniko leaves "arrived" null until someone marks the attendee (its own example shows null).
            "arrived": (True if self.chance(0.8) else None if self.chance(0.5) else False)
            if past and not cancelled
            else None,
            "notes": None,
            "booking_ip_address": None,
            "cancellation_note": "Called to cancel" if cancelled else None,
            "cancellation_reason": reason if cancelled else None,
            "cancellation_reason_description": CANCELLATION_REASONS[reason] if cancelled else "",
            "cancellation_url": f"https://bookings.example/cancel/{aid}",
            "cancelled_at": ts(self.moment(lo=updated)) if cancelled else None,
            "email_reminder_sent": past,
            "sms_reminder_sent": past,
            "sent_email_reminders_count": int(past),
            "sent_sms_reminders_count": int(past),
            "invoice_status": None,
            "treatment_note_status": None,
            "online_booking_policy_accepted": None,
            "telehealth_url": f"https://telehealth.example/a/{aid}",
            "archived_at": None if gone or not self.chance(0.03) else ts(self.moment(lo=updated)),
            "deleted_at": ts(self.moment(lo=updated)) if gone else None,
            "created_at": ts(created),
            "updated_at": ts(updated),
            "booking": link(f"/bookings/{booking}"),
            "patient": link(f"/patients/{patient_id}"),
            "patient_case": None,
            "invoices": link(f"/attendees/{aid}/invoices"),
            **link(f"/attendees/{aid}"),
        }

    def arrived(self, could_have: bool) -> bool | None:
        """Cliniko leaves an attendee's ``arrived`` null until someone marks it (its own example shows null)."""
        if not could_have:
            return None
        return True if self.chance(0.8) else None if self.chance(0.5) else False

    def flush(self, resource: str, rows: list[tuple], final: bool = False) -> None:
        if rows and (final or len(rows) >= BATCH):
            self.db.executemany(INSERT_SQL[resource], rows)
            rows.clear()

    def insert_appointments_and_notes(self, db: sqlite3.Connection) -> None:
        notes: list[tuple] = []
        appts: list[tuple] = []
        arrived_guess = 0.55
        note_rate = min(1.0, self.scale.treatment_notes / max(1, self.scale.individual_appointments * arrived_guess))
        notes_left = self.scale.treatment_notes - self.notes_made
        repeat_from: tuple[int, int] | None = None  # (series head id, repeats left)
        for i in range(self.scale.individual_appointments):
            body = self.individual_appointment(i, repeat_from)
            aid = int(body["id"])
            if body["repeat_rule"]:
                repeat_from = (aid, body["repeat_rule"]["number_of_repeats"])
            elif repeat_from:
                repeat_from = (repeat_from[0], repeat_from[1] - 1) if repeat_from[1] > 1 else None
            appts.append(settled_row("individual_appointments", body))
            if body["patient_arrived"] and notes_left and self.chance(note_rate):
                notes_left -= 1
                notes.append(settled_row("treatment_notes", self.treatment_note(body)))
            if len(appts) >= BATCH:
                db.executemany(INSERT_SQL["individual_appointments"], appts)
                appts.clear()
            if len(notes) >= BATCH:
                db.executemany(INSERT_SQL["treatment_notes"], notes)
                notes.clear()
        db.executemany(INSERT_SQL["individual_appointments"], appts)
        db.executemany(INSERT_SQL["treatment_notes"], notes)

    def individual_appointment(self, i: int, repeat_from: tuple[int, int] | None) -> dict:
        created, updated = self.stamps()
        aid = self.mint(created)
        patient_id, patient_name = self.rng.choice(self.patient_pool)
        tid, duration = self.deleted_type if i % 67 == 5 else self.rng.choice(self.individual_types)
        future = self.chance(0.1)
        if future:
            starts = self.anchor + dt.timedelta(days=self.rng.randint(3, 120), hours=self.rng.randint(0, 8))
        else:
            starts = self.moment(lo=created, hi=self.anchor - dt.timedelta(days=1))
        starts = starts.replace(minute=self.rng.choice((0, 15, 30, 45)), second=0)
        roll = self.rng.random()
        cancelled = roll < 0.1
        did_not_arrive = not future and not cancelled and roll < 0.15
        arrived = not future and not cancelled and not did_not_arrive
        reason, description = UNKNOWN_CANCELLATION
        if cancelled:
            # Cycle through the reasons so even a tiny clinic has every code, plus the odd unknown one.
            self.cancellations += 1
            if self.cancellations % 25:
                reason, description = list(CANCELLATION_REASONS.items())[self.cancellations % len(CANCELLATION_REASONS)]
        deleted = i % 97 == 96
        archived = not deleted and i % 89 == 88
        repeats = repeat_from is None and not cancelled and self.chance(0.02)
        # A few old bookings of a practitioner and of a business Cliniko no longer has (their links 404).
        pid = self.missing_practitioner if i % 59 == 7 else self.rng.choice(self.active_practitioner_ids)
        bid = self.deleted_business if i % 53 == 3 else self.rng.choice(self.business_ids)
        invoice_status = self.rng.choice((10, 20, 20, 30, 40)) if arrived else None
        return {
            "id": str(aid),
            "starts_at": ts(starts),
            # Now and then one that ends as it starts (Cliniko allows appointment types of 0 to 1,440 minutes).
            "ends_at": ts(starts + dt.timedelta(minutes=0 if i % 211 == 13 else duration)),
            "patient_name": patient_name,
            "notes": None if self.chance(0.7) else "Prefers afternoon.",
            "did_not_arrive": did_not_arrive,
            "patient_arrived": arrived,
            "email_reminder_sent": not future,
            "sms_reminder_sent": not future and self.chance(0.5),
            "online_booking_policy_accepted": None,
            "booking_ip_address": None if self.chance(0.8) else f"203.0.113.{self.rng.randint(1, 254)}",
            "invoice_status": invoice_status,
            "treatment_note_status": None,
            "has_patient_appointment_notes": False,
            "telehealth_url": f"https://telehealth.example/p/{aid}",
            "cancelled_at": ts(self.moment(lo=updated)) if cancelled else None,
            "cancellation_reason": reason if cancelled else None,
            "cancellation_reason_description": description if cancelled else "",
            "cancellation_note": ("Rang the front desk" if self.chance(0.7) else None) if cancelled else None,
            "repeat_rule": (
                {"repeat_type": "Daily", "number_of_repeats": self.rng.randint(2, 4), "repeating_interval": 7}
                if repeats
                else {}
            ),
            "repeats": link(f"/individual_appointments?q[]=repeated_from_id:={aid}") if repeats else None,
            "repeated_from": link(f"/individual_appointments/{repeat_from[0]}") if repeat_from else None,
            "archived_at": ts(self.moment(lo=updated)) if archived else None,
            "deleted_at": ts(self.moment(lo=updated)) if deleted else None,
            "created_at": ts(created),
            "updated_at": ts(updated),
            "appointment_type": link(f"/appointment_types/{tid}"),
            "business": link(f"/businesses/{bid}"),
            "practitioner": link(f"/practitioners/{pid}"),
            "patient": link(f"/patients/{patient_id}"),
            "patient_case": None,
            "attendees": link(f"/individual_appointments/{aid}/attendees"),
            "conflicts": link(f"/individual_appointments/{aid}/conflicts"),
            **link(f"/individual_appointments/{aid}"),
        }

    def treatment_note(self, appointment: dict) -> dict:
        created = dt.datetime.strptime(appointment["ends_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        created = min(created, self.anchor - dt.timedelta(days=2))
        created, updated = self.stamps(created)
        nid = self.mint(created)
        tid, name, sections = self.rng.choice(self.template_ids)
        draft = self.chance(0.15)
        answered = []
        for section in sections:
            questions = []
            for q in section["questions"]:
                q = {"name": q["name"], "type": q["type"]}
                if q["type"] == "text":
                    q["answer"] = "Sore neck"
                elif q["type"] == "paragraph":
                    q["answer"] = self.rng.choice(PARAGRAPHS)
                elif q["type"] == "date":
                    q["answer"] = appointment["starts_at"][:10]
                else:
                    values = ("Neck", "Back", "Shoulder", "Knee") if q["type"] == "checkboxes" else ("Mild", "Moderate")
                    picked = self.rng.sample(values, 1 if q["type"] == "radiobuttons" else self.rng.randint(1, 2))
                    q["answers"] = [{"value": v, "selected": True} if v in picked else {"value": v} for v in values]
                    if q["type"] == "checkboxes":  # the templates' checkboxes take another answer, written in
                        other = OTHER_ANSWERS.get(self.notes_made % 40)
                        q["other"] = {"enabled": True, "selected": True, "value": other} if other else {"enabled": True}
                questions.append(q)
            answered.append({**{k: v for k, v in section.items() if k != "questions"}, "questions": questions})
        self.notes_made += 1
        archived, deleted = self.notes_made % 30 == 7, self.notes_made % 30 == 21
        practitioner = appointment["practitioner"]
        note = {
            "id": self.json_id(nid),
            "title": name,
            "draft": draft,
            "finalized_at": None if draft else ts(updated),
            "pinned_at": None,
            "archived_at": ts(updated) if archived else None,
            "deleted_at": ts(updated) if deleted else None,
            "author_name": self.practitioner_names[practitioner["links"]["self"].rsplit("/", 1)[-1]],
            "content": {"sections": answered},
            "created_at": ts(created),
            "updated_at": ts(updated),
            "patient": appointment["patient"],
            "practitioner": practitioner,
            "treatment_note_template": link(f"/treatment_note_templates/{tid}"),
            "booking": link(f"/bookings/{appointment['id']}"),
            "attendee": None,
            **link(f"/treatment_notes/{nid}"),
        }
        if self.notes_made % 10 == 4:
            # Written outside a booking (Cliniko's own example has no booking link): patient and practitioner only.
            del note["booking"], note["attendee"]
        return note


def individual_attendee(appointment: dict, attendee_id: int) -> dict:
    """The one attendee of an individual appointment, as a real account's ``/attendees`` holds it: the
    appointment's booking, patient, arrival, cancellation, archiving and deletion."""
    aid = appointment["id"]
    arrived = True if appointment.get("patient_arrived") else False if appointment.get("did_not_arrive") else None
    return {
        "id": str(attendee_id),
        "arrived": arrived,
        "notes": None,
        "booking_ip_address": appointment.get("booking_ip_address"),
        "cancellation_note": appointment.get("cancellation_note"),
        "cancellation_reason": appointment.get("cancellation_reason"),
        "cancellation_reason_description": appointment.get("cancellation_reason_description") or "",
        "cancellation_url": f"https://bookings.example/cancel/{attendee_id}",
        "cancelled_at": appointment.get("cancelled_at"),
        "email_reminder_sent": appointment.get("email_reminder_sent"),
        "sms_reminder_sent": appointment.get("sms_reminder_sent"),
        "sent_email_reminders_count": int(bool(appointment.get("email_reminder_sent"))),
        "sent_sms_reminders_count": int(bool(appointment.get("sms_reminder_sent"))),
        "invoice_status": appointment.get("invoice_status"),
        "treatment_note_status": None,
        "online_booking_policy_accepted": None,
        "telehealth_url": appointment.get("telehealth_url"),
        "archived_at": appointment.get("archived_at"),
        "deleted_at": appointment.get("deleted_at"),
        "created_at": appointment["created_at"],
        "updated_at": appointment["updated_at"],
        "booking": link(f"/bookings/{aid}"),
        "patient": appointment["patient"],
        "patient_case": None,
        "invoices": link(f"/attendees/{attendee_id}/invoices"),
        **link(f"/attendees/{attendee_id}"),
    }


def settled_row(resource: str, body: dict) -> tuple:
    """Archiving, deleting or cancelling a record touches it: ``updated_at`` is never older than those."""
    body["updated_at"] = max(
        body["updated_at"], *(body.get(k) or "" for k in ("archived_at", "deleted_at", "cancelled_at"))
    )
    return row_for(resource, body)


EXAMPLES = "examples"  # not generated: Cliniko's documented example records (see ``sandbox.cliniko.examples``)
SCALE_NAMES = (*SCALES, EXAMPLES)


def build_database(path: Path, seed: int, scale: str, anchor: dt.datetime | None = None) -> None:
    if scale == EXAMPLES:
        from sandbox.cliniko.examples import build_examples_database

        build_examples_database(path)
        return
    Generator(seed, scale, anchor or anchor_for()).build(path)


def cache_name(seed: int, scale: str, anchor: dt.datetime, version: str = "", month: str = "") -> str:
    """The cached database's file name; ``version``/``month`` override the current ones (e.g. ``*``)."""
    return f"clinic-v{version or GENERATOR_VERSION}-seed{seed}-{scale}-{month or f'{anchor:%Y%m}'}.sqlite"
