"""Sandbox accounts: a generated clinic database, its shard, the API keys of its users, and its options.

Options: ``legacy_filters`` (an older account: the archived/cancelled filters that an older route stands
in for are ignored, see ``queries.py``), ``documented_filters`` (a filter on a field outside the
resource's documented filter list, or with an operator its documented type lacks, answers 400),
``no_older_routes`` (the ``/archived``, ``/cancelled`` and ``/deleted`` routes answer 404;
``q[]=deleted_at:...`` on the main list lists deleted rows; both in ``queries.py``),
``nested_reference_numbers`` (an account of Cliniko's older docs: ``/practitioner_reference_numbers`` answers
404, each practitioner's are listed at ``/practitioners/:id/practitioner_reference_numbers``), ``envelopes`` (how
its list envelopes deviate from the documented shape, see ``envelopes.py``), and a ``churn`` rule set at
run time (records deleted while lists are read). ``individual_attendees`` (on unless turned off): the
account's ``/attendees`` also holds one attendee per individual appointment (its booking's, its patient,
cancelled, archived and deleted with it, made and changed with it by ``mutate``), as a real account's does:
an individual appointment is a booking with one attendee. Off, ``/attendees`` holds the attendees of group
appointments only, as the generator makes them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.cliniko.envelopes import MODES
from sandbox.cliniko.generator import SCALE_NAMES, anchor_for, build_database, cache_name, individual_attendee
from sandbox.cliniko.queries import PageCache
from sandbox.cliniko.schema import INSERT_SQL, row_for

SHARD = re.compile(r"^[a-z]{2}\d{1,2}\Z")
ROLES = ("admin", "receptionist", "practitioner")
KEY_ROLES = {"admin": "administrator", "receptionist": "receptionist", "practitioner": "practitioner"}
NAME = re.compile(r"^[A-Za-z0-9_.]{1,64}\Z")
# Records removed without a trace (contacts, patient attachments): gone from every route, kept here only
# for the ground truth and the export.
REMOVED_DDL = "CREATE TABLE IF NOT EXISTS _removed (resource TEXT, id INTEGER, body TEXT, PRIMARY KEY (resource, id))"


@dataclass
class Churn:
    """Deletes records of one resource while its list is read: every ``every``-th list request on
    ``/v1/<resource>`` first deletes the ``deletes`` oldest live records (by id), until ``limit`` are gone, and
    with each deletion creates ``creates`` records (newest ids: the count of the list can stay as it was)."""

    resource: str
    every: int
    deletes: int
    limit: int
    creates: int = 0
    requests: int = 0
    deleted: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)


def make_key(name: str, seed: int, role: str) -> str:
    """A bare key that looks like Cliniko's: long base64url text, deterministic from name, seed and role.

    ``-`` is swapped out so the shard suffix is always the text after the only ``-``.
    """
    digest = hashlib.sha512(f"cliniko-sandbox:{name}:{seed}:{role}".encode()).digest()[:48]
    return base64.urlsafe_b64encode(digest).decode().replace("-", "x")


def other_shard(shard: str) -> str:
    return "uk1" if shard != "uk1" else "au1"


@dataclass
class Account:
    name: str
    seed: int
    scale: str
    shard: str
    db_path: Path
    users: dict[str, int] = field(default_factory=dict)  # role -> user id of that key's user
    legacy_filters: bool = False
    documented_filters: bool = False
    no_older_routes: bool = False
    nested_reference_numbers: bool = False
    individual_attendees: bool = True  # as real accounts: see the module's docstring
    envelopes: str = "realistic"
    churn: Churn | None = None
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)
    # Ordered id lists of big list queries; every write must call ``page_cache.changed()`` once committed.
    page_cache: PageCache = field(default_factory=PageCache)

    def key(self, role: str) -> str:
        return make_key(self.name, self.seed, role)

    def keys(self) -> dict[str, str]:
        keys = {role: f"{self.key(role)}-{self.shard}" for role in ROLES}
        keys["other_shard"] = f"{self.key('admin')}-{other_shard(self.shard)}"
        keys["revoked"] = f"{self.key('revoked')}-{self.shard}"
        return keys

    def describe(self) -> dict:
        return {
            "name": self.name,
            "shard": self.shard,
            "seed": self.seed,
            "scale": self.scale,
            "keys": self.keys(),
            "legacy_filters": self.legacy_filters,
            "documented_filters": self.documented_filters,
            "no_older_routes": self.no_older_routes,
            "nested_reference_numbers": self.nested_reference_numbers,
            "individual_attendees": self.individual_attendees,
            "envelopes": self.envelopes,
        }

    def db(self) -> sqlite3.Connection:
        """This thread's connection (server handlers run in a thread pool)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connect()
            self._local.conn = conn
        return conn

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        # Reads through a shared memory map rather than read() calls and a private copy per connection.
        conn.execute("PRAGMA mmap_size=8589934592")
        return conn


