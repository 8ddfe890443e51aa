"""The broadcast lifecycle, enforced by the database:

    draft ──schedule──▶ scheduled ──(worker: start)──▶ sending ──(worker)──▶ done
                          │  ▲                          │  ▲
                        pause│resume                  pause│resume (or the failure threshold)
                          ▼  │                          ▼  │
                          paused ◀────────────────────────┘
    cancel: from draft, scheduled, sending or paused ──▶ cancelled

Each move is one `UPDATE … WHERE id = :id AND state IN (<allowed sources>)`: if another
caller moved the broadcast first, nothing is updated and the caller is told the state it
found. `state` itself is a CHECK constraint (storage/broadcast_models.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.broadcasts.as_journey import broadcast_journey_id
from orchestrator.storage.broadcast_models import Broadcast
from orchestrator.storage.models import Message
from orchestrator.vocabulary import MessageStatus

broadcasts = Broadcast.__table__

# action → (states it may start from, state it leads to); `resume` goes back to where the
# broadcast was: `sending` once its snapshot is taken, `scheduled` before.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "schedule": (("draft",), "scheduled"),
    "start": (("scheduled",), "sending"),
    "pause": (("scheduled", "sending"), "paused"),
    "resume": (("paused",), "sending|scheduled"),
    "finish": (("sending",), "done"),
    "cancel": (("draft", "scheduled", "sending", "paused"), "cancelled"),
}
USER_ACTIONS = ("schedule", "pause", "resume", "cancel")


class TransitionRefused(Exception):
    def __init__(self, broadcast_id: str, action: str, state: str | None) -> None:
        self.broadcast_id, self.action, self.state = broadcast_id, action, state
        allowed = " or ".join(TRANSITIONS[action][0])
        super().__init__(
            f"broadcast '{broadcast_id}' does not exist"
            if state is None
            else f"cannot {action} broadcast '{broadcast_id}': it is {state} (only {allowed} can)"
        )


@dataclass(frozen=True)
class Moved:
    broadcast_id: str
    state: str


async def move(
    session: AsyncSession, broadcast_id: str, action: str, now: datetime, reason: str | None = None
) -> Moved:
    """Apply `action` in the caller's transaction, or raise TransitionRefused naming the state found."""
    sources, target = TRANSITIONS[action]
    b = broadcasts.c
    new_state = (
        sa.case((b.snapshot_at.is_not(None), "sending"), else_="scheduled") if target == "sending|scheduled" else target
    )
    result = await session.exec(
        sa.update(broadcasts)
        .where(b.id == broadcast_id, b.state.in_(sources))
        .values(state=new_state, state_reason=reason, updated_at=now)
        .returning(b.state)
    )
    moved = result.scalar_one_or_none()
    if moved is None:
        found = (await session.exec(sa.select(b.state).where(b.id == broadcast_id))).scalar_one_or_none()
        raise TransitionRefused(broadcast_id, action, found)
    if action == "cancel":
        await skip_queued(session, broadcast_id, now)
    return Moved(broadcast_id, moved)


async def skip_queued(session: AsyncSession, broadcast_id: str, now: datetime) -> None:
    """A cancelled broadcast's messages not handed to a provider yet never will be."""
    m = Message.__table__.c
    await session.exec(
        sa.update(Message.__table__)
        .where(m.journey_id == broadcast_journey_id(broadcast_id), m.status == MessageStatus.queued)
        .values(status=MessageStatus.skipped, status_reason="broadcast cancelled", updated_at=now)
    )
