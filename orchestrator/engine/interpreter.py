"""Run a journey's steps for one enrollment, from its cursor until it must wait or ends.

Pure: no database, no provider, no clock of its own. The worker feeds it facts and applies
what it returns; a simulator can do the same in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.journeys.compiler import CompiledJourney, Node
from orchestrator.journeys.expressions import evaluate
from orchestrator.journeys.quiet_hours import QUIET_CHANNELS
from orchestrator.vocabulary import EnrollmentStatus

MAX_STEPS_PER_ADVANCE = 1000  # a compiled journey is acyclic; this only guards bugs


@dataclass
class Facts:
    """What conditions may look at."""

    customer: dict[str, Any]
    event: dict[str, Any]
    events_since_entry: set[str] = field(default_factory=set)
    consented: Callable[[str], bool] = lambda channel: False
    timezone: str | None = None  # the customer's, for quiet hours
    awaited: dict[str, Any] = field(default_factory=dict)  # properties of events a wait_for received
    journey_paused: bool = False  # a paused journey holds its enrollments at their next send

    def expression_context(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "event": self.event,
            "awaited": self.awaited,
            "reply": self.awaited.get("reply", {}),
            "has_event": lambda name: name in self.events_since_entry,
            "consented": self.consented,
        }


@dataclass(frozen=True)
class TraceEntry:
    step_id: str
    kind: str
    detail: str


@dataclass
class Advance:
    status: EnrollmentStatus = EnrollmentStatus.active
    cursor: str | None = None
    due_at: datetime | None = None
    waiting_for: str | None = None
    exit_reason: str | None = None
    held_by: str | None = None  # what holds a send step until `due_at` ("quiet_hours"), if anything
    sends: list[Node] = field(default_factory=list)
    trace: list[TraceEntry] = field(default_factory=list)


def resume_after_timeout(journey: CompiledJourney, cursor: str) -> str | None:
    """A wait_for whose timeout passed continues on its on_timeout branch."""
    return journey.nodes[cursor].branch_b


def resume_after_event(journey: CompiledJourney, cursor: str) -> str | None:
    return journey.nodes[cursor].branch_a


def _quiet_hours_hold(journey: CompiledJourney, node: Node, facts: Facts, now: datetime) -> datetime | None:
    send = node.send
    if send.transactional or send.channel.value not in QUIET_CHANNELS:
        return None
    return journey.definition.quiet_hours.resume_at(now, facts.timezone)


def advance(journey: CompiledJourney, cursor: str | None, facts: Facts, now: datetime) -> Advance:
    result = Advance()
    for _ in range(MAX_STEPS_PER_ADVANCE):
        if cursor is None:
            result.status, result.cursor = EnrollmentStatus.completed, None
            return result
        node = journey.nodes[cursor]
        if node.kind == "wait":
            result.cursor, result.due_at = node.next, now + node.duration
            result.trace.append(TraceEntry(node.id, "wait", f"until {result.due_at.isoformat()}"))
            return result
        if node.kind == "wait_for":
            result.cursor, result.waiting_for, result.due_at = node.id, node.event, now + node.duration
            result.trace.append(TraceEntry(node.id, "wait_for", f"'{node.event}' until {result.due_at.isoformat()}"))
            return result
        if node.kind == "if":
            taken = evaluate(node.condition, facts.expression_context())
            result.trace.append(TraceEntry(node.id, "if", f"{node.condition} → {'then' if taken else 'else'}"))
            cursor = node.branch_a if taken else node.branch_b
        elif node.kind == "send":
            if facts.journey_paused:  # held: no due time until the journey is resumed
                result.cursor, result.due_at = node.id, None
                result.trace.append(TraceEntry(node.id, "paused", "held until the journey is resumed"))
                return result
            hold_until = _quiet_hours_hold(journey, node, facts, now)
            if hold_until is not None:
                result.cursor, result.due_at, result.held_by = node.id, hold_until, "quiet_hours"
                result.trace.append(TraceEntry(node.id, "quiet_hours", f"held until {hold_until.isoformat()}"))
                return result
            result.sends.append(node)
            result.trace.append(TraceEntry(node.id, "send", f"{node.send.channel.value} {node.send.template}"))
            cursor = node.next
        elif node.kind == "exit":
            result.status, result.cursor, result.exit_reason = EnrollmentStatus.exited, None, node.exit_reason
            result.trace.append(TraceEntry(node.id, "exit", node.exit_reason))
            return result
        else:  # pragma: no cover - the compiler only makes the kinds above
            raise ValueError(f"unknown step kind {node.kind}")
    raise RuntimeError(f"journey {journey.id} did not settle after {MAX_STEPS_PER_ADVANCE} steps")
