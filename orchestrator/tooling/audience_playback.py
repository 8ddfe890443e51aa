"""Running a scenario of segments and broadcasts on the service itself, on simulated time.

A scratch SQLite database in a temporary directory (never `DATABASE_URL`), the local
providers, the configured segments, broadcasts, templates and caps, and only the journeys
the scenario lists. The clock is walked through every due time as
`POST /v1/admin/clock/advance` walks it, with the worker's own rounds (segment refresh,
broadcast feed, drain) at each stop, so what a scenario reports is what the service did.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select

from orchestrator.broadcasts.service import act
from orchestrator.broadcasts.states import TransitionRefused
from orchestrator.clock import SimulatedClock, utc
from orchestrator.config import Settings
from orchestrator.customers.erasure import erase_customer
from orchestrator.customers.records import find_customer
from orchestrator.engine.loop import WorkerLoop
from orchestrator.engine.simulated_time import advance_simulated_time
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall
from orchestrator.journeys.loader import JourneyLoadError
from orchestrator.segments.refresh import refresh_segments
from orchestrator.storage.broadcast_models import Broadcast, BroadcastRecipient
from orchestrator.storage.models import Customer, Message
from orchestrator.storage.segment_models import SegmentMember, SegmentMembershipChange
from orchestrator.tooling.audience_scenarios import Entry, MembershipCheck, Plan
from orchestrator.tooling.sources import find_journey

# At one moment the playback applies the scenario's calls (in their order), then the segment
# rounds, then the broadcast feed that makes messages: the timeline shows them in that order.
AFTER_THE_CALLS = {"segment": 1, "broadcast": 2, "message": 3}


@dataclass(frozen=True)
class Happening:
    """One line of a scenario's timeline (`orchestrator test --show-timeline`)."""

    at: datetime
    kind: str  # the calls: identify, track, erase; then segment, broadcast, message
    detail: str

    def order(self) -> tuple[datetime, int]:
        return self.at, AFTER_THE_CALLS.get(self.kind, 0)


@dataclass
class Observed:
    checks: list[dict[str, Any]] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    state: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[Happening] = field(default_factory=list)


