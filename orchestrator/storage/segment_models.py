"""Segments' members, their comings and goings, and their size over time.

- `segment_members` has the pair (segment, customer) as its primary key: a customer is in a
  segment once, however many workers evaluate it at the same moment;
- `segment_states` holds one row per segment: its version, how far the event-driven
  re-evaluation has read (`event_watermark`, `consent_watermark`) and when it was last swept.
  A worker locks that row (`FOR UPDATE SKIP LOCKED`) while it evaluates the segment, so two
  workers never evaluate one segment at once;
- `segment_definitions` holds the segment files every process evaluates (one row per segment,
  its current file), published at start-up and by a reload: workers refresh from it, so a
  reload reaches them without a restart;
- `customer_profile_changes` lists the customers whose data changed without an event or a
  consent record (an import, an erasure): a queue the segment rounds read like the events
  table, each segment behind its own watermark.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from orchestrator.storage.models import BigId, _timestamp


class SegmentMember(SQLModel, table=True):
    __tablename__ = "segment_members"
    __table_args__ = (sa.Index("ix_segment_members_customer", "customer_id"),)

    segment_id: str = Field(primary_key=True, max_length=100)
    customer_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("customers.id"), primary_key=True, autoincrement=False)
    )
    entered_at: datetime = _timestamp()


class SegmentMembershipChange(SQLModel, table=True):
    """The membership log: every entry and every exit, in order."""

    __tablename__ = "segment_membership_changes"
    __table_args__ = (
        sa.Index("ix_segment_membership_changes_segment", "segment_id", "changed_at"),
        sa.Index("ix_segment_membership_changes_customer", "customer_id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    segment_id: str = Field(max_length=100)
    customer_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("customers.id"), nullable=False))
    change: str = Field(max_length=8)  # entered | left
    changed_at: datetime = _timestamp()


class SegmentSizeSample(SQLModel, table=True):
    """A segment's size after each sweep: its size over time."""

    __tablename__ = "segment_size_samples"
    __table_args__ = (sa.Index("ix_segment_size_samples_segment", "segment_id", "sampled_at"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    segment_id: str = Field(max_length=100)
    members: int
    sampled_at: datetime = _timestamp()


class SegmentState(SQLModel, table=True):
    __tablename__ = "segment_states"

    segment_id: str = Field(primary_key=True, max_length=100)
    version: str | None = Field(default=None, max_length=32)  # the version last evaluated in full
    event_watermark: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    consent_watermark: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    profile_watermark: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    swept_at: datetime | None = _timestamp(nullable=True)


class SegmentDefinition(SQLModel, table=True):
    """The segment file every process evaluates: its text, so a worker parses what the API checked."""

    __tablename__ = "segment_definitions"

    segment_id: str = Field(primary_key=True, max_length=100)
    version: str = Field(max_length=32)
    source: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    source_path: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    published_at: datetime = _timestamp()


class CustomerProfileChange(SQLModel, table=True):
    """A customer whose profile changed without an event or a consent record: segment rounds
    re-evaluate them as they do the customers of new events."""

    __tablename__ = "customer_profile_changes"

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    customer_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("customers.id"), nullable=False))
    changed_at: datetime = _timestamp()