def parse_account_spec(spec: str, default_shard: str) -> tuple[str, int, str, str]:
    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise ValueError(f"--account {spec!r}: expected NAME:SEED:SCALE[:SHARD]")
    name, seed, scale = parts[:3]
    shard = parts[3] if len(parts) == 4 else default_shard
    validate(name, scale, shard)
    return name, int(seed), scale, shard


def validate(name: str, scale: str, shard: str, envelopes: str = "realistic") -> None:
    if envelopes not in MODES:
        raise ValueError(f"envelopes {envelopes!r} must be one of {', '.join(MODES)}")
    if not NAME.match(name):
        raise ValueError(f"account name {name!r} must match {NAME.pattern}")
    if scale not in SCALE_NAMES:
        raise ValueError(f"scale {scale!r} must be one of {', '.join(SCALE_NAMES)}")
    if not SHARD.match(shard):
        raise ValueError(f"shard {shard!r} must match {SHARD.pattern}")


def open_account(
    name: str,
    seed: int,
    scale: str,
    shard: str,
    data_dir: Path,
    cache_dir: Path,
    *,
    legacy_filters: bool = False,
    documented_filters: bool = False,
    no_older_routes: bool = False,
    nested_reference_numbers: bool = False,
    individual_attendees: bool = True,
    envelopes: str = "realistic",
) -> Account:
    """Copy the pristine clinic for (seed, scale) from the cache into the data dir, generating it once."""
    anchor = anchor_for()
    cached = cache_dir / cache_name(seed, scale, anchor)
    if not cached.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        build_database(cached, seed, scale, anchor)
        # Older generator versions or months of the same clinic are dead weight (gigabytes for large).
        for old in cache_dir.glob(cache_name(seed, scale, anchor, version="*", month="*")):
            if old != cached:
                old.unlink(missing_ok=True)
    db_path = data_dir / f"{name}.sqlite"
    for stale in (Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        stale.unlink(missing_ok=True)  # a previous run's journal would corrupt the fresh copy
    shutil.copyfile(cached, db_path)
    account = Account(
        name,
        seed,
        scale,
        shard,
        db_path,
        legacy_filters=legacy_filters,
        documented_filters=documented_filters,
        no_older_routes=no_older_routes,
        nested_reference_numbers=nested_reference_numbers,
        individual_attendees=individual_attendees,
        envelopes=envelopes,
    )
    conn = account.connect()
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(REMOVED_DDL)
    if individual_attendees:
        add_individual_attendees(conn)
    account.users = _key_users(conn)
    conn.close()
    return account


def add_individual_attendees(conn: sqlite3.Connection) -> None:
    """One attendee per individual appointment (see the module's ``individual_attendees``), ids after the
    appointment's own and clear of the group appointments' attendees."""
    taken = {row[0] for row in conn.execute("SELECT id FROM attendees")}
    rows = []
    for (body,) in conn.execute("SELECT body FROM individual_appointments ORDER BY id"):
        appointment = json.loads(body)
        attendee_id = int(appointment["id"]) + 1
        while attendee_id in taken:
            attendee_id += 1
        taken.add(attendee_id)
        rows.append(row_for("attendees", individual_attendee(appointment, attendee_id)))
    conn.execute("BEGIN")
    conn.executemany(INSERT_SQL["attendees"], rows)
    conn.execute("COMMIT")


def _key_users(conn: sqlite3.Connection) -> dict[str, int]:
    """The user behind each role's key; a role no active user has (the docs' example account) has no key."""
    found = {}
    for role, cliniko_role in (
        ("admin", "administrator"),
        ("receptionist", "receptionist"),
        ("practitioner", "practitioner"),
    ):
        row = conn.execute(
            "SELECT id FROM users WHERE json_extract(body, '$.role') = ? AND state = 'active' ORDER BY id LIMIT 1",
            (cliniko_role,),
        ).fetchone()
        if row:
            found[role] = row[0]
    return found
