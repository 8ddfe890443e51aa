"""KPI rollups: message figures summed per UTC day and journey step, so KPI queries read
hundreds of rows instead of millions of messages. `orchestrator.kpis.rollup` fills them.

One cell per (day, journey, step, channel, template); a missing step or template is ''
so the key can be a primary key. Every figure of a cell is additive except the distinct
counts (`recipients`, `replied`, `opted_out`), which are distinct within the cell; a
group spanning several cells adds them up (see orchestrator/kpis/report.py).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from orchestrator.storage.models import BigId, _timestamp


def _count() -> int:
    return Field(default=0)


class KpiDailyCell(SQLModel, table=True):
    __tablename__ = "kpi_daily"

    day: date = Field(primary_key=True)
    journey_id: str = Field(primary_key=True, max_length=100)
    step_id: str = Field(primary_key=True, max_length=255)
    channel: str = Field(primary_key=True, max_length=16)
    template: str = Field(primary_key=True, max_length=255)
    messages: int = _count()
    sent: int = _count()
    delivered: int = _count()
    failed: int = _count()
    skipped: int = _count()
    recipients: int = _count()
    email_sent: int = _count()
    email_delivered: int = _count()
    opened: int = _count()
    clickable: int = _count()  # delivered e-mails, and delivered SMS/WhatsApp with a tracked link
    clicked: int = _count()
    bounced: int = _count()
    replied: int = _count()
    opted_out: int = _count()
    priced: int = _count()  # messages with a provider price: a cost of None means none was reported
    cost: Decimal | None = Field(default=None, sa_column=sa.Column(sa.Numeric(16, 5), nullable=True))
    conversions: int = _count()
    orders_with_revenue: int = _count()
    revenue: Decimal | None = Field(default=None, sa_column=sa.Column(sa.Numeric(16, 2), nullable=True))


class KpiHourlyCell(SQLModel, table=True):
    """Messages sent, delivered and failed per UTC hour of creation, journey and channel: the
    overview's chart in any zone whose offset is whole hours (`orchestrator.kpis.series`)."""

    __tablename__ = "kpi_hourly"

    hour: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), primary_key=True))
    journey_id: str = Field(primary_key=True, max_length=100)
    channel: str = Field(primary_key=True, max_length=16)
    sent: int = _count()
    delivered: int = _count()
    failed: int = _count()


class KpiDailySkip(SQLModel, table=True):
    __tablename__ = "kpi_daily_skips"

    day: date = Field(primary_key=True)
    journey_id: str = Field(primary_key=True, max_length=100)
    step_id: str = Field(primary_key=True, max_length=255)
    channel: str = Field(primary_key=True, max_length=16)
    template: str = Field(primary_key=True, max_length=255)
    reason: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))  # skip reasons are free text
    count: int = _count()


class KpiRollupState(SQLModel, table=True):
    """How far the rollups are known to be current (by the engine's clock)."""

    __tablename__ = "kpi_rollup_state"

    name: str = Field(primary_key=True, max_length=32)
    watermark: datetime = _timestamp()
    refreshed_at: datetime = _timestamp()
    # A job done in several commits: the last item done (the website fold's first run: a visitor)
    resume_after: str | None = Field(default=None, max_length=260)


class KpiEnrollmentCell(SQLModel, table=True):
    """Enrollments per UTC day of entry, journey, group and outcome (status, exit reason or
    ''), and how many reached the goal: the two conversion rates holdout lift compares, and
    the entries, exits and goals of a journey's funnel."""

    __tablename__ = "kpi_enrollments_daily"

    day: date = Field(primary_key=True)
    journey_id: str = Field(primary_key=True, max_length=100)
    holdout: bool = Field(primary_key=True)
    status: str = Field(primary_key=True, max_length=16)
    exit_reason: str = Field(primary_key=True, max_length=255)
    enrollments: int = _count()
    converted: int = _count()


class KpiFunnelStep(SQLModel, table=True):
    """A journey's send steps per UTC day of entry of the enrollments that reached them
    (`orchestrator.kpis.funnel`): the funnel counted by entry time, without reading messages."""

    __tablename__ = "kpi_funnel_steps"

    day: date = Field(primary_key=True)
    journey_id: str = Field(primary_key=True, max_length=100)
    step_id: str = Field(primary_key=True, max_length=255)
    reached: int = _count()  # enrollments with a message for the step
    messages: int = _count()
    sent: int = _count()
    delivered: int = _count()
    failed: int = _count()
    skipped: int = _count()
    conversions: int = _count()  # orders credited to the step
    revenue: Decimal | None = Field(default=None, sa_column=sa.Column(sa.Numeric(16, 2), nullable=True))


class KpiFunnelSkip(SQLModel, table=True):
    __tablename__ = "kpi_funnel_skips"

    day: date = Field(primary_key=True)
    journey_id: str = Field(primary_key=True, max_length=100)
    step_id: str = Field(primary_key=True, max_length=255)
    reason: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    count: int = _count()


