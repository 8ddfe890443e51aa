"""Tombstones of erased addresses: a keyed hash, never the address.

An erased customer's e-mail address and phone numbers are kept only as HMAC-SHA256 under the
service's `erasure_key` (a service secret, `auth/service_secrets.py`), of the address in one
normal form: the e-mail address lower-cased; a phone number (SMS and WhatsApp share it) in
E.164 without a `whatsapp:` prefix. Stored addresses are already normalised on the way in
(`events/schemas.py`, for identify and import alike), so hashing is cheap enough for every
send decision. Whoever brings the address back later (an import, an
identify, a new userId) finds its send refused, because every send decision looks here
(`load_permissions` → `refusal_reason`). Without the key, the table tells nobody which
addresses it holds.
"""

from __future__ import annotations

import hashlib
import hmac

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.storage.models import ErasedAddress
from orchestrator.storage.queries import any_of
from orchestrator.vocabulary import Channel, bare_number


def address_kind(channel: str) -> str:
    return "email" if channel == Channel.email else "phone"  # SMS and WhatsApp share the number


def address_hash(erasure_key: str | None, channel: str, address: str) -> str:
    """The tombstone key of `address` (already normalised, as stored) on `channel`."""
    if not erasure_key:  # never hash with a guessable fallback; the runtime fills it from the database
        raise ValueError("no erasure_key: build the settings with orchestrator.auth.service_secrets first")
    kind = address_kind(channel)
    normal = address.strip().lower() if kind == "email" else bare_number(address).strip()
    return hmac.new(erasure_key.encode(), f"{kind}:{normal}".encode(), hashlib.sha256).hexdigest()


async def erased_addresses(
    session: AsyncSession, erasure_key: str | None, addresses: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which of these (channel, address) pairs belong to an erased customer."""
    hashes = {pair: address_hash(erasure_key, *pair) for pair in addresses}
    wanted = set(hashes.values())
    if not wanted:
        return set()
    found = set(
        (
            await session.exec(
                select(ErasedAddress.address_hash).where(any_of(session, col(ErasedAddress.address_hash), wanted))
            )
        ).all()
    )
    return {pair for pair, h in hashes.items() if h in found}
