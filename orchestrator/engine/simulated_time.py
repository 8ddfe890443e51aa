"""Simulated time that behaves like real time, only faster.

A jump of the clock is walked through the due times inside it: the clock stops at each
moment an enrollment, a queued message, a broadcast's start or a broadcast recipient
becomes due, and the work due then is done then,
so every row carries the time it was due (an SMS due at 13:00 is stamped 13:00, not with the
end of a three-day jump), and per-day KPIs count it on its day.

Where simulated time stands is kept in the database: a restarted service resumes it rather
than falling back to the wall clock behind rows already stamped in the simulated future.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlmodel import col, func, select

from orchestrator.clock import SimulatedClock, utc
from orchestrator.runtime import Runtime
from orchestrator.storage.broadcast_models import Broadcast, BroadcastRecipient
from orchestrator.storage.models import Enrollment, Message, SimulatedTime
from orchestrator.storage.queries import insert_ignoring_conflict
from orchestrator.vocabulary import EnrollmentStatus, MessageStatus


async def resume_simulated_time(runtime: Runtime) -> None:
    """Move a simulated clock to where the database says simulated time stood, if later."""
    clock = runtime.clock
    if not isinstance(clock, SimulatedClock):
        return
    async with runtime.sessions() as session:
        stored = (await session.exec(select(SimulatedTime.now).where(SimulatedTime.id == 1))).first()
    if stored is not None and utc(stored) > clock.now():
        clock.set(utc(stored))


async def save_simulated_time(runtime: Runtime) -> None:
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        await insert_ignoring_conflict(session, SimulatedTime, dict(id=1, now=now), ["id"])
        row = (await session.exec(select(SimulatedTime).where(SimulatedTime.id == 1).with_for_update())).one()
        if utc(row.now) < now:  # two API processes may advance at once; time never runs back
            row.now = now


async def next_due_time(runtime: Runtime, after: datetime, until: datetime) -> datetime | None:
    """The earliest moment in (after, until] at which an enrollment, a queued message, a
    broadcast's start or a broadcast recipient is due."""
    async with runtime.sessions() as session:
        enrollment = (
            await session.exec(
                select(func.min(Enrollment.due_at)).where(
                    Enrollment.status == EnrollmentStatus.active,
                    col(Enrollment.due_at) > after,
                    col(Enrollment.due_at) <= until,
                )
            )
        ).one()
        message = (
            await session.exec(
                select(func.min(Message.next_attempt_at)).where(
                    Message.status == MessageStatus.queued,
                    col(Message.next_attempt_at) > after,
                    col(Message.next_attempt_at) <= until,
                )
            )
        ).one()
        broadcast_start = (
            await session.exec(
                select(func.min(Broadcast.starts_at)).where(
                    Broadcast.state == "scheduled",
                    col(Broadcast.starts_at) > after,
                    col(Broadcast.starts_at) <= until,
                )
            )
        ).one()
        recipient = (
            await session.exec(
                select(func.min(BroadcastRecipient.due_at)).where(
                    col(BroadcastRecipient.materialized_at).is_(None),
                    col(BroadcastRecipient.due_at) > after,
                    col(BroadcastRecipient.due_at) <= until,
                )
            )
        ).one()
    moments = (enrollment, message, broadcast_start, recipient)
    due = [utc(moment) for moment in moments if moment is not None]
    return min(due) if due else None


async def advance_simulated_time(
    runtime: Runtime, delta: timedelta, drain: Callable[[], Awaitable[int]] | None
) -> tuple[datetime, int]:
    """Move the clock forward by `delta`, stopping at every due time on the way to do the work
    due then (with `drain`); returns the new time and how much work was done."""
    clock = runtime.clock
    if not isinstance(clock, SimulatedClock):
        raise TypeError("only a simulated clock can be advanced")
    if delta < timedelta(0):
        raise ValueError("time only moves forward")
    target, done = clock.now() + delta, 0
    while True:
        stop = (await next_due_time(runtime, clock.now(), target) if drain else None) or target
        clock.set(stop)
        await save_simulated_time(runtime)
        if drain:
            done += await drain()
        if stop >= target:
            return clock.now(), done
