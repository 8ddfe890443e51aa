"""Who a broadcast goes to: the one place that turns an audience into customer ids.

A segment's members come from `orchestrator.segments.membership.members_select`; explicit
`user_ids` (tests, one-off sends) are looked up here. Either way the answer is a SELECT of
`customer_id`, so the snapshot can be one INSERT … SELECT however large the audience.
"""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator.broadcasts.format import Audience
from orchestrator.storage.models import Customer


class AudienceError(Exception):
    """The audience cannot be resolved (an unknown segment, segments not installed)."""


def audience_select(audience: Audience) -> sa.Select:
    """A SELECT of one column, `customer_id`: the audience's members as of now."""
    if audience.user_ids is not None:
        customers = Customer.__table__
        return sa.select(customers.c.id.label("customer_id")).where(customers.c.user_id.in_(audience.user_ids))
    try:
        from orchestrator.segments.membership import members_select
    except ImportError:  # the segments package is not in this build
        raise AudienceError(f"segment '{audience.segment}': segments are not available in this build") from None
    try:
        return members_select(audience.segment)
    except (KeyError, LookupError) as error:
        raise AudienceError(f"segment '{audience.segment}': {error}") from None
