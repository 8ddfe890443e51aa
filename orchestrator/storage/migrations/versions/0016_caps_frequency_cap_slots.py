"""frequency caps: message priority and cap slots

`messages.priority` (0 for every message already there) decides who gets a cap's last slot;
`frequency_cap_slots` holds the slots taken per customer, channel and local period, its
unique slot index being what keeps two workers from both taking the last one
(orchestrator/engine/frequency_caps.py, docs/frequency-caps.md).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 02:33:04.559930
"""

from collections.abc import Sequence
from typing import Union

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "frequency_cap_slots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("slot >= 0", name="ck_cap_slot_index"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "channel", "period", "period_start", "slot", name="uq_cap_slot"),
        sa.UniqueConstraint("message_id", "period", name="uq_cap_slot_message"),
    )
    op.create_index("ix_cap_slots_period_start", "frequency_cap_slots", ["period_start"], unique=False)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("priority")

    op.drop_index("ix_cap_slots_period_start", table_name="frequency_cap_slots")
    op.drop_table("frequency_cap_slots")
