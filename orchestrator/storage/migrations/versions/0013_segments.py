"""segments: members, membership log, size samples and per-segment state

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 02:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "segment_members",
        sa.Column("segment_id", sa.String(length=100), nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.PrimaryKeyConstraint("segment_id", "customer_id"),
    )
    op.create_index("ix_segment_members_customer", "segment_members", ["customer_id"], unique=False)
    op.create_table(
        "segment_membership_changes",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("segment_id", sa.String(length=100), nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_segment_membership_changes_segment", "segment_membership_changes", ["segment_id", "changed_at"])
    op.create_index("ix_segment_membership_changes_customer", "segment_membership_changes", ["customer_id"])
    op.create_table(
        "segment_size_samples",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("segment_id", sa.String(length=100), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_segment_size_samples_segment", "segment_size_samples", ["segment_id", "sampled_at"])
    op.create_table(
        "segment_states",
        sa.Column("segment_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=True),
        sa.Column("event_watermark", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("consent_watermark", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("swept_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("segment_id"),
    )


def downgrade() -> None:
    op.drop_table("segment_states")
    op.drop_index("ix_segment_size_samples_segment", table_name="segment_size_samples")
    op.drop_table("segment_size_samples")
    op.drop_index("ix_segment_membership_changes_customer", table_name="segment_membership_changes")
    op.drop_index("ix_segment_membership_changes_segment", table_name="segment_membership_changes")
    op.drop_table("segment_membership_changes")
    op.drop_index("ix_segment_members_customer", table_name="segment_members")
    op.drop_table("segment_members")
