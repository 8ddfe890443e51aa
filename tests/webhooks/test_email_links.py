"""Our own links in e-mail: open pixel, click redirect, unsubscribe page and RFC 8058.

The last tests send the welcome e-mail through a real SMTP server (and the fake SendGrid)
and follow the links found in what arrived.
"""

from __future__ import annotations

import re

import httpx
import pytest
from sqlmodel import col, select

from orchestrator.api.app import create_app
from orchestrator.clock import SimulatedClock, utc
from orchestrator.delivery.landing import landing_url
from orchestrator.delivery.tracking import click_url, open_pixel_url, unsubscribe_url
from orchestrator.engine.dispatch import outbound
from orchestrator.engine.loop import WorkerLoop
from orchestrator.fakes.sendgrid import create_fake_sendgrid_app
from orchestrator.fakes.server import serve_in_thread
from orchestrator.startup import build_runtime
from orchestrator.storage.feedback_models import Consent, MessageStatusEvent
from orchestrator.storage.models import Customer, Message
from tests.conftest import START, _reset, make_settings
from tests.providers import smtp_server
from tests.webhooks.test_sendgrid import message_of, post_purchase_email, rows, welcome_email

ONE_CLICK = {"content-type": "application/x-www-form-urlencoded"}


def path_of(url: str) -> str:
    return httpx.URL(url).raw_path.decode()


def tampered(url: str) -> str:
    at = url.rindex(".") - 3  # inside the signature
    return url[:at] + ("A" if url[at] != "A" else "B") + url[at + 1 :]


async def history(runtime, message_id: int) -> list[MessageStatusEvent]:
    return await rows(runtime, MessageStatusEvent, MessageStatusEvent.message_id == message_id)


# --- open pixel and click redirect --------------------------------------------------------


