"""How an accepted event changes enrollments, inside the transaction that stores it.

In order: exit rules end enrollments, waits for this event wake up, goals convert, and
journeys triggered by it enroll the customer (subject to re-entry). The caller holds the
customers' row locks, so two requests never race on one customer here.

What the rules need of a customer's enrollments is loaded in bulk for a whole batch of
events (`load_customer_journeys`), then every event of the batch is applied in memory, in
order; new enrollments are written in one flush at the end.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import col, func, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.clock import utc
from orchestrator.delivery.conversions import attribute_conversion
from orchestrator.engine.rules import EventEffect, apply_event, may_enter, new_enrollment, reaches_goal
from orchestrator.journeys.compiler import Node
from orchestrator.runtime import Runtime
from orchestrator.storage.models import Customer, Enrollment, Event
from orchestrator.storage.queries import any_of
from orchestrator.vocabulary import EnrollmentStatus

log = logging.getLogger("orchestrator.enrollments")


@dataclass
class Reaction:
    created: list[Enrollment] = field(default_factory=list)
    woken: list[tuple[Enrollment, Node]] = field(default_factory=list)  # waits this event ended


@dataclass
class CustomerJourneys:
    """One customer's enrollments that an event can still affect, and their entry history."""

    enrollments: list[Enrollment] = field(default_factory=list)  # active, or still able to convert
    last_entry: dict[str, datetime] = field(default_factory=dict)  # journey id → latest entered_at


async def load_customer_journeys(
    session: AsyncSession, customer_ids: set[int], now: datetime
) -> dict[int, CustomerJourneys]:
    """Two queries for any number of customers: the enrollments (locked) and the last entries."""
    states: dict[int, CustomerJourneys] = defaultdict(CustomerJourneys)
    if not customer_ids:
        return states
    live = (
        await session.exec(
            select(Enrollment)
            .where(
                any_of(session, col(Enrollment.customer_id), customer_ids),
                or_(
                    Enrollment.status == EnrollmentStatus.active,
                    (col(Enrollment.converted_at).is_(None)) & (col(Enrollment.goal_deadline) >= now),
                ),
            )
            .order_by(col(Enrollment.id))
            .with_for_update()
        )
    ).all()
    for enrollment in live:
        states[enrollment.customer_id].enrollments.append(enrollment)
    entries = (
        await session.exec(
            select(Enrollment.customer_id, Enrollment.journey_id, func.max(Enrollment.entered_at))
            .where(any_of(session, col(Enrollment.customer_id), customer_ids))
            .group_by(Enrollment.customer_id, Enrollment.journey_id)
        )
    ).all()
    for customer_id, journey_id, entered_at in entries:
        states[customer_id].last_entry[journey_id] = utc(entered_at)
    return states


async def react_to_event(
    session: AsyncSession, runtime: Runtime, customer: Customer, event: Event, state: CustomerJourneys | None = None
) -> Reaction:
    """Apply one event (a Track call, or an inbound reply) to the customer's journeys."""
    now = runtime.clock.now()
    if state is None:
        state = (await load_customer_journeys(session, {customer.id}, now))[customer.id]
    reaction = Reaction()
    active = [e for e in state.enrollments if e.status == EnrollmentStatus.active]
    for enrollment in active:
        journey = runtime.catalog.version(enrollment.journey_id, enrollment.journey_version)
        if journey is None:
            continue
        waiting_at = enrollment.cursor
        if apply_event(enrollment, journey, event.name, event.properties, now) is EventEffect.woken:
            reaction.woken.append((enrollment, journey.nodes[waiting_at]))
    await _record_goals(session, runtime, state, event, now)
    still_active = {e.journey_id for e in active if e.status == EnrollmentStatus.active}
    for journey in runtime.catalog.triggered_by(event.name):
        if journey.id in still_active:
            continue  # never twice in one journey at the same time
        if may_enter(journey, customer, event, state.last_entry.get(journey.id), now):
            enrollment = new_enrollment(journey, customer, event, now)
            session.add(enrollment)
            state.enrollments.append(enrollment)
            state.last_entry[journey.id] = now
            reaction.created.append(enrollment)
    return reaction


async def _record_goals(
    session: AsyncSession, runtime: Runtime, state: CustomerJourneys, event: Event, now: datetime
) -> None:
    reached_goal = []
    for enrollment in state.enrollments:
        journey = runtime.catalog.version(enrollment.journey_id, enrollment.journey_version)
        if reaches_goal(enrollment, journey, event.name, now):
            enrollment.converted_at = now
            enrollment.conversion_event_id = event.id
            reached_goal.append(enrollment)
    if reached_goal:
        await attribute_conversion(session, event, reached_goal, now)
