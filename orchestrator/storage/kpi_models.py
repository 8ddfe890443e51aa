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

from orchestrator.storage.models import _timestamp


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


class KpiEnrollmentCell(SQLModel, table=True):
    """Enrollments per UTC day of entry, journey and group, and how many reached the goal:
    the two conversion rates holdout lift compares."""

    __tablename__ = "kpi_enrollments_daily"

    day: date = Field(primary_key=True)
    journey_id: str = Field(primary_key=True, max_length=100)
    holdout: bool = Field(primary_key=True)
    enrollments: int = _count()
    converted: int = _count()
