"""`members_select`: the contract broadcasts build on (an INSERT … SELECT of the members)."""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator.segments.membership import members_select
from orchestrator.storage.models import Customer
from orchestrator.storage.segment_models import SegmentMember
from tests.conftest import START


async def add_customers(session, *user_ids: str) -> list[int]:
    customers = [Customer(user_id=u, created_at=START, updated_at=START) for u in user_ids]
    session.add_all(customers)
    await session.flush()
    return [c.id for c in customers]


async def test_members_select_feeds_an_insert_select(runtime):
    scratch = sa.Table("scratch_audience", sa.MetaData(), sa.Column("customer_id", sa.BigInteger))
    async with runtime.sessions() as session, session.begin():
        a, b, c = await add_customers(session, "a", "b", "c")
        session.add_all(
            [
                SegmentMember(segment_id="vip", customer_id=a, entered_at=START),
                SegmentMember(segment_id="vip", customer_id=c, entered_at=START),
                SegmentMember(segment_id="other", customer_id=b, entered_at=START),
            ]
        )
        await session.flush()
        await session.run_sync(lambda s: scratch.create(s.connection()))
        await session.exec(sa.insert(scratch).from_select(["customer_id"], members_select("vip")))
        rows = (await session.exec(sa.select(scratch.c.customer_id))).all()
        await session.run_sync(lambda s: scratch.drop(s.connection()))
    assert sorted(r[0] for r in rows) == [a, c]
