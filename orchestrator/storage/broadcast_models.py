"""Broadcasts and their recipients (orchestrator/broadcasts, docs/broadcasts.md).

The lifecycle is a CHECK on `broadcasts.state`; every transition is an UPDATE guarded by
the states it may come from (`broadcasts.states`), so two callers racing on one broadcast
cannot both move it. `broadcast_recipients` is the audience frozen when the schedule
arrives: one row per (broadcast, customer), by its primary key. Its columns carry no
foreign keys on purpose: the snapshot takes every row from `customers` and `broadcasts` in
the statement that writes it, and the per-row foreign-key checks were 70 % of the time of a
million-row snapshot (bench/broadcast.py, docs/broadcasts.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from orchestrator.storage.models import BigId, _json, _timestamp

BROADCAST_STATES = ("draft", "scheduled", "sending", "paused", "done", "cancelled")


class Broadcast(SQLModel, table=True):
    __tablename__ = "broadcasts"
    __table_args__ = (
        sa.CheckConstraint(
            "state IN (" + ", ".join(f"'{s}'" for s in BROADCAST_STATES) + ")", name="ck_broadcasts_state"
        ),
        sa.Index("ix_broadcasts_state_starts", "state", "starts_at"),
    )

    id: str = Field(primary_key=True, max_length=80)
    version: str = Field(max_length=32)  # content hash of `source`
    source: dict[str, Any] = _json()  # the validated file (or API body) as written
    source_path: str | None = Field(default=None, max_length=1000)  # None: created through the API
    state: str = Field(default="draft", max_length=16)
    priority: int = 0
    # When the worker takes the snapshot: `at`, or the first moment `local_time` is reached anywhere.
    starts_at: datetime | None = _timestamp(nullable=True)
    snapshot_at: datetime | None = _timestamp(nullable=True)
    recipients: int | None = None  # the snapshot's size
    state_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class BroadcastRecipient(SQLModel, table=True):
    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        # the worker's claim: due recipients of one broadcast not made into messages yet, in
        # the order it takes them (with customer_id, a batch is the index's first rows, not a
        # sort of every due recipient left: 95 ms a batch at a million recipients without it)
        sa.Index(
            "ix_broadcast_recipients_due",
            "broadcast_id",
            "due_at",
            "customer_id",
            sqlite_where=sa.text("materialized_at IS NULL"),
            postgresql_where=sa.text("materialized_at IS NULL"),
        ),
    )

    broadcast_id: str = Field(sa_column=sa.Column(sa.String(80), primary_key=True, nullable=False))
    customer_id: int = Field(sa_column=sa.Column(BigId, primary_key=True, autoincrement=False, nullable=False))
    due_at: datetime = _timestamp()
    holdout: bool | None = None  # decided with the message (hash of the userId); None until then
    materialized_at: datetime | None = _timestamp(nullable=True)
