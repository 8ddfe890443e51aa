"""A segment's current members, as stored in `segment_members`.

`members_select` is what other domains build on (a broadcast's audience is a segment): a
SELECT of `customer_id` usable inside `INSERT … SELECT` on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator.storage.segment_models import SegmentMember

members = SegmentMember.__table__


def members_select(segment_id: str) -> sa.Select:
    """The segment's current members: one `customer_id` column, one row per member."""
    return sa.select(members.c.customer_id).where(members.c.segment_id == segment_id)
