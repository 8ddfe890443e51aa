"""`orchestrator simulate`: one journey, one customer, a list of timed events, in memory.

The step semantics are the engine's own: `engine.interpreter.advance` runs the steps,
`engine.messages.prepare_message` chooses the channel, checks consent and renders,
`engine.facts.facts_for` says what conditions see, and `engine.enrollments._may_enter` and
`_enroll` decide and build an entry (re-entry, trigger condition, holdout). What is
mirrored here is only the part the engine does around database queries
(`engine.enrollments.react_to_event` and `engine.worker._advance_one`), rule for rule:

- an event first ends an active enrollment if it is in `exit_on`; otherwise it wakes a
  `wait_for` waiting for it (which keeps the event's properties for `awaited`/`reply` and
  runs its `on_event` branch at once);
- then it converts every enrollment of the customer whose goal is that event and whose goal
  window (from entry) is still open, ended enrollments included;
- then, if it is the trigger, the customer enters unless already in the journey, the
  trigger condition is false, or the re-entry policy forbids it;
- a due enrollment runs from its cursor; one that was waiting for an event takes the
  `on_timeout` branch; `has_event()` sees the track events since entry, trigger excluded
  (an inbound `reply` is not a track event);
- a marketing send over a frequency cap (`policies/frequency.yaml`) is skipped, as the
  dispatcher would skip it. Only this journey's own sends to this customer count: other
  journeys and broadcasts are not simulated, so a real customer may be capped sooner.

Messages are prepared exactly as the worker prepares them, links included: given the
service's settings, URLs of marketing SMS and WhatsApp become tracked short links of the
configured base, so a simulated body has the length and segments of the one sent. Their
token names a simulated enrollment, so it leads nowhere.

Time only moves when something happens: the next event or the next due step, whichever
comes first (an event at the very moment a step is due is applied first). The run ends when
nothing is due and no events are left, or at the horizon (default: 30 days after the last
event), when an enrollment still waiting is reported as active.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrator.channels.base import Channel
from orchestrator.config import Settings
from orchestrator.customers.consent import SendPermissions
from orchestrator.customers.identity import apply_traits
from orchestrator.engine.facts import customer_view, facts_for
from orchestrator.engine.interpreter import advance, resume_after_timeout
from orchestrator.engine.messages import prepare_message, refusal_reason
from orchestrator.engine.rules import EventEffect, apply_event, end_enrollment, may_enter, new_enrollment, reaches_goal
from orchestrator.events.schemas import IdentifyCall
from orchestrator.journeys.expressions import evaluate
from orchestrator.policies.frequency import NO_CAPS, FrequencyPolicy, period_start, refusal
from orchestrator.storage.models import Customer, Enrollment, Event, Message
from orchestrator.templating.store import TemplateStore
from orchestrator.tooling.expressions import explain
from orchestrator.tooling.inputs import TimedEvent, format_moment, format_span
from orchestrator.tooling.sources import JourneySource
from orchestrator.vocabulary import EnrollmentStatus, MessageStatus

DEFAULT_HORIZON = timedelta(days=30)
MAX_ROUNDS = 100_000
MESSAGE_KINDS = {MessageStatus.queued: "send", MessageStatus.skipped: "skip", MessageStatus.failed: "fail"}
# An inbound SMS/WhatsApp message reaches journeys as an event of this name (stored with type
# "inbound", so has_event() does not see it); its properties are body, channel and score.
INBOUND_EVENTS = {"reply"}


def simulated_provider(channel: Channel) -> str:
    return "simulated"


def simulation_link_settings(settings: Settings) -> Settings:
    """The service's settings for shortening links as it does. Its generated secret lives in
    its database, which the tools never open; without one configured a stand-in signs the
    links, which lead nowhere anyway (the enrollment is simulated)."""
    return settings if settings.secret_key else settings.model_copy(update={"secret_key": "simulated"})


@dataclass
class Entry:
    at: datetime
    kind: str  # event identify enter no-entry wake timeout convert wait wait_for if send skip fail exit end horizon
    detail: str
    step: str | None = None
    enrollment: int | None = None
    message: dict[str, Any] | None = None


@dataclass
class SimulationResult:
    journey: JourneySource
    customer: Customer
    start: datetime
    horizon: datetime
    timeline: list[Entry] = field(default_factory=list)
    enrollments: list[Enrollment] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def outcome(self) -> dict[str, Any]:
        last = self.enrollments[-1] if self.enrollments else None
        return {
            "status": last.status if last else "not entered",
            "exit_reason": last.exit_reason if last else None,
            "converted": any(e.converted_at is not None for e in self.enrollments),
            "enrollments": len(self.enrollments),
        }


class Simulator:
    def __init__(
        self,
        journey: JourneySource,
        templates: TemplateStore,
        customer: Customer,
        events: list[TimedEvent],
        start: datetime,
        horizon: timedelta = DEFAULT_HORIZON,
        link_settings: Settings | None = None,
        frequency: FrequencyPolicy = NO_CAPS,
    ) -> None:
        self.journey, self.templates, self.customer = journey, templates, customer
        self.link_settings = link_settings
        self.frequency = frequency
        self.capped_sends: list[dict[str, Any]] = []  # marketing sends that took a cap slot
        self.compiled, self.definition = journey.compiled, journey.loaded.definition
        self.events = sorted(events, key=lambda e: (e.at, e.position))
        last = self.events[-1].at if self.events else start
        self.result = SimulationResult(journey, customer, start, max(last, start) + horizon)
        self.history: list[tuple[int, str, datetime]] = []  # (event number, name, time) of every event
        self.inbound: set[int] = set()  # numbers of inbound replies among them

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> SimulationResult:
        pending = list(self.events)
        for _ in range(MAX_ROUNDS):
            active = self._active()
            due = active.due_at if active else None
            if pending and (due is None or pending[0].at <= due):
                self._apply(pending.pop(0))
            elif due is not None and due <= self.result.horizon:
                self._run_due(active, due)
            else:
                break
        else:  # every round moves time or consumes an event; this only guards engine bugs
            self._log(self.result.horizon, "horizon", f"stopped after {MAX_ROUNDS} rounds")
        active = self._active()
        if active:
            waiting = f"waiting for '{active.waiting_for}' until" if active.waiting_for else "next step due"
            self._log(
                self.result.horizon,
                "horizon",
                f"still active at the horizon: step {active.cursor}, {waiting} {self._when(active.due_at)}",
                active.cursor,
                active,
            )
        return self.result

    def _when(self, at: datetime) -> str:
        return format_moment(at, self.result.start)

    def _active(self) -> Enrollment | None:
        return next((e for e in self.result.enrollments if e.status == EnrollmentStatus.active), None)

    def _log(
        self,
        at: datetime,
        kind: str,
        detail: str,
        step: str | None = None,
        enrollment: Enrollment | None = None,
        message: dict | None = None,
    ) -> None:
        self.result.timeline.append(Entry(at, kind, detail, step, enrollment.id if enrollment else None, message))

    # --- events (engine.enrollments.react_to_event) -----------------------------------------

    def _apply(self, event: TimedEvent) -> None:
        now = event.at
        if event.name is None:
            call = IdentifyCall(userId=self.customer.user_id, traits=event.traits)  # checked as the API checks it
            apply_traits(self.customer, call.traits.model_dump(exclude_none=True), now)
            self._log(now, "identify", f"traits {_compact(event.traits)}")
            return
        number = len(self.history) + 1
        self.history.append((number, event.name, now))
        if event.name in INBOUND_EVENTS:
            self.inbound.add(number)
        self._log(now, "event", f"{event.name} {_compact(event.properties)}".rstrip())
        active = self._active()
        step = active.cursor if active else None
        effect = apply_event(active, self.compiled, event.name, event.properties, now) if active else EventEffect.none
        if effect is EventEffect.exited:
            self._log(now, "end", f"exited (exit_on: {event.name})", None, active)
        elif effect is EventEffect.woken:
            self._log(now, "wake", f"'{event.name}' arrived → on_event", step, active)
        self._record_goal(event, number, now)
        if event.name == self.definition.trigger.event:
            self._maybe_enroll(event, number, now)

    def _record_goal(self, event: TimedEvent, number: int, now: datetime) -> None:
        goal = self.definition.goal
        if goal is None or goal.event != event.name:
            return
        for enrollment in self.result.enrollments:
            if reaches_goal(enrollment, self.compiled, event.name, now):
                enrollment.converted_at, enrollment.conversion_event_id = now, number
                sent = [
                    m["step"]
                    for m in self.result.messages
                    if m["enrollment"] == enrollment.id and m["status"] == MessageStatus.queued
                ]
                after = f" after {', '.join(sent)}" if sent else " (no message sent before it)"
                self._log(
                    now,
                    "convert",
                    f"goal '{goal.event}' within {format_span(goal.within)} of entry{after}",
                    None,
                    enrollment,
                )

    def _maybe_enroll(self, event: TimedEvent, number: int, now: datetime) -> None:
        if self._active():
            self._log(now, "no-entry", "already in this journey: a customer is never in one journey twice at once")
            return
        row = Event(
            id=number,
            message_id=f"simulated-{number}",
            customer_id=self.customer.id,
            type="track",
            name=event.name,
            properties=dict(event.properties),
            timestamp=now,
            received_at=now,
        )
        entries = [e.entered_at for e in self.result.enrollments]
        try:
            allowed = may_enter(self.compiled, self.customer, row, max(entries) if entries else None, now)
        except Exception as error:  # the engine raises inside the API request: the event is refused
            self._log(
                now,
                "no-entry",
                f"trigger condition failed: {type(error).__name__}: {error} (the API would fail the request)",
            )
            return
        if not allowed:
            self._log(now, "no-entry", self._why_not(event, entries[-1] if entries else None, now))
            return
        enrollment = new_enrollment(self.compiled, self.customer, row, now)
        enrollment.id = len(self.result.enrollments) + 1
        self.result.enrollments.append(enrollment)
        goal = self.definition.goal
        notes = f", goal '{goal.event}' counts until {self._when(enrollment.goal_deadline)}" if goal else ""
        if enrollment.holdout:
            notes += f", in the holdout group ({self.definition.holdout:g}%): no message will go out"
        self._log(now, "enter", f"enrollment {enrollment.id}{notes}", None, enrollment)

    def _why_not(self, event: TimedEvent, last: datetime | None, now: datetime) -> str:
        """The engine said no (engine.enrollments._may_enter); say which rule."""
        condition = self.definition.trigger.condition
        context = {"customer": customer_view(self.customer), "event": event.properties}
        if condition and not evaluate(condition, context):
            because = "; ".join(explain(condition, context))
            return f"trigger condition {condition!r} is false" + (f" ({because})" if because else "")
        policy = self.definition.reentry
        if policy.policy == "never":
            return f"reentry: never (entered at {self._when(last)})"
        return (
            f"reentry: after {format_span(policy.after)} (last entry {self._when(last)}, "
            f"may enter again from {self._when(last + policy.after)})"
        )

    # --- due work (engine.worker._advance_one) --------------------------------------------

    def _run_due(self, enrollment: Enrollment, now: datetime) -> None:
        cursor = enrollment.cursor
        if enrollment.waiting_for is not None:
            self._log(now, "timeout", f"no '{enrollment.waiting_for}' in time → on_timeout", cursor, enrollment)
            cursor = resume_after_timeout(self.compiled, cursor)
        seen = {
            name
            for number, name, at in self.history
            if at >= enrollment.entered_at and number != enrollment.trigger_event_id and number not in self.inbound
        }
        facts = facts_for(self.customer, enrollment, seen)
        try:
            result = advance(self.compiled, cursor, facts, min(enrollment.due_at, now))
        except Exception as error:  # as the worker does: this enrollment fails, nothing is sent
            end_enrollment(enrollment, EnrollmentStatus.failed, f"{type(error).__name__}: {error}", now)
            self._log(now, "end", f"failed ({enrollment.exit_reason})", cursor, enrollment)
            return
        messages = {node.id: self._message(enrollment, node, now) for node in result.sends}
        for trace in result.trace:
            self._log_trace(trace, result, facts, messages, enrollment, now)
        enrollment.cursor, enrollment.waiting_for, enrollment.due_at = result.cursor, result.waiting_for, result.due_at
        if result.status != EnrollmentStatus.active:
            end_enrollment(enrollment, result.status, result.exit_reason, now)
            reason = f" ({result.exit_reason})" if result.exit_reason else ": no steps left"
            self._log(now, "end", f"{result.status}{reason}", None, enrollment)

    def _log_trace(self, trace, result, facts, messages: dict, enrollment: Enrollment, now: datetime) -> None:
        node = self.compiled.nodes[trace.step_id]
        if trace.kind == "wait":
            self._log(
                now,
                "wait",
                f"{format_span(node.duration)}, resumes at {self._when(result.due_at)}",
                node.id,
                enrollment,
            )
        elif trace.kind == "wait_for":
            self._log(
                now,
                "wait_for",
                f"'{node.event}' for up to {format_span(node.duration)}, until {self._when(result.due_at)}",
                node.id,
                enrollment,
            )
        elif trace.kind == "if":
            because = "; ".join(explain(node.condition, facts.expression_context()))
            self._log(now, "if", trace.detail + (f" ({because})" if because else ""), node.id, enrollment)
        elif trace.kind == "send":
            message = messages[node.id]
            self._log(
                now,
                MESSAGE_KINDS.get(message["status"], message["status"]),
                describe(message),
                node.id,
                enrollment,
                message,
            )
        elif trace.kind == "exit":
            self._log(now, "exit", trace.detail, node.id, enrollment)
        else:  # a step kind this tool does not know yet: shown as the engine describes it
            self._log(now, trace.kind, trace.detail, node.id, enrollment)

    def _message(self, enrollment: Enrollment, node, now: datetime) -> dict[str, Any]:
        row: Message = prepare_message(
            self.templates, simulated_provider, enrollment, self.customer, node, now, link_settings=self.link_settings
        )
        message = {
            "at": now,
            "enrollment": enrollment.id,
            "step": node.id,
            "channel": row.channel,
            "to": row.to_address,
            "status": row.status,
            "reason": row.status_reason,
            "template": row.template,
            "locale": row.locale,
            "subject": row.subject,
            "body": row.body,
            "html": row.html,
            "encoding": row.encoding,
            "segments": row.segments,
            "send_key": row.send_key,
            "fallback_from": None,
            # Where each short link of the body leads: {index, url, app?}, in the body's order.
            "links": (row.template_metadata or {}).get("links", []),
            "metadata": {k: v for k, v in (row.template_metadata or {}).items() if k not in ("variables", "links")},
        }
        if row.status == MessageStatus.queued and row.marketing:
            if capped := self._capped(row.channel, now):
                message["status"], message["reason"] = MessageStatus.skipped, capped
            else:
                self.capped_sends.append(message)
        primary = node.send.channel
        if row.channel != primary.value:
            permissions = SendPermissions.from_traits(self.customer.traits)  # as prepare_message defaults
            why = refusal_reason(self.customer, permissions, primary, node.send.transactional)
            message["fallback_from"] = f"{primary.value} ({why})"
        self.result.messages.append(message)
        return message

    def _capped(self, channel: str, now: datetime) -> str | None:
        """The dispatcher's cap rule, over the sends this simulation made so far (one journey,
        one priority: the earlier send holds the slot)."""
        zone = self.customer.timezone
        for cap in self.frequency.for_channel(channel):
            start = period_start(cap.period, now, zone)
            holders = [
                m["send_key"]
                for m in self.capped_sends
                if m["channel"] == channel and period_start(cap.period, m["at"], zone) == start
            ]
            if reason := refusal(cap, holders, []):
                return reason
        return None


def describe(message: dict[str, Any]) -> str:
    to = message["to"] or "(no address)"
    head = f"{message['channel']} to {to}"
    if message["fallback_from"]:
        head += f", fallback from {message['fallback_from']}"
    if message["status"] != MessageStatus.queued:
        return f"{head}: {message['reason']}"
    extras = [message["locale"] or "?"]
    if message["metadata"].get("content_sid"):
        extras.append(f"approved template {message['metadata']['content_sid']}")
    if message["encoding"]:
        segments = message["segments"]
        extras.append(f"{message['encoding']}, {segments} segment{'s' if segments != 1 else ''}")
    return f"{head} ({'; '.join(extras)})"


def _compact(values: dict[str, Any] | None) -> str:
    if not values:
        return ""
    return "{" + ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False, default=str)}" for k, v in values.items()) + "}"


def simulate(
    journey: JourneySource,
    templates: TemplateStore,
    customer: Customer,
    events: list[TimedEvent],
    start: datetime,
    horizon: timedelta = DEFAULT_HORIZON,
    link_settings: Settings | None = None,
    frequency: FrequencyPolicy = NO_CAPS,
) -> SimulationResult:
    """`link_settings` shorten links as the worker does (`engine.messages.prepare_message`);
    without them, links stay as written. `frequency`: the caps the dispatcher applies."""
    return Simulator(journey, templates, customer, events, start, horizon, link_settings, frequency).run()
