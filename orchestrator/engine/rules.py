"""The event rules, as pure functions of the enrollment, the journey and the event.

The engine (`enrollments.react_to_event`, inside the ingest transaction) and the simulator
(`tooling.simulate`, in memory) both call these, so what `orchestrator simulate` predicts is
what the service does. Nothing here touches a database or a clock.
"""

from __future__ import annotations

import enum
import logging
from datetime import datetime
from typing import Any

from orchestrator.clock import utc
from orchestrator.delivery.conversions import in_holdout
from orchestrator.engine.facts import AWAITED_KEY, customer_view
from orchestrator.engine.interpreter import resume_after_event
from orchestrator.journeys.compiler import CompiledJourney
from orchestrator.journeys.expressions import evaluate
from orchestrator.storage.models import Customer, Enrollment, Event
from orchestrator.vocabulary import EnrollmentStatus

log = logging.getLogger("orchestrator.enrollments")


class EventEffect(enum.Enum):
    none = "none"
    exited = "exited"  # the event is one of the journey's exit_on events
    woken = "woken"  # the enrollment was waiting for it and moves on now


def end_enrollment(enrollment: Enrollment, status: str, reason: str | None, now: datetime) -> None:
    enrollment.status = status
    enrollment.exit_reason = reason
    enrollment.ended_at = now
    enrollment.due_at = None
    enrollment.waiting_for = None


def apply_event(
    enrollment: Enrollment, journey: CompiledJourney, name: str, properties: dict[str, Any], now: datetime
) -> EventEffect:
    """Exit rules first, then a wait for this event: the one thing an event does to an active enrollment."""
    if name in journey.definition.exit_on:
        end_enrollment(enrollment, EnrollmentStatus.exited, f"exit_on: {name}", now)
        return EventEffect.exited
    if enrollment.waiting_for == name:
        # What the wait received is kept for later conditions (`awaited`, `reply`).
        awaited = dict(enrollment.context.get(AWAITED_KEY, {}), **{name: dict(properties)})
        enrollment.context = {**enrollment.context, AWAITED_KEY: awaited}
        enrollment.cursor = resume_after_event(journey, enrollment.cursor)
        enrollment.waiting_for = None
        enrollment.due_at = now
        return EventEffect.woken
    return EventEffect.none


def reaches_goal(enrollment: Enrollment, journey: CompiledJourney | None, name: str, now: datetime) -> bool:
    """Whether this event converts the enrollment: its journey's goal event, inside the window, once."""
    if enrollment.converted_at is not None or enrollment.goal_deadline is None:
        return False
    if utc(enrollment.goal_deadline) < now:
        return False
    goal = journey.definition.goal if journey else None
    return goal is not None and goal.event == name


def may_enter(
    journey: CompiledJourney, customer: Customer, event: Event, last_entry: datetime | None, now: datetime
) -> bool:
    """The trigger condition and the re-entry policy."""
    trigger = journey.definition.trigger
    if trigger.condition:
        try:
            if not evaluate(trigger.condition, {"customer": customer_view(customer), "event": event.properties}):
                return False
        except Exception:  # one journey's broken condition must not reject the customer's event
            log.exception("trigger condition of %s failed for customer %s; not enrolled", journey.id, customer.user_id)
            return False
    policy = journey.definition.reentry
    if policy.policy == "always" or last_entry is None:
        return True
    if policy.policy == "never":
        return False
    return now - last_entry >= policy.after


def new_enrollment(journey: CompiledJourney, customer: Customer, event: Event, now: datetime) -> Enrollment:
    goal = journey.definition.goal
    return Enrollment(
        journey_id=journey.id,
        journey_version=journey.version,
        customer_id=customer.id,
        status=EnrollmentStatus.active,
        cursor=journey.first,
        due_at=now,
        entered_at=now,
        trigger_event_id=event.id,
        context=dict(event.properties),
        goal_deadline=now + goal.within if goal else None,
        holdout=in_holdout(journey.id, customer.user_id, journey.definition.holdout),
    )
