"""API keys: create, list, revoke, and look one up by the key a request presents.

A key is 32 random bytes (256 bits) from `secrets`, shown once when created. The database
keeps only its SHA-256. A slow password hash (bcrypt, argon2) exists to make guessing
low-entropy passwords expensive; nobody can enumerate 2**256 keys however fast the hash
is, so a slow hash would buy nothing and cost ~100 ms of CPU on every request. A fast,
unsalted hash also lets a request find its key with one indexed lookup instead of trying
every stored salt.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.storage.auth_models import ApiKey

# `ingest` is a write-only role for the key that apps and CDPs embed to send events: the
# most widely copied key must not be able to read customers or act on messages. `site` is
# the key in a web page, public by design: it sends only from analytics.js's paths, where a
# call cannot change a customer's addresses or consent without proof (events/site_identity.py).
ROLES = ("admin", "marketer", "ops", "ingest", "site")
KEY_PREFIX = "orch_"
SHOWN_PREFIX_LENGTH = 12


class ApiKeyRefused(ValueError):
    """A key cannot be created or revoked as asked (unknown role, name taken, no such key)."""


@dataclass(frozen=True)
class NewKey:
    name: str
    role: str
    key: str  # the plaintext: only ever in this object, printed once


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(session: AsyncSession, name: str, role: str, now: datetime) -> NewKey:
    if role not in ROLES:
        raise ApiKeyRefused(f"unknown role '{role}': choose one of {', '.join(ROLES)}")
    name = name.strip()
    if not name:
        raise ApiKeyRefused("a key needs a name")
    if await active_key_named(session, name) is not None:
        raise ApiKeyRefused(f"an active key named '{name}' exists; revoke it first or pick another name")
    key = generate_key()
    session.add(
        ApiKey(name=name, role=role, key_hash=hash_key(key), key_prefix=key[:SHOWN_PREFIX_LENGTH], created_at=now)
    )
    await session.flush()
    return NewKey(name=name, role=role, key=key)


async def active_key_named(session: AsyncSession, name: str) -> ApiKey | None:
    return (await session.exec(select(ApiKey).where(ApiKey.name == name, col(ApiKey.revoked_at).is_(None)))).first()


async def revoke_key(session: AsyncSession, name: str, now: datetime) -> ApiKey:
    key = await active_key_named(session, name)
    if key is None:
        raise ApiKeyRefused(f"no active key named '{name}'")
    key.revoked_at = now
    return key


async def list_keys(session: AsyncSession, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey).order_by(col(ApiKey.created_at), col(ApiKey.id))
    if not include_revoked:
        query = query.where(col(ApiKey.revoked_at).is_(None))
    return list((await session.exec(query)).all())


async def find_active_key(session: AsyncSession, presented: str) -> ApiKey | None:
    """The unrevoked key whose hash matches, by the unique index on `key_hash`."""
    return (
        await session.exec(
            select(ApiKey).where(ApiKey.key_hash == hash_key(presented), col(ApiKey.revoked_at).is_(None))
        )
    ).first()


async def any_key_ever_created(session: AsyncSession) -> bool:
    """Revoked keys count: revoking the last key must not silently open the API."""
    return (await session.exec(select(ApiKey.id).limit(1))).first() is not None


class RecentLookups:
    """What one process learned from the `api_keys` table lately: which presented keys were
    valid (by hash, with their name and role) and whether no key existed at all. Entries
    last `seconds`; a key is checked in the database again after that, so revoking it, or
    creating the first key, takes effect within `seconds` everywhere."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._valid: dict[str, tuple[float, str, str]] = {}  # hash → (expires, name, role)
        self._open_until = 0.0

    def valid_key(self, presented: str) -> tuple[str, str] | None:
        entry = self._valid.get(hash_key(presented))
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1], entry[2]

    def remember_valid(self, presented: str, key: ApiKey) -> None:
        if self.seconds > 0:
            if len(self._valid) > 10_000:  # a process sees a handful of keys; never grow unbounded
                self._valid.clear()
            self._valid[hash_key(presented)] = (time.monotonic() + self.seconds, key.name, key.role)

    def known_open(self) -> bool:
        return self._open_until > time.monotonic()

    def remember_open(self) -> None:
        self._open_until = time.monotonic() + self.seconds
