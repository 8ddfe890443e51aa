"""Enrollment counts per journey, version and status, kept by the database's triggers.

Five enrollments are written the ways the engine writes them (ORM inserts, a bulk status
update, a cursor-only update, a delete); the counts must be exact after each commit,
without any refresh, and stay exact when folded or rebuilt.
"""

from __future__ import annotations

import sqlalchemy as sa

from orchestrator.kpis.enrollment_counts import counts, enrollment_counts, fold_deltas, rebuild_enrollment_counts
from orchestrator.storage.models import Customer, Enrollment
from tests.conftest import START

enrollments = Enrollment.__table__


async def add_enrollments(runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        people = [Customer(user_id=f"u{i}", created_at=START, updated_at=START) for i in range(5)]
        session.add_all(people)
        await session.flush()
        for person, (journey, version) in zip(
            people, [("cart", "v1"), ("cart", "v1"), ("cart", "v2"), ("winback", "v1"), ("winback", "v1")]
        ):
            session.add(
                Enrollment(
                    journey_id=journey, journey_version=version, customer_id=person.id, cursor="first", entered_at=START
                )
            )


async def counted(runtime) -> dict:
    async with runtime.sessions() as session:
        return await enrollment_counts(session)


async def delta_rows(runtime) -> int:
    async with runtime.sessions() as session:
        return (await session.exec(sa.select(sa.func.count()).select_from(counts))).scalar_one()


async def test_counts_follow_inserts_status_changes_and_deletes(runtime):
    await add_enrollments(runtime)
    assert await counted(runtime) == {
        ("cart", "v1", "active"): 2,
        ("cart", "v2", "active"): 1,
        ("winback", "v1", "active"): 2,
    }

    async with runtime.sessions() as session, session.begin():  # as the worker completes a batch
        await session.exec(
            sa.update(enrollments)
            .where(
                enrollments.c.customer_id.in_(sa.select(Customer.id).where(Customer.user_id.in_(["u0", "u2", "u3"])))
            )
            .values(status="completed")
        )
    assert await counted(runtime) == {
        ("cart", "v1", "active"): 1,
        ("cart", "v1", "completed"): 1,
        ("cart", "v2", "completed"): 1,
        ("winback", "v1", "active"): 1,
        ("winback", "v1", "completed"): 1,
    }

    rows_before = await delta_rows(runtime)
    async with runtime.sessions() as session, session.begin():  # a step moves the cursor only: no delta
        await session.exec(sa.update(enrollments).values(cursor="second"))
    assert await delta_rows(runtime) == rows_before

    async with runtime.sessions() as session, session.begin():
        await session.exec(sa.delete(enrollments).where(enrollments.c.journey_version == "v2"))
    assert await counted(runtime) == {
        ("cart", "v1", "active"): 1,
        ("cart", "v1", "completed"): 1,
        ("winback", "v1", "active"): 1,
        ("winback", "v1", "completed"): 1,
    }


async def test_folding_keeps_the_counts_in_one_row_per_key(runtime):
    await add_enrollments(runtime)
    async with runtime.sessions() as session, session.begin():
        await session.exec(sa.update(enrollments).where(enrollments.c.journey_id == "winback").values(status="exited"))
    before = await counted(runtime)
    async with runtime.sessions() as session, session.begin():
        await fold_deltas(session)
    assert (
        await counted(runtime)
        == before
        == {("cart", "v1", "active"): 2, ("cart", "v2", "active"): 1, ("winback", "v1", "exited"): 2}
    )
    assert await delta_rows(runtime) == 3


async def test_rebuild_counts_again_after_a_load_that_bypassed_the_triggers(runtime):
    await add_enrollments(runtime)
    async with runtime.sessions() as session, session.begin():
        await session.exec(sa.delete(counts))  # what a bulk load with triggers off leaves
    assert await counted(runtime) == {}
    async with runtime.sessions() as session, session.begin():
        await rebuild_enrollment_counts(session)
    assert await counted(runtime) == {
        ("cart", "v1", "active"): 2,
        ("cart", "v2", "active"): 1,
        ("winback", "v1", "active"): 2,
    }


async def test_the_journey_listing_reads_the_counts(client, runtime):
    await add_enrollments(runtime)
    async with runtime.sessions() as session, session.begin():
        await session.exec(
            sa.insert(counts).values(journey_id="welcome", journey_version="x", status="active", enrollments=7)
        )  # a count no enrollment backs: read, not scanned
    [welcome] = [j for j in (await client.get("/v1/journeys")).json() if j["id"] == "welcome"]
    assert (welcome["enrollments"], welcome["enrollments_by_version"]) == ({"active": 7}, {"x": 7})