async def test_the_open_pixel_records_an_open_and_answers_a_gif(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    response = await client.get(
        path_of(open_pixel_url(runtime.settings, message.id)), headers={"user-agent": "Mail/1.0"}
    )
    assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF89a") and "no-store" in response.headers["cache-control"]
    message = await message_of(runtime, "ann")
    assert utc(message.first_opened_at) == START and message.status == "delivered"
    [opened] = await history(runtime, message.id)
    assert (opened.source, opened.status, opened.detail) == ("tracking", "open", {"user_agent": "Mail/1.0"})


async def test_a_bad_pixel_token_still_answers_a_gif_and_records_nothing(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    unsubscribe_token = unsubscribe_url(runtime.settings, customer_id=message.customer_id).rsplit("/", 1)[1]
    for path in (
        path_of(tampered(open_pixel_url(runtime.settings, message.id))),
        "/t/o/garbage.gif",
        f"/t/o/{unsubscribe_token}.gif",
    ):  # a genuine token, but not for opens
        response = await client.get(path)
        assert response.status_code == 200 and response.content.startswith(b"GIF89a"), path
    assert await history(runtime, message.id) == []


async def test_a_click_records_and_redirects_to_the_signed_url(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    target = "https://shop.example/account?from=mail&x=%C3%A9"
    response = await client.get(path_of(click_url(runtime.settings, message.id, target)))
    assert response.status_code == 302 and response.headers["location"] == landing_url(
        runtime.settings, target, message
    )
    assert response.headers["location"].startswith(target + "&utm_source=orchestrator&utm_medium=email&")
    assert response.headers["referrer-policy"] == "no-referrer"  # the token stays with us
    message = await message_of(runtime, "ann")
    assert utc(message.first_clicked_at) == START
    [clicked] = await history(runtime, message.id)
    assert (clicked.status, clicked.detail["url"]) == ("click", target)


async def test_a_bad_click_token_is_404_never_a_redirect(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    good = click_url(runtime.settings, message.id, "https://shop.example/")
    for path in (
        path_of(tampered(good)),
        "/t/c/garbage",
        path_of(open_pixel_url(runtime.settings, message.id)).replace("/t/o/", "/t/c/").removesuffix(".gif"),
    ):
        response = await client.get(path)
        assert response.status_code == 404 and "location" not in response.headers, path
    assert await history(runtime, message.id) == []


# --- unsubscribe --------------------------------------------------------------------------


async def consents(runtime) -> list[Consent]:
    return await rows(runtime, Consent, Consent.channel == "email")


async def test_get_shows_a_form_and_never_unsubscribes(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    url = unsubscribe_url(runtime.settings, customer_id=message.customer_id, message_id=message.id)
    for _ in range(3):  # a mail scanner prefetching the link, several times
        page = await client.get(path_of(url))
        assert page.status_code == 200 and '<form method="post">' in page.text and "Unsubscribe" in page.text
    assert await consents(runtime) == []


async def test_post_from_the_page_unsubscribes_and_confirms(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    url = unsubscribe_url(runtime.settings, customer_id=message.customer_id, message_id=message.id)
    page = await client.post(path_of(url), data={}, headers={"user-agent": "Firefox"})
    assert page.status_code == 200 and "You are unsubscribed" in page.text
    [consent] = await consents(runtime)
    assert (consent.status, consent.source, consent.customer_id) == (
        "opted_out",
        "unsubscribe_link",
        message.customer_id,
    )
    assert consent.evidence == {"message_id": message.id, "method": "form", "user_agent": "Firefox", "ip": "127.0.0.1"}
    later = await post_purchase_email(client, runtime)
    assert (later.status, later.status_reason) == ("skipped", "email opted out")


async def test_rfc_8058_one_click_post_unsubscribes_once(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    path = path_of(unsubscribe_url(runtime.settings, customer_id=message.customer_id, message_id=message.id))
    for _ in range(2):  # the mailbox provider may post more than once
        response = await client.post(path, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
        assert response.status_code == 200
    [consent] = await consents(runtime)
    assert consent.evidence["method"] == "one_click"


async def test_bad_unsubscribe_tokens_change_nothing(client, drain, runtime):
    message = await welcome_email(client, drain, runtime)
    good = unsubscribe_url(runtime.settings, customer_id=message.customer_id, message_id=message.id)
    for url in (tampered(good), unsubscribe_url(runtime.settings, customer_id=999_999)):
        assert (await client.get(path_of(url))).status_code == 404
        assert (
            await client.post(path_of(url), content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
        ).status_code == 404
    assert await consents(runtime) == []


@pytest.mark.parametrize(
    "locale, words", [("fr-CA", "Me désabonner"), ("es", "Darme de baja"), ("zh-TW", "取消訂閱"), ("de", "Unsubscribe")]
)
async def test_the_page_speaks_the_customers_language(client, runtime, locale, words):
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        customer = Customer(user_id="polyglot", email="p@example.com", locale=locale, created_at=now, updated_at=now)
        session.add(customer)
        await session.flush()
        customer_id = customer.id
    page = await client.get(path_of(unsubscribe_url(runtime.settings, customer_id=customer_id)))
    assert words in page.text


# --- what really goes out -----------------------------------------------------------------


@pytest.fixture
async def app_on_smtp(database_url):
    """The app on a real SMTP server, with link tracking on."""
    with smtp_server() as (inbox, port):
        await _reset(database_url)
        settings = make_settings(
            database_url,
            email_provider="smtp",
            smtp_port=port,
            public_base_url="https://mail.shop.example",
            secret_key="test-secret",
        )
        runtime = await build_runtime(settings, clock=SimulatedClock(START))
        app = create_app(settings, run_worker=False, runtime=runtime)
        app.state.runtime, app.state.worker_loop = runtime, WorkerLoop(runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            yield http, runtime, inbox
        await runtime.aclose()


async def test_welcome_over_smtp_carries_one_click_unsubscribe_and_tracking(app_on_smtp):
    client, runtime, inbox = app_on_smtp
    await welcome_email(client, WorkerLoop(runtime).drain, runtime)
    [mail] = inbox.messages
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = re.fullmatch(r"<(https://mail\.shop\.example/unsubscribe/[\w.-]+)>", mail["List-Unsubscribe"]).group(
        1
    )
    html = mail.get_body(("html",)).get_content()
    pixel = re.search(r'<img src="(https://mail\.shop\.example/t/o/[\w.-]+\.gif)"', html).group(1)
    assert "/t/o/" not in mail.get_body(("plain",)).get_content()

    # Following what arrived: the pixel records an open, the header unsubscribes in one click.
    assert (await client.get(path_of(pixel))).status_code == 200
    response = await client.post(path_of(unsubscribe), content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert response.status_code == 200
    message = await message_of(runtime, "ann")
    assert message.first_opened_at is not None
    async with runtime.sessions() as session:
        [consent] = (await session.exec(select(Consent).order_by(col(Consent.id)))).all()
    assert (consent.status, consent.source, consent.evidence["message_id"]) == (
        "opted_out",
        "unsubscribe_link",
        message.id,
    )


def test_transactional_mail_has_no_unsubscribe_header():
    settings = make_settings("sqlite://", email_provider="smtp")
    row = Message(
        id=5,
        send_key="k",
        customer_id=1,
        channel="email",
        status="queued",
        to_address="a@b.c",
        html='<a href="https://shop.example/reset?t=1">Reset</a>',
        marketing=False,
    )
    sent = outbound(row, settings)
    assert sent.unsubscribe_url is None and sent.html == row.html  # reset links never pass through a redirect


async def test_welcome_through_sendgrid_carries_the_headers_and_untouched_html(database_url):
    with serve_in_thread(create_fake_sendgrid_app()) as fake_url:
        await _reset(database_url)
        settings = make_settings(database_url, email_provider="sendgrid", sendgrid_api_base_url=fake_url)
        runtime = await build_runtime(settings, clock=SimulatedClock(START))
        try:
            app = create_app(settings, run_worker=False, runtime=runtime)
            app.state.runtime, app.state.worker_loop = runtime, WorkerLoop(runtime)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                await welcome_email(client, WorkerLoop(runtime).drain, runtime)
        finally:
            await runtime.aclose()
        [arrived] = httpx.get(f"{fake_url}/_admin/messages").json()["messages"]
    payload = arrived["request"]
    assert payload["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert payload["headers"]["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/unsubscribe/")
    assert payload["custom_args"]["send_key"]
    html = next(c["value"] for c in payload["content"] if c["type"] == "text/html")
    assert "/t/o/" not in html and "/t/c/" not in html  # SendGrid does its own tracking
