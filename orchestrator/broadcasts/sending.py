"""The worker's broadcast job: start broadcasts whose schedule arrived (state `sending` and
the snapshot, in one transaction), then turn due recipients into queued messages, a bounded
batch per transaction, and finish or pause them.

A recipient becomes a finished enrollment in the broadcast's journey (`as_journey`: holdout
group, goal window) and a message whose send key is `broadcast:<id>:<customer id>`; the
recipient is marked in the same transaction. A worker killed mid-batch leaves nothing
behind, and if two ever made the same recipient's message, the unique send key keeps one.
The existing dispatch, retry and reconcile paths send what is queued, with the consent,
suppression and rate checks every message gets.

Each broadcast's row is locked (`FOR UPDATE SKIP LOCKED` on PostgreSQL) while a worker
feeds it, so the rate cap is counted by one worker at a time; other workers skip to other
broadcasts or to dispatch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.broadcasts.as_journey import SEND_STEP, as_journey, broadcast_journey_id
from orchestrator.broadcasts.format import BroadcastFile
from orchestrator.broadcasts.snapshot import take_snapshot
from orchestrator.broadcasts.states import TransitionRefused, move
from orchestrator.channels.base import Channel
from orchestrator.customers.consent import load_permissions
from orchestrator.delivery.conversions import in_holdout
from orchestrator.engine.dispatch import ClaimedMessage, handoff_budget, insert_messages, send_claimed
from orchestrator.engine.messages import prepare_message
from orchestrator.engine.worker import DueEnrollment, customer_rows
from orchestrator.runtime import Runtime
from orchestrator.storage.broadcast_models import Broadcast, BroadcastRecipient
from orchestrator.storage.models import Enrollment, Message
from orchestrator.storage.queries import any_of, insert_many_returning, supports_skip_locked
from orchestrator.vocabulary import EnrollmentStatus, MessageStatus, SendKey

log = logging.getLogger("orchestrator.broadcasts")

broadcasts, recipients, messages = Broadcast.__table__, BroadcastRecipient.__table__, Message.__table__
RATE_WINDOW = timedelta(minutes=1)
# Batches per broadcast per round: enough to keep dispatch fed between rounds, bounded so one
# huge broadcast never keeps a worker from the others (or from stopping) for long.
MAX_BATCHES_PER_ROUND = 10
# The failure rate is that of the messages made in this window: it tells what the provider does
# now (an outage is not diluted by an hour of good sends), and counting it stays cheap on a
# million-recipient broadcast (an index range on (journey_id, created_at)).
FAILURE_WINDOW = timedelta(minutes=5)
SETTLED_OK = (MessageStatus.sent, MessageStatus.delivered, MessageStatus.read)
SETTLED_FAILED = (MessageStatus.failed, MessageStatus.undelivered)
UNSETTLED = (MessageStatus.queued, MessageStatus.sending)


@dataclass
class BroadcastRound:
    started: int = 0
    materialized: int = 0
    sent: int = 0  # handed to the provider by this round itself (`hand_off`)
    paused: int = 0
    finished: int = 0


async def advance_broadcasts(runtime: Runtime, hand_off: bool = False) -> BroadcastRound:
    """One round: start what is due, then batches of each sending broadcast.

    With `hand_off`, each batch writes its messages already claimed, as many as the
    channel's send-rate budget allows right now, and this round sends them as soon as the
    batch commits (the adapter's `max_concurrent_sends` at a time); only what the budget
    leaves over is queued for dispatch. The feeding worker sends while it feeds, and a
    handed-off message is written once as `sending`: no `queued` row for a dispatch claim to
    find and update. On a million-recipient broadcast that claim was most of the database's
    work (BENCHMARKS.md, "Broadcast").
    Without `hand_off` everything is queued, so a drain that follows decides frequency caps
    between these messages and journeys' sends due at the same moment (`WorkerLoop.run_due`)."""
    result = BroadcastRound()
    result.started = await start_due_broadcasts(runtime)
    async with runtime.sessions() as session:
        sending = (
            (await session.exec(sa.select(broadcasts.c.id).where(broadcasts.c.state == "sending"))).scalars().all()
        )
    for broadcast_id in sending:
        for batch in range(MAX_BATCHES_PER_ROUND):
            claim = await handoff_budget(runtime, runtime.settings.broadcast_batch_size) if hand_off else {}
            outcome, claimed = await feed_broadcast(runtime, broadcast_id, check_failures=batch == 0, claim=claim)
            result.sent += await send_claimed(runtime, claimed)
            result.paused += outcome == "paused"
            result.finished += outcome == "done"
            if not isinstance(outcome, int) or outcome == 0:
                break
            result.materialized += outcome
    return result


def _lock(session: AsyncSession, query: sa.Select) -> sa.Select:
    return query.with_for_update(skip_locked=True) if supports_skip_locked(session) else query


async def start_due_broadcasts(runtime: Runtime) -> int:
    now = runtime.clock.now()
    started = 0
    while True:
        async with runtime.sessions() as session, session.begin():
            b = broadcasts.c
            row = (
                await session.exec(
                    _lock(
                        session,
                        sa.select(b.id, b.source)
                        .where(b.state == "scheduled", b.starts_at <= now)
                        .order_by(b.starts_at)
                        .limit(1),
                    )
                )
            ).first()
            if row is None:
                return started
            await move(session, row.id, "start", now)
            count = await take_snapshot(session, row.id, BroadcastFile.model_validate(row.source))
            await session.exec(sa.update(broadcasts).where(b.id == row.id).values(snapshot_at=now, recipients=count))
            log.info("broadcast %s started: %d recipients in the snapshot", row.id, count)
            started += 1


async def failure_rate(session: AsyncSession, broadcast_id: str, now: datetime) -> tuple[int, int]:
    """(failed, settled) among the broadcast's messages made in the last FAILURE_WINDOW that
    reached a verdict."""
    m = messages.c
    row = (
        await session.exec(
            sa.select(
                sa.func.count().filter(m.status.in_(SETTLED_FAILED)),
                sa.func.count().filter(m.status.in_(SETTLED_OK + SETTLED_FAILED)),
            ).where(m.journey_id == broadcast_journey_id(broadcast_id), m.created_at > now - FAILURE_WINDOW)
        )
    ).one()
    return int(row[0]), int(row[1])


async def feed_broadcast(
    runtime: Runtime, broadcast_id: str, check_failures: bool = True, claim: Mapping[Channel, int] | None = None
) -> tuple[int | str | None, list[ClaimedMessage]]:
    """One batch of due recipients into messages; "paused" or "done" when it moved the
    broadcast instead; None when another worker holds it (or it is no longer sending).
    With the outcome, the messages written already claimed (up to `claim[channel]`), to be
    sent now that the transaction has committed."""
    now = runtime.clock.now()
    settings = runtime.settings
    async with runtime.sessions() as session, session.begin():
        b = broadcasts.c
        row = (
            await session.exec(
                _lock(session, sa.select(b.id, b.version, b.source).where(b.id == broadcast_id, b.state == "sending"))
            )
        ).first()
        if row is None:
            return None, []
        definition = BroadcastFile.model_validate(row.source)
        journey_id = broadcast_journey_id(broadcast_id)
        threshold = definition.pause_when_failure_rate_above
        if threshold is not None and check_failures:
            failed, settled = await failure_rate(session, broadcast_id, now)
            if settled >= definition.failure_rate_min_sends and failed / settled > threshold:
                reason = f"failure rate {failed}/{settled} above {threshold:g}"
                await move(session, broadcast_id, "pause", now, reason=reason)
                log.warning("broadcast %s paused: %s", broadcast_id, reason)
                return "paused", []
        budget = settings.broadcast_batch_size
        if definition.rate_limit_per_minute is not None:
            m = messages.c
            recent = (
                await session.exec(
                    sa.select(sa.func.count()).where(
                        m.journey_id == journey_id, m.step_id == SEND_STEP, m.created_at > now - RATE_WINDOW
                    )
                )
            ).scalar_one()
            budget = min(budget, definition.rate_limit_per_minute - recent)
            if budget <= 0:
                return 0, []
        r = recipients.c
        due = (
            (
                await session.exec(
                    sa.select(r.customer_id)
                    .where(r.broadcast_id == broadcast_id, r.materialized_at.is_(None), r.due_at <= now)
                    .order_by(r.due_at, r.customer_id)
                    .limit(budget)
                )
            )
            .scalars()
            .all()
        )
        if not due:
            return await _finish_if_settled(session, broadcast_id, now), []
        journey = runtime.catalog.version(journey_id, row.version)
        if journey is None:
            journey = as_journey(definition, row.version)
            runtime.catalog.add_compiled(journey)
        claimed = await _materialize(session, runtime, journey, definition, broadcast_id, list(due), now, claim or {})
        return len(due), claimed


async def _materialize(session, runtime, journey, definition, broadcast_id, customer_ids, now, claim):
    """The batch's enrollments, messages and recipient marks. Rows, not ORM objects, and one
    statement per table: at a broadcast's size, building and flushing ORM objects per
    recipient cost more than rendering the messages."""
    customers = await customer_rows(session, set(customer_ids))
    permissions = await load_permissions(session, customers.values(), runtime.settings.erasure_key)
    percent = journey.definition.holdout
    goal_deadline = now + definition.goal.within if definition.goal else None
    held = {cid: in_holdout(journey.id, customer.user_id, percent) for cid, customer in customers.items()}
    enrollment_rows = [
        dict(
            journey_id=journey.id,
            journey_version=journey.version,
            customer_id=cid,
            status=EnrollmentStatus.completed,
            entered_at=now,
            ended_at=now,
            exit_reason="broadcast sent",
            context={},
            holdout=held[cid],
            goal_deadline=goal_deadline,
        )
        for cid in customers
    ]
    ids = dict(await insert_many_returning(session, Enrollment, enrollment_rows, ["id"], Enrollment.customer_id))
    node = journey.nodes[SEND_STEP]
    rows = []
    for enrollment_row in enrollment_rows:
        cid = enrollment_row["customer_id"]
        enrollment = DueEnrollment(
            **{name: enrollment_row.get(name) for name in DueEnrollment.__slots__ if name != "id"}, id=ids[cid]
        )
        draft = prepare_message(
            runtime.templates,
            runtime.channels.provider_name,
            enrollment,
            customers[cid],
            node,
            now,
            permissions=permissions[cid],
            link_settings=runtime.settings,
            priority=journey.definition.priority,
        )
        draft.send_key = SendKey.broadcast(broadcast_id, cid)
        rows.append(draft.as_row())
    claimed = await insert_messages(session, runtime, rows, claim, now)
    r = recipients.c
    for holdout in (True, False):
        chosen = [cid for cid in customers if held[cid] is holdout]
        if chosen:
            await session.exec(
                sa.update(recipients)
                .where(r.broadcast_id == broadcast_id, any_of(session, r.customer_id, chosen))
                .values(materialized_at=now, holdout=holdout)
            )
    gone = set(customer_ids) - set(customers)  # deleted since the snapshot: nobody to send to
    if gone:
        await session.exec(
            sa.update(recipients)
            .where(r.broadcast_id == broadcast_id, any_of(session, r.customer_id, gone))
            .values(materialized_at=now)
        )
    return claimed


async def _finish_if_settled(session: AsyncSession, broadcast_id: str, now: datetime) -> str | int:
    """Done once every recipient is a message and none waits for dispatch."""
    r, m = recipients.c, messages.c
    waiting = (
        await session.exec(
            sa.select(r.customer_id).where(r.broadcast_id == broadcast_id, r.materialized_at.is_(None)).limit(1)
        )
    ).first()
    if waiting is not None:
        return 0
    unsettled = (
        await session.exec(
            sa.select(m.id).where(m.journey_id == broadcast_journey_id(broadcast_id), m.status.in_(UNSETTLED)).limit(1)
        )
    ).first()
    if unsettled is not None:
        return 0
    try:
        await move(session, broadcast_id, "finish", now)
    except TransitionRefused:
        return 0
    log.info("broadcast %s done", broadcast_id)
    return "done"
