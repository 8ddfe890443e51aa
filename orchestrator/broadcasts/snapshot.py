"""The audience frozen when the schedule arrives: one INSERT … SELECT of the members into
`broadcast_recipients`, each with the instant the broadcast is due in their zone.

Whoever joins the segment afterwards is not sent; whoever leaves it still is (consent is
checked again when their message is made, and by dispatch). The due instant of a
`local_time` schedule depends only on the recipient's zone, so it is a CASE over the few
zones the audience lives in, computed here with zoneinfo: the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.broadcasts.audience import audience_select
from orchestrator.broadcasts.format import BroadcastFile
from orchestrator.broadcasts.schedule import due_in_zone
from orchestrator.storage.broadcast_models import BroadcastRecipient
from orchestrator.storage.models import Customer

customers, recipients = Customer.__table__, BroadcastRecipient.__table__
Instant = sa.DateTime(timezone=True)


async def take_snapshot(session: AsyncSession, broadcast_id: str, definition: BroadcastFile) -> int:
    """Insert the recipients; how many there are."""
    members = audience_select(definition.audience).distinct().subquery("members")
    audience = customers.join(members, members.c.customer_id == customers.c.id)
    schedule = definition.schedule
    if schedule.at is not None:
        due = sa.literal(due_in_zone(schedule, None), Instant)
    else:
        zones = (await session.exec(sa.select(customers.c.timezone).select_from(audience).distinct())).scalars()
        whens = [
            (customers.c.timezone == zone, sa.literal(due_in_zone(schedule, zone), Instant)) for zone in zones if zone
        ]
        fallback = sa.literal(due_in_zone(schedule, None), Instant)
        due = sa.case(*whens, else_=fallback) if whens else fallback
    await session.exec(
        sa.insert(recipients).from_select(
            ["broadcast_id", "customer_id", "due_at"],
            sa.select(sa.literal(broadcast_id, sa.String), customers.c.id, due).select_from(audience),
        )
    )
    # Counted, not the statement's rowcount: SQLite's driver does not report it for INSERT … SELECT.
    count = sa.select(sa.func.count()).where(recipients.c.broadcast_id == broadcast_id)
    return (await session.exec(count)).scalar_one()
