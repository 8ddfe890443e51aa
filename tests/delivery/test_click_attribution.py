"""Click attribution before last touch, on hand-computed data (`credited_message`)."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.delivery.conversions import credited_message
from orchestrator.storage.models import Message
from tests.conftest import START

DAY = timedelta(days=1)


def message(id, channel, delivered=None, clicked=None) -> Message:
    return Message(
        id=id,
        send_key=f"k{id}",
        customer_id=1,
        channel=channel,
        status="delivered",
        delivered_at=delivered and START + delivered,
        first_clicked_at=clicked and START + clicked,
    )


def test_an_order_after_a_click_goes_to_the_clicked_message_not_the_last_delivered():
    email = message(1, "email", delivered=1 * DAY)
    sms = message(2, "sms", delivered=2 * DAY, clicked=2 * DAY + timedelta(hours=1))
    whatsapp = message(3, "whatsapp", delivered=3 * DAY)  # last touch, but never clicked
    assert credited_message([email, sms, whatsapp], START + 4 * DAY) is sms
    assert credited_message([email, whatsapp], START + 4 * DAY) is whatsapp  # no click: last touch as before


def test_the_latest_click_wins_and_clicks_after_the_order_do_not_count():
    sms = message(1, "sms", delivered=1 * DAY, clicked=1 * DAY)
    whatsapp = message(2, "whatsapp", delivered=2 * DAY, clicked=2 * DAY)
    assert credited_message([sms, whatsapp], START + 3 * DAY) is whatsapp
    late = message(3, "whatsapp", delivered=1 * DAY, clicked=5 * DAY)  # clicked after the order
    assert credited_message([message(4, "email", delivered=2 * DAY), late], START + 3 * DAY).id == 4
    assert credited_message([message(5, "sms")], START + 3 * DAY) is None  # nothing reached them
