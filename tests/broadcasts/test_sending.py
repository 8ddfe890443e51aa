"""From schedule to messages: the snapshot, batches, the rate cap, the failure pause, done."""

from __future__ import annotations

from orchestrator.broadcasts.sending import advance_broadcasts
from orchestrator.engine.loop import WorkerLoop
from orchestrator.vocabulary import MessageStatus
from tests.broadcasts.helpers import add_customers, broadcast_messages, scheduled, state_of


async def test_a_scheduled_broadcast_sends_one_message_per_recipient_and_finishes(runtime):
    users = await add_customers(runtime, 5)
    broadcast_id = await scheduled(runtime, user_ids=users)
    await advance_broadcasts(runtime)
    assert (await state_of(runtime, broadcast_id)).state == "sending"
    await WorkerLoop(runtime).drain()
    await advance_broadcasts(runtime)  # nothing left queued: done
    messages = await broadcast_messages(runtime, broadcast_id)
    assert sorted(m.send_key for m in messages) == sorted(f"broadcast:{broadcast_id}:{m.customer_id}" for m in messages)
    assert len(messages) == 5 and {m.status for m in messages} == {MessageStatus.sent}
    assert all("SPRING15" in m.body for m in messages)
    assert (await state_of(runtime, broadcast_id)).state == "done"
