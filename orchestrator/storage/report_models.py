"""Scheduled reports' sends and share links.

- `report_deliveries` is unique on (report, period start, recipient): however many workers
  tick at once, one period's report reaches one recipient once.
- `report_links` keeps only a hash of each link's secret part, with its expiry and revocation.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from orchestrator.storage.models import BigId, _json, _timestamp


class ReportDelivery(SQLModel, table=True):
    __tablename__ = "report_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("report_id", "period_start", "recipient"),
        sa.Index("ix_report_deliveries_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    report_id: str = Field(max_length=100)
    report_version: str = Field(max_length=32)
    period_start: datetime = _timestamp()
    period_end: datetime = _timestamp()
    recipient: str = Field(max_length=320)
    status: str = Field(max_length=16)  # queued | sending | sent | failed | unknown
    attempts: int = 0
    next_attempt_at: datetime | None = _timestamp(nullable=True)
    provider_message_id: str | None = Field(default=None, max_length=255)
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: datetime = _timestamp()
    sent_at: datetime | None = _timestamp(nullable=True)


class ReportLink(SQLModel, table=True):
    __tablename__ = "report_links"

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    report_id: str = Field(max_length=100)
    secret_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    window_days: int = 30
    created_by: str | None = Field(default=None, max_length=100)
    created_at: datetime = _timestamp()
    expires_at: datetime = _timestamp()
    revoked_at: datetime | None = _timestamp(nullable=True)
    options: dict = _json()