class JourneyEnrollmentCount(SQLModel, table=True):
    """Enrollments per journey, version and status, as deltas that add up to the counts.

    Database triggers on `enrollments` insert a row for every statement that adds, removes
    or changes the status of enrollments (`orchestrator.kpis.enrollment_counts`), in the
    same transaction, so `GET /v1/journeys` sums a few hundred rows instead of grouping every
    enrollment. Deltas, never updates of one row per key: concurrent workers would otherwise
    queue (and could deadlock) on the same counter rows. The rollup refresh folds them."""

    __tablename__ = "journey_enrollment_counts"

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    journey_id: str = Field(max_length=100)
    journey_version: str = Field(max_length=32)
    status: str = Field(max_length=16)
    enrollments: int  # a delta: negative when enrollments left this status


class CustomerOrder(SQLModel, table=True):
    """`Order Completed` events folded into one row per order, for customer-level KPIs
    (`orchestrator.kpis.orders` fills it; the events stay the truth): what
    `orchestrator.kpis.customers` would otherwise extract from JSON and deduplicate over
    every event on each read."""

    __tablename__ = "customer_orders"
    __table_args__ = (
        sa.Index("ix_customer_orders_customer", "customer_id", "ordered_at"),
        sa.Index("ix_customer_orders_ordered", "ordered_at"),
    )

    order_key: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))  # order_id, else "event:" + messageId
    customer_id: int = Field(sa_column=sa.Column(BigId, nullable=False))
    ordered_at: datetime = _timestamp()
    revenue: Decimal | None = Field(default=None, sa_column=sa.Column(sa.Numeric(), nullable=True))


class Visit(SQLModel, table=True):
    """A visit (a web or app session): one visitor's page and screen views with less than
    the inactivity gap between each. Derived, like the rollups: `orchestrator.kpis.site_fold`
    folds the views into it off the ingest path; the events stay the truth.

    `visitor` is "c:<customer id>", or "a:<anonymousId>" while the anonymousId is linked to
    no customer (then its visits move to the customer once linked)."""

    __tablename__ = "visits"
    __table_args__ = (
        # one visit per visitor and start: two folds of the same views can never both land
        sa.UniqueConstraint("visitor", "started_at", name="uq_visits_visitor_start"),
        sa.Index("ix_visits_visitor_ended", "visitor", "ended_at"),
        sa.Index("ix_visits_started", "started_at"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    visitor: str = Field(sa_column=sa.Column(sa.String(260), nullable=False))
    customer_id: int | None = Field(default=None, sa_column=sa.Column(BigId, nullable=True))
    started_at: datetime = _timestamp()
    ended_at: datetime = _timestamp()  # the last view's time: a one-page visit lasts 0 s
    seconds: int = _count()
    pages: int = _count()
    landing_url: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    landing_path: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    referrer: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    utm_source: str | None = Field(default=None, max_length=255)
    utm_medium: str | None = Field(default=None, max_length=255)
    utm_campaign: str | None = Field(default=None, max_length=255)
    utm_content: str | None = Field(default=None, max_length=255)
    utm_term: str | None = Field(default=None, max_length=255)
    # Where it came from (orchestrator.kpis.visits): our message when its landing page
    # carries a message reference; '' when none, so they can key the daily cells.
    message_id: int | None = Field(default=None, sa_column=sa.Column(BigId, nullable=True))
    channel: str = Field(max_length=255)
    journey_id: str = Field(default="", max_length=100)
    broadcast_id: str = Field(default="", max_length=100)
    source: str = Field(max_length=255)
    converted_at: datetime | None = _timestamp(nullable=True)  # the order credited to this visit


class SiteDailyCell(SQLModel, table=True):
    """Visits summed per UTC day of start and (channel, journey, broadcast, source), so site
    KPIs read a few hundred rows instead of millions of visits. The counts add up across
    cells; the visitors are a mergeable sketch (`orchestrator.kpis.distinct`), so a read
    counts each visitor once over any range (see docs/website-kpis.md)."""

    __tablename__ = "site_daily"

    day: date = Field(primary_key=True)
    channel: str = Field(primary_key=True, max_length=255)
    journey_id: str = Field(primary_key=True, max_length=100)
    broadcast_id: str = Field(primary_key=True, max_length=100)
    source: str = Field(primary_key=True, max_length=255)
    visits: int = _count()
    bounces: int = _count()  # one-page visits
    pages: int = _count()
    seconds: int = Field(
        default=0, sa_column=sa.Column(sa.BigInteger, nullable=False)
    )  # a year of visits overflows 32 bits
    converted: int = _count()
    visitor_sketch: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))  # at most 4 KiB


class SiteHourlyCell(SQLModel, table=True):
    """The same cells per UTC hour of start: a range that does not start or end at midnight
    reads its whole hours here, and only the minutes at either end from `visits`."""

    __tablename__ = "site_hourly"

    hour: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), primary_key=True))
    channel: str = Field(primary_key=True, max_length=255)
    journey_id: str = Field(primary_key=True, max_length=100)
    broadcast_id: str = Field(primary_key=True, max_length=100)
    source: str = Field(primary_key=True, max_length=255)
    visits: int = _count()
    bounces: int = _count()
    pages: int = _count()
    seconds: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    converted: int = _count()
    visitor_sketch: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
