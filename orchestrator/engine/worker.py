"""Advance due enrollments: claim them, run their steps, write the messages they send.

On PostgreSQL many workers claim with `FOR UPDATE SKIP LOCKED`, so each due enrollment is
advanced by exactly one of them; on SQLite there is one worker. Messages are inserted with
`ON CONFLICT (send_key) DO NOTHING`: even if a step ran twice, it could not send twice.
The worker's loop sends a first share of the new messages itself: they are written already
claimed (`sending`) in the same transaction, so nothing has to find and claim them again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.channels.base import Channel
from orchestrator.clock import utc
from orchestrator.customers.consent import SendPermissions, load_permissions
from orchestrator.engine.dispatch import ClaimedMessage, insert_messages
from orchestrator.engine.facts import facts_for
from orchestrator.engine.interpreter import advance, resume_after_timeout
from orchestrator.engine.messages import prepare_message
from orchestrator.engine.rules import end_enrollment
from orchestrator.journeys.live import load_missing_version, refresh_catalog
from orchestrator.runtime import Runtime
from orchestrator.storage.models import Customer, Enrollment, Event
from orchestrator.storage.queries import (
    any_of,
    claim_in_index_order,
    supports_skip_locked,
    update_many,
)
from orchestrator.templating.render import describe_error
from orchestrator.vocabulary import EnrollmentStatus

log = logging.getLogger("orchestrator.worker")

# Let the event loop serve others after this much synchronous advancing (a normal round of
# 200 enrollments takes a few milliseconds and never yields).
_YIELD_AFTER_SECONDS = 0.02

_PROGRESS_COLUMNS = (
    "status",
    "cursor",
    "waiting_for",
    "due_at",
    "exit_reason",
    "ended_at",
    "held_by",
    "held_at",
    "held_until",
)


@dataclass(slots=True)
class DueEnrollment:
    """An enrollment row as the worker advances it: plain attributes, no ORM state. Loading
    hundreds of rows per claim as ORM objects cost more than advancing them."""

    id: int
    journey_id: str
    journey_version: str
    customer_id: int
    status: str
    cursor: str | None
    waiting_for: str | None
    due_at: datetime | None
    entered_at: datetime
    ended_at: datetime | None
    exit_reason: str | None
    trigger_event_id: int | None
    context: dict[str, Any]
    holdout: bool
    held_by: str | None
    held_at: datetime | None
    held_until: datetime | None


_ENROLLMENTS = Enrollment.__table__
_DUE_COLUMNS = tuple(_ENROLLMENTS.c[name] for name in DueEnrollment.__slots__)
_CUSTOMERS = Customer.__table__


async def run_due_enrollments(runtime: Runtime, limit: int | None = None) -> int:
    """Advance up to `limit` due enrollments in one transaction, queueing the messages they
    produce for dispatch; returns how many were advanced."""
    advanced, _ = await advance_due_enrollments(runtime, limit)
    return advanced


async def advance_due_enrollments(
    runtime: Runtime, limit: int | None = None, claim: Mapping[Channel, int] | None = None
) -> tuple[int, list[ClaimedMessage]]:
    """Advance up to `limit` due enrollments in one transaction; returns how many, and the
    messages written already claimed.

    Up to `claim[channel]` of the new messages are written `sending` rather than `queued`,
    for this worker to send as soon as the transaction commits: the same commit-before-send
    as a dispatch claim, without a second statement to find and update each row. A message
    whose send key already existed is not returned, so it is never sent twice."""
    await refresh_catalog(runtime)
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        query = (
            sa.select(*_DUE_COLUMNS)
            .where(_ENROLLMENTS.c.status == EnrollmentStatus.active, _ENROLLMENTS.c.due_at <= now)
            .order_by(_ENROLLMENTS.c.due_at)
            .limit(limit or runtime.settings.worker_batch_size)
        )
        if supports_skip_locked(session):
            query = query.with_for_update(skip_locked=True)
            await claim_in_index_order(session)
        connection = await session.connection()
        enrollments = [DueEnrollment(*row) for row in await connection.execute(query)]
        if not enrollments:
            return 0, []
        for journey_id, version in {(e.journey_id, e.journey_version) for e in enrollments}:
            if runtime.catalog.version(journey_id, version) is None:
                await load_missing_version(runtime, journey_id, version)
        customers = await customer_rows(session, {e.customer_id for e in enrollments})
        history = await _events_since_entry(session, enrollments)
        permissions = await load_permissions(session, customers.values(), runtime.settings.erasure_key)
        messages: list[dict] = []
        last_yield = time.perf_counter()
        for enrollment in enrollments:
            customer_id = enrollment.customer_id
            messages += _advance_one(
                runtime, enrollment, customers[customer_id], history[enrollment.id], permissions[customer_id], now
            )
            if time.perf_counter() - last_yield > _YIELD_AFTER_SECONDS:
                # Rendering is synchronous, and `serve` runs the API on this event loop: a
                # round of templates running into their render budget must not starve it.
                await asyncio.sleep(0)
                last_yield = time.perf_counter()
        claimed = await insert_messages(session, runtime, messages, claim or {}, now)
        await update_many(
            session,
            _ENROLLMENTS,
            "id",
            [{"id": e.id, **{name: getattr(e, name) for name in _PROGRESS_COLUMNS}} for e in enrollments],
        )
    return len(enrollments), claimed


def _advance_one(
    runtime: Runtime, enrollment: DueEnrollment, customer: sa.Row, history: set[str], permissions: SendPermissions, now
) -> list[dict]:
    """Advance one enrollment in memory; returns the message rows its send steps produced."""
    journey = runtime.catalog.version(enrollment.journey_id, enrollment.journey_version)
    if journey is None:
        end_enrollment(
            enrollment, EnrollmentStatus.failed, f"journey version {enrollment.journey_version} is not loaded", now
        )
        return []
    try:
        cursor = enrollment.cursor
        if enrollment.waiting_for is not None:  # due while waiting for an event: it timed out
            cursor = resume_after_timeout(journey, cursor)
        # Waits count from when this step was due, not from when a busy worker got to it.
        scheduled = min(utc(enrollment.due_at), now) if enrollment.due_at else now
        facts = facts_for(customer, enrollment, history, permissions)
        facts.journey_paused = journey.id in runtime.catalog.paused
        result = advance(journey, cursor, facts, scheduled)
        # A template's own errors fail only its message (see prepare_message); anything
        # else that goes wrong preparing one fails this enrollment, never the round.
        messages = [
            prepare_message(
                runtime.templates,
                runtime.channels.provider_name,
                enrollment,
                customer,
                node,
                now,
                permissions=permissions,
                link_settings=runtime.settings,
                priority=journey.definition.priority,
            )
            for node in result.sends
        ]
    except Exception as error:  # e.g. a condition that cannot be evaluated: this enrollment only
        log.exception("enrollment %s failed", enrollment.id)
        end_enrollment(enrollment, EnrollmentStatus.failed, describe_error(error), now)
        return []
    enrollment.cursor, enrollment.waiting_for, enrollment.due_at = result.cursor, result.waiting_for, result.due_at
    if result.held_by:
        enrollment.held_by, enrollment.held_at, enrollment.held_until = result.held_by, scheduled, result.due_at
    if result.status != EnrollmentStatus.active:
        end_enrollment(enrollment, result.status, result.exit_reason, now)
    return [m.as_row() for m in messages]


async def customer_rows(session: AsyncSession, ids: set[int]) -> dict[int, sa.Row]:
    """Read-only rows with the attribute names of `Customer`: what rendering and consent
    checks read, at a fraction of the cost of loading ORM objects."""
    connection = await session.connection()
    rows = await connection.execute(sa.select(_CUSTOMERS).where(any_of(session, _CUSTOMERS.c.id, ids)))
    return {c.id: c for c in rows}


async def _events_since_entry(session: AsyncSession, enrollments: list[DueEnrollment]) -> dict[int, set[str]]:
    """Names of the track events each customer sent since entering, trigger excluded."""
    earliest = min(utc(e.entered_at) for e in enrollments)
    rows = (
        await session.exec(
            select(Event.id, Event.customer_id, Event.name, Event.received_at).where(
                any_of(session, col(Event.customer_id), {e.customer_id for e in enrollments}),
                Event.type == "track",
                col(Event.received_at) >= earliest,
            )
        )
    ).all()
    by_customer = defaultdict(list)
    for row in rows:
        by_customer[row.customer_id].append(row)
    return {
        e.id: {
            r.name
            for r in by_customer[e.customer_id]
            if utc(r.received_at) >= utc(e.entered_at) and r.id != e.trigger_event_id
        }
        for e in enrollments
    }
