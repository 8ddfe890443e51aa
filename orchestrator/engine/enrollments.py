"""How an accepted event changes enrollments, inside the transaction that stores it.

In order: exit rules end enrollments, waits for this event wake up, goals convert, and
journeys triggered by it enroll the customer (subject to re-entry). The caller holds the
customer's row lock, so two events of one customer never race here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.clock import utc
from orchestrator.conversions import attribute_conversion, in_holdout
from orchestrator.engine.facts import AWAITED_KEY, customer_view
from orchestrator.engine.interpreter import resume_after_event
from orchestrator.journeys.compiler import CompiledJourney, Node
from orchestrator.journeys.expressions import evaluate
from orchestrator.runtime import Runtime
from orchestrator.storage.models import ACTIVE, Customer, Enrollment, Event


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


async def react_to_event(session: AsyncSession, runtime: Runtime, customer: Customer, event: Event) -> Reaction:
    """Apply one event (a Track call, or an inbound reply) to the customer's journeys."""
    reaction = Reaction()
    now = runtime.clock.now()
    active = (
        await session.exec(
            select(Enrollment)
            .where(Enrollment.customer_id == customer.id, Enrollment.status == ACTIVE)
            .with_for_update()
        )
    ).all()
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
    await _record_goals(session, runtime, customer, event, now)
    active_journeys = {e.journey_id for e in active if e.status == ACTIVE}
    for journey in runtime.catalog.triggered_by(event.name):
        if journey.id in active_journeys:
            continue  # never twice in one journey at the same time
        if await _may_enter(session, journey, customer, event, now):
            reaction.created.append(await _enroll(session, journey, customer, event, now))
    return reaction


async def _record_goals(session: AsyncSession, runtime: Runtime, customer: Customer, event: Event, now: datetime) -> None:
    journey_ids = runtime.catalog.with_goal(event.name)
    if not journey_ids:
        return
    candidates = (
        await session.exec(
            select(Enrollment)
            .where(
                Enrollment.customer_id == customer.id,
                col(Enrollment.journey_id).in_(journey_ids),
                col(Enrollment.converted_at).is_(None),
                col(Enrollment.goal_deadline) >= now,
            )
            .with_for_update()
        )
    ).all()
    reached_goal = []
    for enrollment in candidates:
        journey = runtime.catalog.version(enrollment.journey_id, enrollment.journey_version)
        if journey and journey.definition.goal and journey.definition.goal.event == event.name:
            enrollment.converted_at = now
            enrollment.conversion_event_id = event.id
            reached_goal.append(enrollment)
    await attribute_conversion(session, event, reached_goal, now)


async def _may_enter(session: AsyncSession, journey: CompiledJourney, customer: Customer, event: Event, now: datetime) -> bool:
    trigger = journey.definition.trigger
    if trigger.condition and not evaluate(
        trigger.condition, {"customer": customer_view(customer), "event": event.properties}
    ):
        return False
    policy = journey.definition.reentry
    if policy.policy == "always":
        return True
    last_entry = (
        await session.exec(
            select(func.max(Enrollment.entered_at)).where(
                Enrollment.journey_id == journey.id, Enrollment.customer_id == customer.id
            )
        )
    ).one()
    if last_entry is None:
        return True
    if policy.policy == "never":
        return False
    return now - utc(last_entry) >= policy.after


async def _enroll(session: AsyncSession, journey: CompiledJourney, customer: Customer, event: Event, now: datetime) -> Enrollment:
    goal = journey.definition.goal
    enrollment = Enrollment(
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
    session.add(enrollment)
    return enrollment
