"""A send that failed for good on its channel goes out once more on the step's fallback."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.customers.consent import load_permissions
from orchestrator.engine.messages import prepare_message
from orchestrator.storage.models import Customer, Enrollment, Message
from orchestrator.storage.queries import insert_many_ignoring_conflict


async def queue_fallbacks(session: AsyncSession, runtime, failed: list[Message], now: datetime) -> None:
    if not failed:
        return
    enrollments = {
        e.id: e
        for e in (
            await session.exec(select(Enrollment).where(col(Enrollment.id).in_({m.enrollment_id for m in failed})))
        ).all()
    }
    customers = {
        c.id: c
        for c in (
            await session.exec(select(Customer).where(col(Customer.id).in_({m.customer_id for m in failed})))
        ).all()
    }
    permissions = await load_permissions(session, customers.values(), runtime.settings.erasure_key)
    rows = []
    for message in failed:
        enrollment = enrollments.get(message.enrollment_id)
        journey = enrollment and runtime.catalog.version(enrollment.journey_id, enrollment.journey_version)
        node = journey and journey.nodes.get(message.step_id)
        if node is None:
            continue
        fallback = prepare_message(
            runtime.templates,
            runtime.channels.provider_name,
            enrollment,
            customers[message.customer_id],
            node,
            now,
            fallback_for=message,
            permissions=permissions[message.customer_id],
            link_settings=runtime.settings,
            priority=journey.definition.priority,
        )
        rows.append(fallback.as_row())
    # The fallback's send key is derived from the original's: it too can only exist once.
    await insert_many_ignoring_conflict(session, Message, rows, ["send_key"])
