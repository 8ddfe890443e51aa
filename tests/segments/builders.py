"""Hand-built customers, events, consents and journey history for segment tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count

import sqlalchemy as sa
import yaml

from orchestrator.segments.conditions import segment_query
from orchestrator.segments.loader import parse_segment
from orchestrator.storage.feedback_models import Consent, Conversion
from orchestrator.storage.models import Customer, Enrollment, Event, Message
from tests.conftest import START

_ids = count(1)


def days_ago(days: float) -> datetime:
    return START - timedelta(days=days)


async def customer(session, user_id: str, **fields) -> Customer:
    row = Customer(user_id=user_id, created_at=START, updated_at=START, **fields)
    session.add(row)
    await session.flush()
    return row


async def event(session, who: Customer, name: str, at: datetime, kind: str = "track", **properties) -> Event:
    row = Event(
        message_id=f"m-{next(_ids)}",
        customer_id=who.id,
        type=kind,
        name=name,
        properties=properties,
        timestamp=at,
        received_at=at,
    )
    session.add(row)
    await session.flush()
    return row


async def consent(session, who: Customer, channel: str, status: str, at: datetime = START) -> None:
    session.add(Consent(customer_id=who.id, channel=channel, status=status, source="api", recorded_at=at))
    await session.flush()


async def enrollment(session, who: Customer, journey: str, entered: datetime, converted: datetime | None = None):
    row = Enrollment(
        journey_id=journey,
        journey_version="v1",
        customer_id=who.id,
        status="completed",
        entered_at=entered,
        converted_at=converted,
    )
    session.add(row)
    await session.flush()
    return row


async def conversion(session, who: Customer, journey: str, at: datetime) -> None:
    entered = await enrollment(session, who, journey, at - timedelta(days=1), converted=at)
    message = Message(
        send_key=f"k-{next(_ids)}",
        enrollment_id=entered.id,
        customer_id=who.id,
        journey_id=journey,
        channel="email",
        status="delivered",
        created_at=at,
        updated_at=at,
    )
    session.add(message)
    await session.flush()
    order = await event(session, who, "Order Completed", at, revenue=10)
    session.add(
        Conversion(
            order_key=f"o-{next(_ids)}",
            event_id=order.id,
            customer_id=who.id,
            enrollment_id=entered.id,
            journey_id=journey,
            message_id=message.id,
            channel="email",
            converted_at=at,
        )
    )
    await session.flush()


def segment_from(where_yaml: str, segment_id: str = "test"):
    text = yaml.safe_dump({"id": segment_id, "where": yaml.safe_load(where_yaml)})
    from pathlib import Path

    return parse_segment(text, Path(f"segments/{segment_id}.yaml"))


async def matching_user_ids(session, where_yaml: str, now: datetime = START) -> list[str]:
    segment = segment_from(where_yaml)
    ids = segment_query(segment.definition.where, now, session.get_bind().dialect.name).subquery()
    rows = await session.exec(
        sa.select(Customer.__table__.c.user_id).where(Customer.__table__.c.id.in_(sa.select(ids.c.id)))
    )
    return sorted(rows.scalars())
