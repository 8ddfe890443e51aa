"""What the API, the CLI and the console do with broadcasts, in one place: list, read,
create a draft, move through the lifecycle, preview the audience."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.broadcasts.as_journey import SEND_STEP, as_journey, broadcast_journey_id
from orchestrator.broadcasts.audience import audience_select
from orchestrator.broadcasts.loader import LoadedBroadcast, definition_of, save_draft
from orchestrator.broadcasts.states import USER_ACTIONS, Moved, move
from orchestrator.customers.consent import load_permissions
from orchestrator.delivery.conversions import in_holdout
from orchestrator.engine.messages import address_for, choose_channel
from orchestrator.storage.broadcast_models import Broadcast, BroadcastRecipient
from orchestrator.storage.models import Customer, Message

PREVIEW_SAMPLE = 10
PREVIEW_CHUNK = 5000


async def list_broadcasts(session: AsyncSession) -> list[Broadcast]:
    return list((await session.exec(select(Broadcast).order_by(col(Broadcast.created_at).desc(), Broadcast.id))).all())


async def get_broadcast(session: AsyncSession, broadcast_id: str) -> Broadcast | None:
    return await session.get(Broadcast, broadcast_id)


async def create_draft(session: AsyncSession, loaded: LoadedBroadcast, now: datetime) -> bool:
    """False when a broadcast with this id is already past draft."""
    return await save_draft(session, loaded, now)


async def act(session: AsyncSession, broadcast_id: str, action: str, now: datetime) -> Moved:
    if action not in USER_ACTIONS:
        raise ValueError(f"unknown action '{action}'")
    return await move(session, broadcast_id, action, now)


async def progress(session: AsyncSession, broadcast_id: str) -> dict[str, int]:
    """Recipients made into messages so far, and the messages by status."""
    r = BroadcastRecipient.__table__.c
    materialized = (
        await session.exec(
            sa.select(sa.func.count()).where(r.broadcast_id == broadcast_id, r.materialized_at.is_not(None))
        )
    ).scalar_one()
    m = Message.__table__.c
    statuses = (
        await session.exec(
            sa.select(m.status, sa.func.count())
            .where(m.journey_id == broadcast_journey_id(broadcast_id))
            .group_by(m.status)
        )
    ).all()
    return {"materialized": int(materialized), **{status: int(n) for status, n in statuses}}


@dataclass
class Preview:
    audience: int = 0
    sample: list[str] = field(default_factory=list)
    held_out: int = 0
    no_consent: int = 0
    no_address: int = 0
    would_send: int = 0
    channels: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


async def preview(session: AsyncSession, broadcast: Broadcast, erasure_key: str | None) -> Preview:
    """Who would get it if the snapshot were taken now: the audience, a sample of it, and
    how many the holdout, missing consent or a missing address would leave out.
    `erasure_key`: the runtime's `settings.erasure_key` (see `load_permissions`)."""
    definition = definition_of(broadcast)
    journey = as_journey(definition, broadcast.version)
    node = journey.nodes[SEND_STEP]
    members = audience_select(definition.audience).distinct().subquery("members")
    ids = (await session.exec(sa.select(members.c.customer_id).order_by(members.c.customer_id))).scalars().all()
    result, channels = Preview(audience=len(ids)), Counter()
    for start in range(0, len(ids), PREVIEW_CHUNK):
        chunk = ids[start : start + PREVIEW_CHUNK]
        customers = (await session.exec(select(Customer).where(col(Customer.id).in_(chunk)))).all()
        permissions = await load_permissions(session, customers, erasure_key)
        for customer in customers:
            if len(result.sample) < PREVIEW_SAMPLE:
                result.sample.append(customer.user_id)
            if in_holdout(journey.id, customer.user_id, journey.definition.holdout):
                result.held_out += 1
                continue
            channel, refusal = choose_channel(customer, permissions[customer.id], node)
            if refusal is None:
                result.would_send += 1
                channels[channel.value] += 1
            elif address_for(customer, channel) is None:
                result.no_address += 1
            else:
                result.no_consent += 1
    result.channels = dict(channels)
    return result
