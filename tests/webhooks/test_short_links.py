"""Short links in SMS through the real engine and app: the launch post-purchase journey's
second-code SMS, followed as a person, as preview bots, and with tampered tokens."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlmodel import select

from orchestrator.clock import utc
from orchestrator.delivery.landing import landing_url
from orchestrator.delivery.short_links import ShortLink, short_url
from orchestrator.delivery.statuses import record_status
from orchestrator.storage.feedback_models import MessageStatusEvent
from orchestrator.storage.models import Message
from orchestrator.vocabulary import Channel
from tests.api.test_launch_journeys import DAY, advance, identify, outbox, track
from tests.conftest import refresh_kpis_as_the_worker_does

SHORT = re.compile(r"http://\S+/s/\S+")
PHONE_BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


async def second_code_sms(client, drain, runtime, user_id="lea", **traits) -> Message:
    await identify(client, user_id, phone="+33600000001", sms_opt_in=True, size="38", **traits)
    await track(client, user_id, "Order Completed", order_id="A-1", product_id="boots-12")
    await advance(client, 7 * DAY)
    await drain()
    async with runtime.sessions() as session:
        return (await session.exec(select(Message).where(Message.step_id == "second-code-sms"))).one()


def path_of(url: str) -> str:
    return httpx.URL(url).raw_path.decode()


async def history(runtime, message_id: int) -> list[MessageStatusEvent]:
    async with runtime.sessions() as session:
        return list(
            (
                await session.exec(
                    select(MessageStatusEvent).where(
                        MessageStatusEvent.message_id == message_id, MessageStatusEvent.source == "short_link"
                    )
                )
            ).all()
        )


async def reload(runtime, message_id: int) -> Message:
    async with runtime.sessions() as session:
        return await session.get(Message, message_id)


async def test_the_sent_sms_carries_a_short_signed_link_into_the_app(client, drain, runtime):
    message = await second_code_sms(client, drain, runtime)
    [sent] = outbox(runtime, Channel.sms)
    [link] = SHORT.findall(sent.body)
    assert sent.body == message.body and "shop.example" not in sent.body and "\ue000" not in sent.body
    assert message.tracked_links == 1 and message.segments == 1
    [stored] = message.template_metadata["links"]
    assert stored == {
        "index": 0,
        "url": "https://shop.example/second-code?code=AGAIN10-LEA&size=38",
        "app": "shop://second-code?code=AGAIN10-LEA&size=38&after=boots-12",
    }


async def test_a_click_opens_the_app_page_and_counts_once(client, drain, runtime):
    message = await second_code_sms(client, drain, runtime)
    [link] = SHORT.findall(message.body)
    first = await client.get(path_of(link), headers={"user-agent": PHONE_BROWSER})
    assert first.status_code == 200 and first.headers["referrer-policy"] == "no-referrer"
    assert 'href="shop://second-code?code=AGAIN10-LEA&amp;size=38&amp;after=boots-12"' in first.text
    assert (
        'href="https://shop.example/second-code?code=AGAIN10-LEA&amp;size=38&amp;utm_source=orchestrator' in first.text
    )
    assert "Open the app" in first.text
    await advance(client, 3600)
    again = await client.get(path_of(link), headers={"user-agent": PHONE_BROWSER})
    assert again.status_code == 200
    message = await reload(runtime, message.id)
    clicks = [e for e in await history(runtime, message.id) if e.status == "click"]
    assert len(clicks) == 2  # both visits are in the history ...
    assert utc(message.first_clicked_at) == min(utc(c.occurred_at) for c in clicks)  # ... the message counts once
    await refresh_kpis_as_the_worker_does(client)
    kpis = (await client.get("/v1/kpis", params={"group_by": "channel"})).json()
    [sms] = [row for row in kpis["rows"] if row["channel"] == "sms"]
    assert (sms["clickable"], sms["clicked"], sms["click_rate"]) == (1, 1, 100.0)


@pytest.mark.parametrize(
    "method,headers,signal",
    [
        ("GET", {"user-agent": "WhatsApp/2.23.20.0 A"}, "user-agent: whatsapp"),
        ("GET", {"user-agent": "facebookexternalhit/1.1 Facebot Twitterbot/1.0"}, "user-agent: facebookexternalhit"),
        ("GET", {"user-agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"}, "user-agent: slackbot"),
        ("GET", {"user-agent": ""}, "no user-agent"),
        ("HEAD", {"user-agent": PHONE_BROWSER}, "head"),
        ("GET", {"user-agent": PHONE_BROWSER, "sec-purpose": "prefetch;prerender"}, "sec-purpose: prefetch;prerender"),
        ("GET", {"user-agent": PHONE_BROWSER, "purpose": "prefetch"}, "purpose: prefetch"),
    ],
)
async def test_a_preview_or_scan_is_recorded_but_counts_nothing(client, drain, runtime, method, headers, signal):
    message = await second_code_sms(client, drain, runtime)
    async with runtime.sessions() as session, session.begin():  # the carrier's receipt: it counts as clickable
        await record_status(
            session,
            await session.get(Message, message.id),
            source="twilio",
            status="delivered",
            now=runtime.clock.now(),
        )
    [link] = SHORT.findall(message.body)
    response = await client.request(method, path_of(link), headers=headers)
    assert response.status_code == 302  # the preview card shows the real web page
    assert response.headers["location"] == "https://shop.example/second-code?code=AGAIN10-LEA&size=38"
    message = await reload(runtime, message.id)
    assert message.first_clicked_at is None
    [event] = [e for e in await history(runtime, message.id) if e.source == "short_link"]
    assert (event.status, event.detail["signal"]) == ("link_preview", signal)
    await refresh_kpis_as_the_worker_does(client)
    kpis = (await client.get("/v1/kpis", params={"group_by": "channel"})).json()
    [sms] = [row for row in kpis["rows"] if row["channel"] == "sms"]
    assert (sms["clickable"], sms["clicked"], sms["click_rate"]) == (1, 0, 0.0)


def tampered(token: str, at: int) -> str:
    return token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]


async def test_a_tampered_or_forged_token_is_404_and_never_a_redirect(client, drain, runtime):
    message = await second_code_sms(client, drain, runtime)
    [link] = SHORT.findall(message.body)
    token = link.rsplit("/", 1)[1]
    forged_target = short_url(
        runtime.settings.model_copy(update={"secret_key": "not-ours"}),
        message.enrollment_id,
        message.send_key,
        ShortLink(0, "https://evil.example/"),
    )
    for path in (
        f"/s/{tampered(token, len(token) - 3)}",  # the signature
        f"/s/{tampered(token, 0)}",  # the enrollment id
        path_of(forged_target),
        "/s/garbage",
        "/s/" + "x" * 200,
    ):
        response = await client.get(path, headers={"user-agent": PHONE_BROWSER})
        assert response.status_code == 404 and "location" not in response.headers, path
    assert await history(runtime, message.id) == []


async def test_a_plain_url_redirects_to_where_the_message_said(client, drain, runtime):
    """A link without an app target: the person goes straight to the web page (302)."""
    message = await second_code_sms(client, drain, runtime)
    link = ShortLink(0, "https://shop.example/stores?city=Lyon&x=%C3%A9")
    async with runtime.sessions() as session, session.begin():
        row = await session.get(Message, message.id)
        row.template_metadata = {**row.template_metadata, "links": [link.as_metadata()]}
        session.add(row)
    url = short_url(runtime.settings, message.enrollment_id, message.send_key, link)
    response = await client.get(path_of(url), headers={"user-agent": PHONE_BROWSER})
    # the page as the message said, with what credits the visit (tests/delivery/test_landing.py)
    assert response.status_code == 302 and response.headers["location"] == landing_url(runtime.settings, link.url, row)
    assert response.headers["location"].startswith(link.url + "&utm_source=orchestrator&utm_medium=sms&")
    assert (await reload(runtime, message.id)).first_clicked_at is not None
