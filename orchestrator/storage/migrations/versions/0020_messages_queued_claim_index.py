"""messages-queued: a partial index for the dispatch claim

`ix_messages_queued` on (channel, next_attempt_at) for queued messages only: the claim every
worker polls (orchestrator/engine/dispatch.py). With `ix_messages_dispatch` alone, statistics
taken while most messages were queued made the planner scan the whole table on every poll.

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


def upgrade() -> None:
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
