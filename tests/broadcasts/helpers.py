"""Customers and broadcasts for the broadcast tests, made the way the service makes them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import select

from orchestrator.broadcasts.loader import from_body
from orchestrator.broadcasts.service import act, create_draft
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall
from orchestrator.storage.broadcast_models import Broadcast, BroadcastRecipient
from orchestrator.storage.models import Message
from tests.conftest import START


async def add_customers(runtime, count: int, prefix: str = "c", **traits: Any) -> list[str]:
    user_ids = [f"{prefix}{n}" for n in range(count)]
    calls = [
        IdentifyCall(userId=user_id, traits={"phone": f"+3361234{n:04d}", "sms_opt_in": True, **traits})
        for n, user_id in enumerate(user_ids)
    ]
    async with runtime.sessions() as session, session.begin():
        await ingest(session, runtime, calls)
    return user_ids


def body(broadcast_id: str = "spring-sale", user_ids: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": broadcast_id,
        "audience": fields.pop("audience", None) or {"user_ids": user_ids or ["c0"]},
        "channel": "sms",
        "template": "black-friday-sms",
        "vars": {"discount_code": "SPRING15"},
        "schedule": {"at": START.isoformat()},
        **fields,
    }


async def scheduled(runtime, **fields: Any) -> str:
    loaded = from_body(body(**fields))
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        await create_draft(session, loaded, now)
        await act(session, loaded.definition.id, "schedule", now)
    return loaded.definition.id


async def state_of(runtime, broadcast_id: str) -> Broadcast:
    async with runtime.sessions() as session:
        return await session.get(Broadcast, broadcast_id)


async def broadcast_messages(runtime, broadcast_id: str) -> list[Message]:
    async with runtime.sessions() as session:
        return list(
            (await session.exec(select(Message).where(Message.journey_id == f"broadcast:{broadcast_id}"))).all()
        )


async def recipient_count(runtime, broadcast_id: str) -> int:
    async with runtime.sessions() as session:
        r = BroadcastRecipient.__table__.c
        return (await session.exec(sa.select(sa.func.count()).where(r.broadcast_id == broadcast_id))).scalar_one()
