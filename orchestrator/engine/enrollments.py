"""How an accepted event changes enrollments, inside the transaction that stores it.

In order: exit rules end enrollments, waits for this event wake up, goals convert, and
journeys triggered by it enroll the customer (subject to re-entry). The caller holds the
customers' row locks, so two requests never race on one customer here.

What the rules need of a customer's enrollments is loaded in bulk for a whole batch of
events (`load_journey_states`), then every event of the batch is applied in memory, in
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
from orchestrator.conversions import attribute_conversion, in_holdout
from orchestrator.engine.facts import AWAITED_KEY, customer_view
from orchestrator.engine.interpreter import resume_after_event
from orchestrator.journeys.compiler import CompiledJourney, Node
from orchestrator.journeys.expressions import evaluate
from orchestrator.runtime import Runtime
from orchestrator.storage.models import ACTIVE, Customer, Enrollment, Event
from orchestrator.storage.queries import any_of

log = logging.getLogger("orchestrator.enrollments")


def end_enrollment(enrollment: Enrollment, status: str, reason: str | None, now: datetime) -> None:
    enrollment.status = status
    enrollment.exit_reason = reason
    enrollment.ended_at = now
    enrollment.due_at = None
    enrollment.waiting_for = None


@dataclass
class Reaction:
    created: list[Enrollment] = field(default_factory=list)
    woken: list[tuple[Enrollment, Node]] = field(default_factory=list)  # waits this event ended


@dataclass
class JourneyState:
    """One customer's enrollments that an event can still affect, and their entry history."""

    enrollments: list[Enrollment] = field(default_factory=list)  # active, or still able to convert
    last_entry: dict[str, datetime] = field(default_factory=dict)  # journey id → latest entered_at


async def load_journey_states(session: AsyncSession, customer_ids: set[int], now: datetime) -> dict[int, JourneyState]:
    """Two queries for any number of customers: the enrollments (locked) and the last entries."""
    states: dict[int, JourneyState] = defaultdict(JourneyState)
    if not customer_ids:
        return states
    live = (await session.exec(
        select(Enrollment).where(
            any_of(session, col(Enrollment.customer_id), customer_ids),
            or_(Enrollment.status == ACTIVE,
                (col(Enrollment.converted_at).is_(None)) & (col(Enrollment.goal_deadline) >= now)))
        .order_by(col(Enrollment.id)).with_for_update()
    )).all()
    for enrollment in live:
        states[enrollment.customer_id].enrollments.append(enrollment)
    entries = (await session.exec(
        select(Enrollment.customer_id, Enrollment.journey_id, func.max(Enrollment.entered_at))
        .where(any_of(session, col(Enrollment.customer_id), customer_ids))
        .group_by(Enrollment.customer_id, Enrollment.journey_id)
    )).all()
    for customer_id, journey_id, entered_at in entries:
        states[customer_id].last_entry[journey_id] = utc(entered_at)
    return states


async def react_to_event(session: AsyncSession, runtime: Runtime, customer: Customer, event: Event,
                         state: JourneyState | None = None) -> Reaction:
    """Apply one event (a Track call, or an inbound reply) to the customer's journeys."""
    now = runtime.clock.now()
    if state is None:
        state = (await load_journey_states(session, {customer.id}, now))[customer.id]
    reaction = Reaction()
    active = [e for e in state.enrollments if e.status == ACTIVE]
    for enrollment in active:
        journey = runtime.catalog.version(enrollment.journey_id, enrollment.journey_version)
        if journey is None:
            continue
        if event.name in journey.definition.exit_on:
            end_enrollment(enrollment, "exited", f"exit_on: {event.name}", now)
        elif enrollment.waiting_for == event.name:
            reaction.woken.append((enrollment, journey.nodes[enrollment.cursor]))
            awaited = dict(enrollment.context.get(AWAITED_KEY, {}), **{event.name: dict(event.properties)})
            enrollment.context = {**enrollment.context, AWAITED_KEY: awaited}
            enrollment.cursor = resume_after_event(journey, enrollment.cursor)
            enrollment.waiting_for = None
            enrollment.due_at = now
    await _record_goals(session, runtime, state, event, now)
    still_active = {e.journey_id for e in active if e.status == ACTIVE}
    for journey in runtime.catalog.triggered_by(event.name):
        if journey.id in still_active:
            continue  # never twice in one journey at the same time
        if _may_enter(journey, customer, event, state, now):
            enrollment = _enroll(journey, customer, event, now)
            session.add(enrollment)
            state.enrollments.append(enrollment)
            state.last_entry[journey.id] = now
            reaction.created.append(enrollment)
    return reaction


async def _record_goals(session: AsyncSession, runtime: Runtime, state: JourneyState, event: Event, now: datetime) -> None:
    reached_goal = []
    for enrollment in state.enrollments:
        if enrollment.converted_at is not None or enrollment.goal_deadline is None or utc(enrollment.goal_deadline) < now:
            continue
        journey = runtime.catalog.version(enrollment.journey_id, enrollment.journey_version)
        if journey and journey.definition.goal and journey.definition.goal.event == event.name:
            enrollment.converted_at = now
            enrollment.conversion_event_id = event.id
            reached_goal.append(enrollment)
    if reached_goal:
        await attribute_conversion(session, event, reached_goal, now)


def _may_enter(journey: CompiledJourney, customer: Customer, event: Event, state: JourneyState, now: datetime) -> bool:
    trigger = journey.definition.trigger
    if trigger.condition:
        try:
            if not evaluate(trigger.condition, {"customer": customer_view(customer), "event": event.properties}):
                return False
        except Exception:  # one journey's broken condition must not reject the customer's event
            log.exception("trigger condition of %s failed for customer %s; not enrolled", journey.id, customer.user_id)
            return False
    policy = journey.definition.reentry
    last_entry = state.last_entry.get(journey.id)
    if policy.policy == "always" or last_entry is None:
        return True
    if policy.policy == "never":
        return False
    return now - last_entry >= policy.after


def _enroll(journey: CompiledJourney, customer: Customer, event: Event, now: datetime) -> Enrollment:
    goal = journey.definition.goal
    return Enrollment(
        journey_id=journey.id,
        journey_version=journey.version,
        customer_id=customer.id,
        status=ACTIVE,
        cursor=journey.first,
        due_at=now,
        entered_at=now,
        trigger_event_id=event.id,
        context=dict(event.properties),
        goal_deadline=now + goal.within if goal else None,
        holdout=in_holdout(journey.id, customer.user_id, journey.definition.holdout),
    )
