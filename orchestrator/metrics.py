"""Prometheus metrics, all defined here.

Two kinds: counters and histograms that the process increments as things happen (events
ingested, provider calls), kept in prometheus_client's default registry; and gauges of
database state (enrollments, messages, due-work lag), computed by SQL aggregates when
`/metrics` is scraped. Database gauges describe the shared database, so every process
reports the same values: aggregate them with `max`, not `sum`. Counters are per process:
`sum` them. The engine imports this module, which knows nothing of HTTP frameworks.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.channels.base import Outcome, SendResult
from orchestrator.clock import utc
from orchestrator.storage.models import Enrollment, Message
from orchestrator.vocabulary import EnrollmentStatus, MessageStatus

__all__ = [
    "CONTENT_TYPE_LATEST",
    "observe_send",
    "record_ingested",
    "record_withheld_traits",
    "render",
    "take_snapshot",
]

EVENTS_INGESTED = Counter("orchestrator_events_ingested", "Events stored (new messageIds), by type", ["type"])
EVENTS_DUPLICATE = Counter("orchestrator_events_duplicate", "Events ignored as replays of a stored messageId", ["type"])
PROVIDER_SEND_SECONDS = Histogram(
    "orchestrator_provider_send_seconds",
    "Time a channel adapter took to hand one message to its provider",
    ["channel", "provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SEND_ERRORS = Counter(
    "orchestrator_send_errors",
    "Provider calls that did not end in acceptance, by outcome and error code",
    ["channel", "provider", "outcome", "error_code"],
)

SITE_TRAITS_WITHHELD = Counter(
    "orchestrator_site_traits_withheld",
    "Identify calls from web pages stored without applying their contact-address and consent traits: "
    "no context.userHash (docs/website-kpis.md)",
)

NO_ERROR_CODE = "none"
ADAPTER_EXCEPTION = "adapter_exception"


def record_ingested(types_and_duplicates: Iterable[tuple[str, bool]]) -> None:
    """Call after the commit: an event counts once it can no longer be rolled back."""
    # Counted first: a labelled child lookup per event was a visible share of a large batch.
    for (event_type, duplicate), count in collections.Counter(types_and_duplicates).items():
        (EVENTS_DUPLICATE if duplicate else EVENTS_INGESTED).labels(type=event_type).inc(count)


def record_withheld_traits(calls: Iterable[tuple[frozenset[str], bool]]) -> None:
    """(traits withheld, duplicate) per identify call, after the commit."""
    count = sum(1 for withheld, duplicate in calls if withheld and not duplicate)
    if count:  # nearly always 0: skip the counter's lock
        SITE_TRAITS_WITHHELD.inc(count)


def observe_send(channel: str, provider: str, result: SendResult, seconds: float, *, raised: bool = False) -> None:
    PROVIDER_SEND_SECONDS.labels(channel=channel, provider=provider).observe(seconds)
    if result.outcome != Outcome.accepted:
        code = ADAPTER_EXCEPTION if raised else (result.error_code or NO_ERROR_CODE)
        SEND_ERRORS.labels(channel=channel, provider=provider, outcome=result.outcome.value, error_code=code).inc()


@dataclass
class DatabaseSnapshot:
    enrollments: list[tuple[str, str, int]] = field(default_factory=list)  # journey, status, count
    messages: list[tuple[str, str, int]] = field(default_factory=list)  # channel, status, count
    # now − the oldest due_at of work that is due and not yet done; 0 when nothing waits.
    enrollment_lag_seconds: float = 0.0
    message_lag_seconds: float = 0.0


def _lag(now: datetime, oldest: datetime | None) -> float:
    return max(0.0, (now - utc(oldest)).total_seconds()) if oldest else 0.0


async def take_snapshot(session: AsyncSession, now: datetime) -> DatabaseSnapshot:
    """Four aggregates; the lag ones use the same indexes the worker claims with."""
    enrollments = (
        await session.exec(
            select(Enrollment.journey_id, Enrollment.status, func.count()).group_by(
                col(Enrollment.journey_id), col(Enrollment.status)
            )
        )
    ).all()
    messages = (
        await session.exec(
            select(Message.channel, Message.status, func.count()).group_by(col(Message.channel), col(Message.status))
        )
    ).all()
    oldest_enrollment = (
        await session.exec(
            select(func.min(Enrollment.due_at)).where(
                Enrollment.status == EnrollmentStatus.active, col(Enrollment.due_at) <= now
            )
        )
    ).one()
    oldest_message = (
        await session.exec(
            select(func.min(Message.next_attempt_at)).where(
                Message.status == MessageStatus.queued, col(Message.next_attempt_at) <= now
            )
        )
    ).one()
    return DatabaseSnapshot(
        enrollments=[tuple(row) for row in enrollments],
        messages=[tuple(row) for row in messages],
        enrollment_lag_seconds=_lag(now, oldest_enrollment),
        message_lag_seconds=_lag(now, oldest_message),
    )


class _SnapshotCollector:
    def __init__(self, snapshot: DatabaseSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self):
        enrollments = GaugeMetricFamily(
            "orchestrator_enrollments", "Enrollments by journey and status", labels=["journey", "status"]
        )
        for journey, status, count in self.snapshot.enrollments:
            enrollments.add_metric([journey, status], count)
        messages = GaugeMetricFamily(
            "orchestrator_messages", "Messages by channel and status", labels=["channel", "status"]
        )
        for channel, status, count in self.snapshot.messages:
            messages.add_metric([channel, status], count)
        lag = GaugeMetricFamily(
            "orchestrator_due_work_lag_seconds",
            "Now minus the oldest due time of work still waiting for a worker",
            labels=["work"],
        )
        lag.add_metric(["enrollments"], self.snapshot.enrollment_lag_seconds)
        lag.add_metric(["messages"], self.snapshot.message_lag_seconds)
        return [enrollments, messages, lag]


class _ProcessAndSnapshot:
    """One registry for one scrape: the process's metrics, then the database gauges."""

    def __init__(self, snapshot: DatabaseSnapshot) -> None:
        self.snapshot = _SnapshotCollector(snapshot)

    def collect(self):
        yield from REGISTRY.collect()
        yield from self.snapshot.collect()


def render(snapshot: DatabaseSnapshot) -> bytes:
    """Everything in the Prometheus text format (`CONTENT_TYPE_LATEST`)."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_ProcessAndSnapshot(snapshot))
    return generate_latest(scrape)