class AudienceScenarios:
    """Runs audience scenarios; the empty database is migrated once and copied for each."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._scratch = Path(tempfile.mkdtemp(prefix="orchestrator-scenarios-"))
        self._empty: Path | None = None
        self._runs = 0

    def close(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)

    def run(self, plan: Plan, name: str) -> Observed:
        # The service logs every start-up and round at INFO; a test run reports only its verdicts.
        service_log = logging.getLogger("orchestrator")
        level = service_log.level
        service_log.setLevel(max(level, logging.WARNING))
        try:
            return asyncio.run(self._run(plan, name))
        finally:
            service_log.setLevel(level)

    async def _run(self, plan: Plan, name: str) -> Observed:
        from orchestrator.startup import build_runtime  # the service's wiring: only when a scenario needs it

        self._runs += 1
        folder = self._scratch / f"{self._runs}-{name}"
        folder.mkdir()
        journeys = folder / "journeys"
        journeys.mkdir()
        for index, reference in enumerate(plan.spec.journeys):
            try:
                source = find_journey(reference, self.settings.journeys_dir)
            except JourneyLoadError as error:
                raise plan.document.error(("journeys", index), "; ".join(str(e) for e in error.errors)) from None
            shutil.copy(source.path, journeys / source.path.name)
        if self._empty is None:  # migrated once: a migration run costs more than most scenarios
            self._empty = self._scratch / "empty.db"
            no_journeys = self._scratch / "no-journeys"
            no_journeys.mkdir()
            empty = await build_runtime(self._settings(f"sqlite:///{self._empty}", no_journeys))
            await empty.aclose()
        shutil.copy(self._empty, folder / "service.db")
        clock = SimulatedClock(plan.start)
        runtime = await build_runtime(self._settings(f"sqlite:///{folder / 'service.db'}", journeys), clock=clock)
        try:
            return await Playback(runtime, clock, plan).play()
        finally:
            await runtime.aclose()

    def _settings(self, database_url: str, journeys: Path) -> Settings:
        return self.settings.model_copy(
            update=dict(
                database_url=database_url,
                journeys_dir=journeys,
                simulated_clock=True,
                auto_migrate=True,
                email_provider="local",
                sms_provider="local",
                whatsapp_provider="local",
            )
        )


class Playback:
    def __init__(self, runtime, clock: SimulatedClock, plan: Plan) -> None:
        self.runtime, self.clock, self.plan = runtime, clock, plan
        self.loop = WorkerLoop(runtime)
        self.users: dict[int, str] = {}  # customer id → userId, kept across an erasure
        self.seen_changes: dict[str, int] = {}  # segment → last change id a check reported
        self.timeline: list[Happening] = []  # the calls and the broadcast's state moves, as they happen
        self._logged_state: tuple[str, str | None] | None = None  # the broadcast's, as last logged

    async def play(self) -> Observed:
        plan, observed = self.plan, Observed()
        await self._segment_ids()
        await self._apply([Entry(plan.start, c.userId, c, -1) for c in plan.customers])
        await self._apply(plan.history)
        await self._work()
        moments = sorted(
            {e.at for e in plan.entries} | {at for at, _ in plan.checks} | {plan.schedule_at or plan.start}
        )
        for moment in moments:
            await self._advance_to(moment)
            await self._apply([e for e in plan.entries if e.at == moment])
            if moment == plan.schedule_at:
                await self._schedule()
            await self._work()
            for at, check in plan.checks:
                if at == moment:
                    observed.checks.append(await self._check(check))
        await self._advance_to(plan.end)
        if plan.spec.broadcast:
            observed.recipients, observed.state = await self._broadcast_outcome()
        observed.messages = await self._messages()
        happenings = self.timeline + await self._membership_changes() + [_sent(m) for m in observed.messages]
        observed.timeline = sorted(happenings, key=Happening.order)
        return observed

    async def _segment_ids(self) -> None:
        """Every id the file names is one the service loaded (a file with errors is not)."""
        spec, document, settings = self.plan.spec, self.plan.document, self.runtime.settings
        named = [(("segment",), spec.segment)]
        named += [(("expect", "segment", i, "segment"), check.segment) for i, check in enumerate(spec.expect.segment)]
        for where, segment in named:
            if segment and segment not in self.runtime.segments.segments:
                raise document.error(where, f"no segment '{segment}' in {settings.segments_dir}")
        if spec.broadcast:
            async with self.runtime.sessions() as session:
                if await session.get(Broadcast, spec.broadcast) is None:
                    raise document.error(
                        ("broadcast",), f"no broadcast '{spec.broadcast}' in {settings.broadcasts_dir}"
                    )

    async def _work(self) -> int:
        """The worker's rounds, in the order a clock advance runs them."""
        await self.loop.refresh_segments()
        done = await self.loop.run_due()
        if self.plan.spec.broadcast:
            await self._log_broadcast_state()
        return done

    async def _log_broadcast_state(self) -> None:
        """The broadcast's state, on the timeline when it moved: the table keeps only the current one."""
        async with self.runtime.sessions() as session:
            broadcast = await session.get(Broadcast, self.plan.spec.broadcast)
        if broadcast is not None and (broadcast.state, broadcast.state_reason) != self._logged_state:
            self._logged_state = (broadcast.state, broadcast.state_reason)
            reason = f" ({broadcast.state_reason})" if broadcast.state_reason else ""
            detail = f"{broadcast.id} {broadcast.state}{reason}"
            if broadcast.state == "sending" and broadcast.recipients is not None:
                detail += f", {broadcast.recipients} in the snapshot"
            self.timeline.append(Happening(utc(broadcast.updated_at), "broadcast", detail))

    async def _membership_changes(self) -> list[Happening]:
        """Every entry and exit, from the membership log."""
        c = SegmentMembershipChange.__table__.c
        async with self.runtime.sessions() as session:
            rows = (
                await session.exec(sa.select(c.segment_id, c.customer_id, c.change, c.changed_at).order_by(c.id))
            ).all()
        return [
            Happening(utc(row.changed_at), "segment", f"{self._user(row.customer_id)} {row.change} {row.segment_id}")
            for row in rows
        ]

    async def _advance_to(self, moment: datetime) -> None:
        if moment > self.clock.now():
            await advance_simulated_time(self.runtime, moment - self.clock.now(), self._work)

    async def _apply(self, entries: list[Entry]) -> None:
        for entry in entries:
            async with self.runtime.sessions() as session, session.begin():
                if entry.call is not None:
                    await ingest(session, self.runtime, [entry.call])
                else:
                    customer = await find_customer(session, entry.user, lock=True)
                    if customer is not None:
                        await erase_customer(session, customer, self.runtime.settings.erasure_key, self.clock.now())
            if isinstance(entry.call, IdentifyCall) and entry.user not in self.users.values():
                async with self.runtime.sessions() as session:
                    customer = await find_customer(session, entry.user)
                    self.users[customer.id] = entry.user
            self.timeline.append(_applied(entry))

    async def _schedule(self) -> None:
        try:
            async with self.runtime.sessions() as session, session.begin():
                await act(session, self.plan.spec.broadcast, "schedule", self.clock.now())
        except TransitionRefused as refused:
            raise self.plan.document.error(("schedule_at",), str(refused)) from None

    async def _check(self, check: MembershipCheck) -> dict[str, Any]:
        segment = check.segment or self.plan.spec.segment or await self._broadcast_segment()
        await refresh_segments(self.runtime, sweep=True)  # time windows move at a sweep
        m, c = SegmentMember.__table__.c, SegmentMembershipChange.__table__.c
        async with self.runtime.sessions() as session:
            members = (await session.exec(sa.select(m.customer_id).where(m.segment_id == segment))).scalars().all()
            changes = (
                await session.exec(
                    sa.select(c.id, c.customer_id, c.change)
                    .where(c.segment_id == segment, c.id > self.seen_changes.get(segment, 0))
                    .order_by(c.id)
                )
            ).all()
        if changes:
            self.seen_changes[segment] = changes[-1].id
        seen: dict[str, Any] = {"at": check.at}
        if check.segment:
            seen["segment"] = segment
        found = {
            "members": [self._user(i) for i in members],
            "entered": [self._user(row.customer_id) for row in changes if row.change == "entered"],
            "left": [self._user(row.customer_id) for row in changes if row.change == "left"],
        }
        for key, users in found.items():
            if getattr(check, key) is not None:
                seen[key] = sorted(set(users))
        return seen

    async def _broadcast_segment(self) -> str:
        async with self.runtime.sessions() as session:
            row = await session.get(Broadcast, self.plan.spec.broadcast)
        return (row.source.get("audience") or {}).get("segment") or ""

    def _user(self, customer_id: int) -> str:
        return self.users.get(customer_id, f"customer {customer_id}")

    async def _broadcast_outcome(self) -> tuple[list[str], str]:
        broadcast_id = self.plan.spec.broadcast
        r = BroadcastRecipient.__table__.c
        async with self.runtime.sessions() as session:
            ids = (await session.exec(sa.select(r.customer_id).where(r.broadcast_id == broadcast_id))).scalars().all()
            row = await session.get(Broadcast, broadcast_id)
        return sorted(self._user(i) for i in ids), row.state

    async def _messages(self) -> list[dict[str, Any]]:
        async with self.runtime.sessions() as session:
            rows = (
                await session.exec(
                    select(Message, Customer.timezone)
                    .join(Customer, col(Customer.id) == col(Message.customer_id))
                    .order_by(col(Message.created_at), col(Message.id))
                )
            ).all()
        messages = []
        for message, zone in rows:
            at = utc(message.created_at)
            local = at.astimezone(ZoneInfo(zone)) if zone else at
            messages.append(
                {
                    "user": self._user(message.customer_id),
                    "journey": message.journey_id,
                    "channel": message.channel,
                    "at": at,
                    "local_time": local.strftime("%H:%M"),
                    "to": message.to_address,
                    "locale": message.locale,
                    "status": message.status,
                    "reason": message.status_reason,
                    "body": message.body,
                    "subject": message.subject,
                    "links": (message.template_metadata or {}).get("links", []),
                }
            )
        return sorted(messages, key=lambda m: (m["at"], m["user"]))


def _applied(entry: Entry) -> Happening:
    call = entry.call
    if call is None:
        return Happening(entry.at, "erase", entry.user)
    if isinstance(call, IdentifyCall):
        return Happening(entry.at, "identify", f"{entry.user} {_compact(call.traits.model_dump(exclude_none=True))}")
    return Happening(entry.at, "track", f"{entry.user} {call.event} {_compact(call.properties)}".rstrip())


def _sent(message: dict[str, Any]) -> Happening:
    """A message as the timeline shows it: who, what, and what became of it."""
    origin = message["journey"] or "no journey"
    detail = f"{message['user']} {message['channel']} ({origin}) at {message['local_time']} local: {message['status']}"
    if message["reason"]:
        detail += f", {message['reason']}"
    return Happening(message["at"], "message", detail)


def _compact(values: dict[str, Any] | None) -> str:
    return json.dumps(values, ensure_ascii=False, default=str, separators=(", ", ": ")) if values else ""
