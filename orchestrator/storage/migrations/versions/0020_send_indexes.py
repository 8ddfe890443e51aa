"""send-indexes: the dispatch claim's and the broadcast feed's indexes

`ix_messages_queued` on (channel, next_attempt_at) for queued messages only: the claim every
worker polls (orchestrator/engine/dispatch.py). With `ix_messages_dispatch` alone, statistics
taken while most messages were queued made the planner scan the whole table on every poll.

`ix_broadcast_recipients_due` gains `customer_id`, the last key of the feed's order
(orchestrator/broadcasts/sending.py): a batch is then the index's first rows instead of a
sort of every due recipient left, which made feeding a million recipients quadratic.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 09:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED = sa.text("status = 'queued'")
NOT_MADE = sa.text("materialized_at IS NULL")


def upgrade() -> None:
    op.drop_index("ix_broadcast_recipients_due", table_name="broadcast_recipients")
    op.create_index(
        "ix_broadcast_recipients_due",
        "broadcast_recipients",
        ["broadcast_id", "due_at", "customer_id"],
        unique=False,
        postgresql_where=NOT_MADE,
        sqlite_where=NOT_MADE,
    )
    op.create_index(
        "ix_messages_queued",
        "messages",
        ["channel", "next_attempt_at"],
        unique=False,
        postgresql_where=QUEUED,
        sqlite_where=QUEUED,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_queued", table_name="messages")
    op.drop_index("ix_broadcast_recipients_due", table_name="broadcast_recipients")
    op.create_index(
        "ix_broadcast_recipients_due",
        "broadcast_recipients",
        ["broadcast_id", "due_at"],
        unique=False,
        postgresql_where=NOT_MADE,
        sqlite_where=NOT_MADE,
    )
