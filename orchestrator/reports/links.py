"""Share links: a read-only view of one report that opens without a login.

A link is `/r/<id>.<secret>.<signature>`: a random 128-bit secret (the database keeps only its
SHA-256) and an HMAC-SHA256 of the id and secret under `secret_key`, so a link cannot be
guessed, forged or altered. It expires (`expires_at`) and can be revoked; both are checked on
every view, and the view is computed then, so it always shows live figures.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.clock import utc
from orchestrator.storage.report_models import ReportLink

MAX_DAYS = 365


class LinkRefused(ValueError):
    pass


def _signature(secret_key: str, link_id: int, secret: str) -> str:
    return hmac.new(secret_key.encode(), f"report-link:{link_id}:{secret}".encode(), hashlib.sha256).hexdigest()[:32]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_link(
    session: AsyncSession,
    secret_key: str,
    report_id: str,
    *,
    expires_in_days: int,
    window_days: int,
    created_by: str | None,
    now: datetime,
) -> tuple[ReportLink, str]:
    """The link row and its path (shown once: only the secret's hash is kept)."""
    if not 1 <= expires_in_days <= MAX_DAYS or not 1 <= window_days <= MAX_DAYS:
        raise LinkRefused(f"expires_in_days and window_days are from 1 to {MAX_DAYS}")
    secret = secrets.token_urlsafe(16)
    link = ReportLink(
        report_id=report_id,
        secret_hash=_hash(secret),
        window_days=window_days,
        created_by=created_by,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days),
        options={},
    )
    session.add(link)
    await session.flush()
    return link, f"/r/{link.id}.{secret}.{_signature(secret_key, link.id, secret)}"


async def open_link(session: AsyncSession, secret_key: str, token: str, now: datetime) -> ReportLink:
    """The link a token names, if it is genuine, not expired and not revoked."""
    try:
        raw_id, secret, signature = token.split(".")
        link_id = int(raw_id)
    except ValueError:
        raise LinkRefused("not a report link") from None
    if not hmac.compare_digest(signature, _signature(secret_key, link_id, secret)):
        raise LinkRefused("not a report link")
    link = await session.get(ReportLink, link_id)
    if link is None or not hmac.compare_digest(link.secret_hash, _hash(secret)):
        raise LinkRefused("not a report link")
    if link.revoked_at is not None:
        raise LinkRefused("this link was revoked")
    if utc(link.expires_at) <= now:
        raise LinkRefused("this link has expired")
    return link


async def list_links(session: AsyncSession, report_id: str) -> list[ReportLink]:
    return list(
        (
            await session.exec(
                select(ReportLink).where(ReportLink.report_id == report_id).order_by(col(ReportLink.id).desc())
            )
        ).all()
    )


async def revoke_link(session: AsyncSession, link_id: int, now: datetime) -> ReportLink:
    link = await session.get(ReportLink, link_id)
    if link is None:
        raise LinkRefused(f"no report link {link_id}")
    if link.revoked_at is None:
        link.revoked_at = now
    return link
