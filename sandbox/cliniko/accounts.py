"""Sandbox accounts: a generated clinic database, its shard and the API keys of its users."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.cliniko.generator import SCALE_NAMES, anchor_for, build_database, cache_name
from sandbox.cliniko.queries import PageCache

SHARD = re.compile(r"^[a-z]{2}\d{1,2}$")
ROLES = ("admin", "receptionist", "practitioner")
KEY_ROLES = {"admin": "administrator", "receptionist": "receptionist", "practitioner": "practitioner"}
NAME = re.compile(r"^[A-Za-z0-9_.]{1,64}$")


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
        return {"name": self.name, "shard": self.shard, "seed": self.seed, "scale": self.scale, "keys": self.keys()}

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


def validate(name: str, scale: str, shard: str) -> None:
    if not NAME.match(name):
        raise ValueError(f"account name {name!r} must match {NAME.pattern}")
    if scale not in SCALE_NAMES:
        raise ValueError(f"scale {scale!r} must be one of {', '.join(SCALE_NAMES)}")
    if not SHARD.match(shard):
        raise ValueError(f"shard {shard!r} must match {SHARD.pattern}")


def open_account(name: str, seed: int, scale: str, shard: str, data_dir: Path, cache_dir: Path) -> Account:
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
    account = Account(name, seed, scale, shard, db_path)
    conn = account.connect()
    conn.execute("PRAGMA journal_mode=WAL")
    account.users = _key_users(conn)
    conn.close()
    return account


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
