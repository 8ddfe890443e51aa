"""Frequency caps at the moment of sending: a claimed marketing message takes a slot of each
cap on its channel for the customer's current local day and week, or is skipped.

Runs in the transaction that claims the messages, before it commits, so a capped message is
never handed to a provider and a slot is held only by a message that was. The rule itself
(`orchestrator.policies.frequency.refusal`) ranks by priority, then due time, then id, and
counts the sends still queued ahead of this one, so the outcome does not depend on which
worker claims first. What makes it hold under races is the database: a slot's index is
unique per (customer, channel, period), and indexes stop below the cap. A worker whose slot
was taken meanwhile by another's commit gets nothing back from its insert, gives back what
else it took and decides that message again on what is now committed.

Transactional messages, and channels without a cap, never get here.

Slots are given back by the database: a trigger on `messages` (migration 0017) deletes a
message's slots when it ends `failed` or `skipped`, whatever wrote that (the dispatcher
recording the provider's refusal, the reconciler giving up, a status callback, an erasure or
a cancelled broadcast skipping a retry): a send that never went out does not count.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.clock import utc
from orchestrator.policies.frequency import REASON_PREFIX, Cap, Contender, FrequencyPolicy, period_start, refusal
from orchestrator.storage.models import Customer, FrequencyCapSlot, Message
from orchestrator.storage.queries import any_of, insert_many_returning
from orchestrator.vocabulary import MessageStatus

_MESSAGES = Message.__table__
_SLOTS = FrequencyCapSlot.__table__
_CUSTOMERS = Customer.__table__
_SLOT_KEY = ["customer_id", "channel", "period", "period_start", "slot"]
# A week's first local day is at most 6 days before today, and a local today at most a day
# before the UTC one: slots and pending sends further off belong to no current period.
_LOOK_BACK, _LOOK_AHEAD = timedelta(days=8), timedelta(days=8)
_KEPT = timedelta(days=15)  # slots older than any period that can still be read, with a margin
_MAX_ROUNDS = 20  # each lost race is another worker's committed slot; a cap is far smaller


class ClaimedSend(Protocol):
    id: int
    customer_id: int
    channel: str
    marketing: bool
    priority: int
    next_attempt_at: datetime | None


def _contender(message: ClaimedSend, now: datetime) -> Contender:
    return Contender(message.id, message.priority, utc(message.next_attempt_at) if message.next_attempt_at else now)


async def enforce_caps(
    session: AsyncSession, policy: FrequencyPolicy, claimed: list[ClaimedSend], now: datetime
) -> set[int]:
    """Take the cap slots of the claimed messages that may go; write the others `skipped`
    with their reason. Returns the ids of the skipped ones (not to be sent)."""
    undecided = [m for m in claimed if m.marketing and policy.for_channel(m.channel)]
    capped: dict[int, str] = {}
    for _ in range(_MAX_ROUNDS):
        if not undecided:
            break
        undecided = await _decide(session, policy, undecided, now, capped)
    for message in undecided:  # still racing after every round: sending could break the cap
        cap = policy.for_channel(message.channel)[0]
        capped[message.id] = f"{REASON_PREFIX} {cap} (still contended after {_MAX_ROUNDS} rounds)"
    if capped:
        await _skip(session, capped, now)
    return set(capped)


async def _decide(
    session: AsyncSession, policy: FrequencyPolicy, undecided: list[ClaimedSend], now: datetime, capped: dict
) -> list[ClaimedSend]:
    """One round: decide each message, insert the slots of those that may go. Returns the
    messages that lost a slot to a concurrent commit, to be decided again."""
    customers = {m.customer_id for m in undecided}
    channels = sorted({m.channel for m in undecided})
    connection = await session.connection()
    zones = dict(
        (
            await connection.execute(
                sa.select(_CUSTOMERS.c.id, _CUSTOMERS.c.timezone).where(any_of(session, _CUSTOMERS.c.id, customers))
            )
        ).all()
    )
    holders, used = await _holders(session, customers, channels, now)
    # A retry took its slots on its first attempt, at most hours ago: among these customers' recent slots.
    holding = {message_id for taken in holders.values() for message_id in taken}
    pending = await _pending(session, customers, channels, now)
    rows = []
    for message in sorted(undecided, key=lambda m: _contender(m, now).rank):
        if message.id in holding:
            continue
        zone = zones.get(message.customer_id)
        me = _contender(message, now)
        ahead = [p for p in pending[(message.customer_id, message.channel)] if p.rank < me.rank]
        periods = [(cap, period_start(cap.period, now, zone)) for cap in policy.for_channel(message.channel)]
        reason = None
        for cap, start in periods:
            in_period = [p for p in ahead if _in_period(cap, p, start, now, zone)]
            if reason := refusal(cap, holders[(message.customer_id, message.channel, cap.period, start)], in_period):
                break
        if reason:
            capped[message.id] = reason
            continue
        for cap, start in periods:
            key = (message.customer_id, message.channel, cap.period, start)
            rows.append(_slot_row(message, cap, start, _free_slot(used[key]), now))
            holders[key].append(message.id)
    lost = await _take(session, rows)
    again = [m for m in undecided if (m.customer_id, m.channel) in lost and m.id not in holding]
    for message in again:
        capped.pop(message.id, None)
    return again


def _in_period(cap: Cap, pending: Contender, start, now: datetime, zone: str | None) -> bool:
    """An overdue pending send competes for the current period, as it would go out now."""
    return period_start(cap.period, max(pending.due_at, now), zone) == start


def _slot_row(message: ClaimedSend, cap: Cap, start, slot: int, now: datetime) -> dict:
    return {
        "customer_id": message.customer_id,
        "channel": message.channel,
        "period": cap.period.value,
        "period_start": start,
        "slot": slot,
        "message_id": message.id,
        "priority": message.priority,
        "taken_at": now,
    }


async def _holders(
    session: AsyncSession, customers: set[int], channels: list[str], now: datetime
) -> tuple[defaultdict, defaultdict]:
    """(customer, channel, period, first day) → ids of the messages holding its slots, in slot
    order; and → the slot indexes they hold."""
    s = _SLOTS.c
    rows = await (await session.connection()).execute(
        sa.select(s.customer_id, s.channel, s.period, s.period_start, s.slot, s.message_id)
        .where(
            any_of(session, s.customer_id, customers),
            s.channel.in_(channels),
            s.period_start >= (now - _LOOK_BACK).date(),
        )
        .order_by(s.slot)
    )
    holders: defaultdict = defaultdict(list)
    used: defaultdict = defaultdict(set)
    for customer_id, channel, period, start, slot, message_id in rows:
        holders[(customer_id, channel, period, start)].append(message_id)
        used[(customer_id, channel, period, start)].add(slot)
    return holders, used


def _free_slot(used: set[int]) -> int:
    """The lowest index no message holds, taken at once. A slot given back (its send failed,
    see below) leaves a gap, so this is not simply how many are held; it is below the cap
    whenever fewer than the cap are held."""
    slot = next(index for index in range(len(used) + 1) if index not in used)
    used.add(slot)
    return slot


async def _pending(session: AsyncSession, customers: set[int], channels: list[str], now: datetime) -> defaultdict:
    """(customer, channel) → the marketing sends still queued for them within a week or so.

    Status and marketing are checked here, not in SQL: with `status = 'queued'` in the query
    PostgreSQL takes the dispatch index (status, due) and reads every queued message of
    everyone, each round, whenever its statistics are stale after a burst (bench/
    frequency_caps.py: 7x slower over 20,000 queued). By customer it reads a few rows each."""
    m = _MESSAGES.c
    rows = await (await session.connection()).execute(
        sa.select(m.id, m.customer_id, m.channel, m.priority, m.next_attempt_at, m.status, m.marketing).where(
            any_of(session, m.customer_id, customers),
            m.channel.in_(channels),
            m.next_attempt_at < now + _LOOK_AHEAD,
        )
    )
    pending: defaultdict = defaultdict(list)
    for message_id, customer_id, channel, priority, due, status, marketing in rows:
        if status == MessageStatus.queued and marketing:
            pending[(customer_id, channel)].append(Contender(message_id, priority, utc(due)))
    return pending


async def _take(session: AsyncSession, rows: list[dict]) -> set[tuple[int, str]]:
    """Insert the slot rows. Where a concurrent commit took a slot a message asked for, every
    message of that customer and channel gives back what it took this round: they are decided
    again together, so the lost race cannot hand the slot to a lower-ranked one. Returns those
    (customer, channel) pairs."""
    if not rows:
        return set()
    rows.sort(key=lambda r: tuple(r[k] for k in _SLOT_KEY))  # one lock order for every worker
    inserted = await insert_many_returning(session, FrequencyCapSlot, rows, _SLOT_KEY, FrequencyCapSlot.message_id)
    got = defaultdict(int)
    for message_id, _ in inserted:
        got[message_id] += 1
    for row in rows:
        got[row["message_id"]] -= 1  # 0 when it got every slot it asked for
    lost = {(r["customer_id"], r["channel"]) for r in rows if got[r["message_id"]] < 0}
    if lost:
        given_back = {r["message_id"] for r in rows if (r["customer_id"], r["channel"]) in lost}
        await (await session.connection()).execute(
            sa.delete(_SLOTS).where(any_of(session, _SLOTS.c.message_id, given_back))
        )
    return lost


async def _skip(session: AsyncSession, capped: dict[int, str], now: datetime) -> None:
    m = _MESSAGES.c
    await (await session.connection()).execute(
        sa.update(_MESSAGES)
        .where(m.id == sa.bindparam("message_id"))
        .values(
            status=MessageStatus.skipped,
            status_reason=sa.bindparam("reason"),
            sending_at=None,
            next_attempt_at=None,
            updated_at=now,
        ),
        [{"message_id": message_id, "reason": reason} for message_id, reason in capped.items()],
    )


async def purge_old_slots(session: AsyncSession, now: datetime) -> int:
    """Delete the slots of periods no decision reads any more (over two weeks old); returns how many."""
    result = await (await session.connection()).execute(
        sa.delete(_SLOTS).where(_SLOTS.c.period_start < (now - _KEPT).date())
    )
    return result.rowcount
