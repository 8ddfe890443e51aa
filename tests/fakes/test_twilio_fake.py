"""The fake Twilio over real HTTP, driven by httpx and by the unmodified `twilio` SDK."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from orchestrator.fakes.server import free_port, serve_in_thread
from orchestrator.fakes.twilio import (
    FakeTwilioSettings,
    create_fake_twilio_app,
    planned_statuses,
    read_witness_log,
)
from orchestrator.fakes.twilio_rules import billable_segments
from orchestrator.templating.sms import measure_sms

# The SDK's stock aiohttp client still passes `auth=` to aiohttp, which deprecates it; that
# is the SDK's business, not the fake's.
pytestmark = [
    pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning"),
]

AUTH_TOKEN = "test-fake-twilio-auth-token"  # the fake's token is random unless given
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH = (ACCOUNT_SID, AUTH_TOKEN)
SENDER = "+15005550006"
RECIPIENT = "+14155550100"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
FAST = FakeTwilioSettings(auth_token=AUTH_TOKEN, status_latency_seconds=0.01)

MESSAGE_RESOURCE_FIELDS = {
    "account_sid", "api_version", "body", "date_created", "date_sent", "date_updated",
    "direction", "error_code", "error_message", "from", "messaging_service_sid", "num_media",
    "num_segments", "price", "price_unit", "sid", "status", "subresource_uris", "to", "uri",
}  # fmt: skip


class CallbackReceiver:
    """A tiny webhook endpoint that keeps every status callback it is sent."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.app = FastAPI()

        @self.app.post("/status")
        async def status(request: Request) -> Response:
            form = await request.form()
            self.received.append({"params": dict(form), "signature": request.headers.get("x-twilio-signature")})
            return Response(status_code=204)

    def statuses(self, sid: str) -> list[str]:
        return [c["params"]["MessageStatus"] for c in self.for_sid(sid)]

    def for_sid(self, sid: str) -> list[dict]:
        return [c for c in self.received if c["params"]["MessageSid"] == sid]


async def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# One client for the whole module: a fresh httpx client per call spends most of its time
# building an SSL context.
HTTP = httpx.Client()


@pytest.fixture(scope="module", autouse=True)
def close_http_client_after_module() -> Iterator[None]:
    yield
    HTTP.close()


@pytest.fixture(scope="module")
def shared_fake() -> Iterator[str]:
    with serve_in_thread(create_fake_twilio_app(FAST)) as url:
        yield url


@pytest.fixture
def fake_url(shared_fake: str) -> str:
    HTTP.delete(f"{shared_fake}/_admin/messages")
    HTTP.post(f"{shared_fake}/_admin/fail-next", json={"count": 0})
    return shared_fake


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[CallbackReceiver, str]]:
    callbacks = CallbackReceiver()
    with serve_in_thread(callbacks.app) as url:
        yield callbacks, f"{url}/status"


def create(fake_url: str, auth=AUTH, **params) -> httpx.Response:
    form = {"To": RECIPIENT, "From": SENDER, "Body": "Your order shipped"} | params
    form = {key: value for key, value in form.items() if value is not None}
    return HTTP.post(f"{fake_url}{MESSAGES_PATH}", data=form, auth=auth)


def sdk_client(fake_url: str, auth_token: str = AUTH_TOKEN) -> Client:
    # The SDK's own client, pointed at the fake through its API domain; independent of the
    # redirecting HTTP client our adapters use.
    client = Client(ACCOUNT_SID, auth_token, http_client=AsyncTwilioHttpClient())
    client.api.base_url = fake_url
    return client


def test_create_answers_with_twilios_message_resource(fake_url: str) -> None:
    response = create(fake_url)

    assert response.status_code == 201
    assert response.headers["twilio-request-id"].startswith("RQ")
    message = response.json()
    assert set(message) == MESSAGE_RESOURCE_FIELDS
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    assert message["account_sid"] == ACCOUNT_SID
    assert (message["to"], message["from"]) == (RECIPIENT, SENDER)
    assert message["body"] == "Your order shipped"
    assert message["status"] == "queued"
    assert message["direction"] == "outbound-api"
    assert message["api_version"] == "2010-04-01"
    assert message["num_segments"] == "1" and message["num_media"] == "0"
    assert message["price"] is None and message["price_unit"] == "USD"
    assert message["error_code"] is None and message["error_message"] is None
    assert parsedate_to_datetime(message["date_created"]).utcoffset().total_seconds() == 0
    assert message["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message['sid']}.json"


# An escape pair never straddles two parts: € would sit at septets 153-154 of part 1, so it
# opens part 2, which then overflows by one. ceil(306 / 153) would say 2.
EURO_STRADDLE = "a" * 152 + "€" + "a" * 152
EMOJI_STRADDLE = "ê" * 66 + "🎉" + "ê" * 66  # the same for a surrogate pair in UCS-2


@pytest.mark.parametrize(
    ("body", "segments"),
    [("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3), ("{" * 80, 1), ("{" * 81, 2),
     ("Ж" * 70, 1), ("Ж" * 71, 2), ("🎉" * 35, 1), ("🎉" * 36, 2), (EURO_STRADDLE, 3), (EMOJI_STRADDLE, 3)],
)  # fmt: skip
def test_segments_are_counted_as_twilio_bills_them(body: str, segments: int) -> None:
    assert billable_segments(RECIPIENT, body) == segments


def test_a_whatsapp_message_or_one_with_media_only_is_one_message() -> None:
    assert billable_segments("whatsapp:" + RECIPIENT, "a" * 1000) == 1
    assert billable_segments(RECIPIENT, "") == 1


async def test_the_fake_bills_what_the_preview_measures(fake_url: str) -> None:
    response = create(fake_url, Body=EURO_STRADDLE)
    assert response.json()["num_segments"] == str(measure_sms(EURO_STRADDLE).segments) == "3"
    uri = f"{fake_url}{response.json()['uri']}"
    await wait_until(lambda: HTTP.get(uri, auth=AUTH).json()["status"] == "delivered")
    assert Decimal(HTTP.get(uri, auth=AUTH).json()["price"]) == 3 * Decimal("-0.0079")


@pytest.mark.parametrize(
    ("to", "http_status", "code"),
    [
        ("+15005550001", 400, 21211),
        ("+15005550002", 400, 21612),
        ("+15005550003", 400, 21408),
        ("+15005550004", 400, 21610),
        ("+15005550009", 400, 21614),
        ("+15005550429", 429, 20429),
        ("+15005550500", 500, 20500),
        ("0800 not a number", 400, 21211),
    ],
)
def test_magic_recipients_answer_twilios_error(fake_url: str, to: str, http_status: int, code: int) -> None:
    response = create(fake_url, To=to)

    assert response.status_code == http_status
    error = response.json()
    assert set(error) == {"code", "message", "more_info", "status"}
    assert (error["code"], error["status"]) == (code, http_status)
    assert error["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert HTTP.get(f"{fake_url}/_admin/messages").json() == []  # refused is not witnessed


@pytest.mark.parametrize(
    ("sender", "code"), [("+15005550001", 21212), ("+15005550007", 21606), ("+15005550008", 21611)]
)
def test_magic_senders_answer_twilios_error(fake_url: str, sender: str, code: int) -> None:
    assert create(fake_url, From=sender).json()["code"] == code


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"To": None}, 21604),
        ({"From": None}, 21603),
        ({"Body": None}, 21602),
        ({"Body": "x" * 1601}, 21617),
        ({"To": "whatsapp:" + RECIPIENT}, 21910),  # From is plain SMS
        ({"Body": None, "ContentSid": "HX123"}, 21655),
        ({"Body": None, "ContentSid": "HX" + "a" * 32, "ContentVariables": "{not json"}, 21656),
        ({"Body": None, "ContentSid": "HX" + "a" * 32, "ContentVariables": '{"1": ""}'}, 21656),
        ({"ContentVariables": '{"1": "Ann"}'}, 21654),
    ],
)
def test_invalid_requests_are_refused_like_twilio(fake_url: str, params: dict, code: int) -> None:
    response = create(fake_url, **params)

    assert (response.status_code, response.json()["code"]) == (400, code)


def test_whatsapp_outside_the_window_takes_only_templates(fake_url: str) -> None:
    addresses = {"To": "whatsapp:+15005550016", "From": "whatsapp:" + SENDER}

    free_form = create(fake_url, **addresses)
    template = create(fake_url, **addresses, Body=None, ContentSid="HX" + "b" * 32)

    assert (free_form.status_code, free_form.json()["code"]) == (400, 63016)
    assert template.status_code == 201
    assert template.json()["to"] == "whatsapp:+15005550016"


@pytest.mark.parametrize("auth", [(ACCOUNT_SID, "wrong-token"), ("AC" + "f" * 32, AUTH_TOKEN), None])
def test_wrong_credentials_get_401_with_twilios_error(fake_url: str, auth) -> None:
    response = create(fake_url, auth=auth)

    assert response.status_code == 401
    assert response.json()["code"] == 20003
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_the_real_sdk_creates_and_fetches_a_message(fake_url: str) -> None:
    client = sdk_client(fake_url)
    try:
        created = await client.messages.create_async(to=RECIPIENT, from_=SENDER, body="Hi 👋")
        assert created.sid.startswith("SM") and created.status == "queued"
        assert created.num_segments == "1"
        assert created.date_created is not None  # the SDK parsed our RFC 2822 date

        await wait_until(lambda: HTTP.get(
            f"{fake_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{created.sid}.json", auth=AUTH
        ).json()["status"] == "delivered")  # fmt: skip
        fetched = await client.messages(created.sid).fetch_async()
        assert fetched.status == "delivered"
        assert Decimal(fetched.price) == Decimal("-0.00790") and fetched.date_sent is not None
    finally:
        await client.http_client.close()


@pytest.mark.parametrize(("to", "code"), [("+15005550001", 21211), ("+15005550004", 21610), ("+15005550429", 20429)])
async def test_the_real_sdk_raises_twilios_errors(fake_url: str, to: str, code: int) -> None:
    client = sdk_client(fake_url)
    try:
        with pytest.raises(TwilioRestException) as raised:
            await client.messages.create_async(to=to, from_=SENDER, body="Hi")
        assert raised.value.code == code
    finally:
        await client.http_client.close()


async def test_the_real_sdk_with_a_wrong_token_gets_401(fake_url: str) -> None:
    client = sdk_client(fake_url, auth_token="not-the-token")
    try:
        with pytest.raises(TwilioRestException) as raised:
            await client.messages.create_async(to=RECIPIENT, from_=SENDER, body="Hi")
        assert (raised.value.status, raised.value.code) == (401, 20003)
    finally:
        await client.http_client.close()


def test_fetching_an_unknown_message_is_twilios_404(fake_url: str) -> None:
    response = HTTP.get(f"{fake_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/SM{'0' * 32}.json", auth=AUTH)

    assert (response.status_code, response.json()["code"]) == (404, 20404)


async def test_status_callbacks_are_signed_like_twilio(fake_url: str, receiver) -> None:
    callbacks, callback_url = receiver
    url = callback_url + "?journey=welcome"  # query strings are part of what Twilio signs

    sid = create(fake_url, StatusCallback=url).json()["sid"]

    await wait_until(lambda: callbacks.statuses(sid) == ["sent", "delivered"])
    validator = RequestValidator(AUTH_TOKEN)
    for callback in callbacks.for_sid(sid):
        params = callback["params"]
        assert validator.validate(url, params, callback["signature"])
        assert not RequestValidator("another-token").validate(url, params, callback["signature"])
        assert params["SmsSid"] == sid and params["SmsStatus"] == params["MessageStatus"]
        assert (params["From"], params["To"]) == (SENDER, RECIPIENT)
        assert params["AccountSid"] == ACCOUNT_SID
        assert params["ApiVersion"] == "2010-04-01"
        assert "ErrorCode" not in params


@pytest.mark.parametrize(
    ("to", "statuses", "error_code"),
    [("+15005550030", ["sent", "undelivered"], "30003"), ("+15005550060", ["failed"], "30006")],
)
async def test_magic_recipients_fail_delivery_after_acceptance(
    fake_url: str, receiver, to: str, statuses: list[str], error_code: str
) -> None:
    callbacks, callback_url = receiver

    response = create(fake_url, To=to, StatusCallback=callback_url)

    assert response.status_code == 201
    sid = response.json()["sid"]
    await wait_until(lambda: callbacks.statuses(sid) == statuses)
    assert callbacks.for_sid(sid)[-1]["params"]["ErrorCode"] == error_code
    message_url = f"{fake_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"
    fetched = HTTP.get(message_url, auth=AUTH)
    assert fetched.json()["error_code"] == int(error_code)


async def test_a_messaging_service_assigns_the_sender_later(fake_url: str, receiver) -> None:
    callbacks, callback_url = receiver
    service_sid = "MG" + "c" * 32

    message = create(fake_url, From=None, MessagingServiceSid=service_sid, StatusCallback=callback_url).json()

    assert (message["status"], message["from"], message["num_segments"]) == ("accepted", None, "0")
    await wait_until(lambda: callbacks.statuses(message["sid"]) == ["queued", "sent", "delivered"])
    assert all(c["params"]["From"] == SENDER for c in callbacks.for_sid(message["sid"]))


async def test_an_unreachable_callback_url_does_not_stop_the_fake(fake_url: str) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}/status"

    sid = create(fake_url, StatusCallback=dead_url).json()["sid"]

    message_url = f"{fake_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"
    await wait_until(lambda: HTTP.get(message_url, auth=AUTH).json()["status"] == "delivered")
    assert create(fake_url).status_code == 201


@pytest.mark.parametrize(
    ("to", "settings", "statuses"),
    [
        (RECIPIENT, FakeTwilioSettings(auth_token=AUTH_TOKEN), ["sent", "delivered"]),
        (RECIPIENT, FakeTwilioSettings(auth_token=AUTH_TOKEN, default_outcome="undelivered"), ["sent", "undelivered"]),
        (RECIPIENT, FakeTwilioSettings(auth_token=AUTH_TOKEN, default_outcome="failed"), ["failed"]),
        ("+15005550030", FakeTwilioSettings(auth_token=AUTH_TOKEN), ["sent", "undelivered"]),
        (RECIPIENT, FakeTwilioSettings(auth_token=AUTH_TOKEN, whatsapp_read_receipts=True), ["sent", "delivered"]),
        ("whatsapp:" + RECIPIENT, FakeTwilioSettings(auth_token=AUTH_TOKEN, whatsapp_read_receipts=True),
         ["sent", "delivered", "read"]),
    ],
)  # fmt: skip
def test_delivery_outcome_follows_settings_and_magic_numbers(
    to: str, settings: FakeTwilioSettings, statuses: list[str]
) -> None:
    resource = {"to": to, "status": "queued"}
    assert [status for status, _ in planned_statuses(resource, settings)] == statuses


def test_fail_next_makes_the_next_requests_fail_then_recover(fake_url: str) -> None:
    HTTP.post(f"{fake_url}/_admin/fail-next", json={"count": 2, "status": 503})

    answers = [create(fake_url) for _ in range(3)]

    assert [a.status_code for a in answers] == [503, 503, 201]
    assert answers[0].json()["code"] == 20503


def test_fail_next_from_settings() -> None:
    settings = FakeTwilioSettings(auth_token=AUTH_TOKEN, fail_next=1, fail_next_status=500)
    with serve_in_thread(create_fake_twilio_app(settings)) as url:
        assert [create(url).status_code for _ in range(2)] == [500, 201]


def test_witness_log_records_accepted_messages_for_other_processes(tmp_path: Path) -> None:
    log_path = tmp_path / "twilio.jsonl"
    with serve_in_thread(create_fake_twilio_app(FakeTwilioSettings(auth_token=AUTH_TOKEN, log_path=log_path))) as url:
        sid = create(url, Body="Hello").json()["sid"]
        create(url, To="+15005550004")  # refused: not witnessed

        listed = HTTP.get(f"{url}/_admin/messages").json()
        assert [entry["sid"] for entry in listed] == [sid]
        assert listed[0]["channel"] == "sms" and listed[0]["body"] == "Hello"
        assert read_witness_log(log_path) == listed

        assert HTTP.delete(f"{url}/_admin/messages").status_code == 204
        assert HTTP.get(f"{url}/_admin/messages").json() == []
        assert read_witness_log(log_path) == []


def test_response_latency_is_applied() -> None:
    slow = FakeTwilioSettings(auth_token=AUTH_TOKEN, response_latency_seconds=0.2)
    with serve_in_thread(create_fake_twilio_app(slow)) as url:
        started = time.monotonic()
        assert create(url).status_code == 201
        assert time.monotonic() - started >= 0.2


def test_mountable_under_a_path_prefix() -> None:
    host = FastAPI()
    host.mount("/_fake/twilio", create_fake_twilio_app(FAST))
    with serve_in_thread(host) as url:
        response = create(f"{url}/_fake/twilio")
        assert response.status_code == 201
        assert len(HTTP.get(f"{url}/_fake/twilio/_admin/messages").json()) == 1


def test_runs_alone_as_a_module(tmp_path: Path) -> None:
    port, log_path = free_port(), tmp_path / "witness.jsonl"
    command = [sys.executable, "-m", "orchestrator.fakes.twilio", "--port", str(port),
               "--auth-token", "cli-token", "--log-path", str(log_path)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 10
        while True:
            try:
                HTTP.get(f"{url}/_admin/messages")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None, "fake did not start"
                time.sleep(0.05)
        assert create(url, auth=(ACCOUNT_SID, "cli-token")).status_code == 201
        assert create(url).status_code == 401  # the default token is not this fake's
        assert [entry["to"] for entry in read_witness_log(log_path)] == [RECIPIENT]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_witness_log_lines_are_json(tmp_path: Path) -> None:
    log_path = tmp_path / "nested" / "twilio.jsonl"
    with serve_in_thread(create_fake_twilio_app(FakeTwilioSettings(auth_token=AUTH_TOKEN, log_path=log_path))) as url:
        addresses = {"To": "whatsapp:" + RECIPIENT, "From": "whatsapp:" + SENDER}
        create(url, **addresses, MediaUrl="https://x.test/a.png")
    (entry,) = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert entry["channel"] == "whatsapp" and entry["media_urls"] == ["https://x.test/a.png"]


async def test_the_real_sdk_lists_messages_by_to_and_from_newest_first_across_pages(fake_url: str) -> None:
    other = "+14155550111"
    sids = [create(fake_url, Body=f"n{i}").json()["sid"] for i in range(7)]
    create(fake_url, To=other)
    create(fake_url, From="+15005550010")
    client = sdk_client(fake_url)
    try:
        listed = await client.messages.list_async(to=RECIPIENT, from_=SENDER, page_size=3)
        first_page = await client.messages.page_async(to=RECIPIENT, from_=SENDER, page_size=3)
        to_other = await client.messages.list_async(to=other)
    finally:
        await client.http_client.close()
    assert [m.sid for m in listed] == sids[::-1]  # three pages of 3, 3 and 1, newest first
    assert [m.body for m in first_page] == ["n6", "n5", "n4"]
    assert first_page.next_page_url is not None
    assert [m.to for m in to_other] == [other]


async def test_date_sent_filters_take_only_messages_already_sent(fake_url: str) -> None:
    sid = create(fake_url).json()["sid"]
    message_url = f"{fake_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"
    await wait_until(lambda: HTTP.get(message_url, auth=AUTH).json()["date_sent"] is not None)
    sent_on = parsedate_to_datetime(HTTP.get(message_url, auth=AUTH).json()["date_sent"])
    list_url = f"{fake_url}{MESSAGES_PATH}"

    def listed(**query) -> list[str]:
        return [m["sid"] for m in HTTP.get(list_url, params=query, auth=AUTH).json()["messages"]]

    day = sent_on.date().isoformat()
    assert listed(DateSent=day) == [sid]
    assert listed(**{"DateSent<": day, "DateSent>": day}) == [sid]
    assert listed(**{"DateSent>": sent_on.strftime("%Y-%m-%dT%H:%M:%SZ")}) == [sid]  # as the SDK writes it
    assert listed(**{"DateSent<": "2001-01-01"}) == []
    assert HTTP.get(list_url, params={"DateSent": "yesterday"}, auth=AUTH).status_code == 400
    assert HTTP.get(list_url, params={"PageSize": 1001}, auth=AUTH).status_code == 400
    assert HTTP.get(list_url).status_code == 401


class FlakyReceiver:
    """Answers 503 to the first `failures` callbacks, then 204."""

    def __init__(self, failures: int) -> None:
        self.failures, self.attempts = failures, 0
        self.app = FastAPI()

        @self.app.post("/status")
        async def status(request: Request) -> Response:
            self.attempts += 1
            return Response(status_code=503 if self.attempts <= self.failures else 204)


@pytest.mark.parametrize(
    ("fragment", "failures", "attempts"),
    [
        ("", 1, 1),  # Twilio's default policy retries connection failures and timeouts, not a 503
        ("#rc=2&rp=5xx", 2, 3),  # the URL's connection overrides: two retries on 5xx
        ("#rc=1&rp=all", 3, 2),  # one retry, then given up
    ],
)
async def test_status_callbacks_are_retried_as_the_urls_connection_overrides_say(
    fragment: str, failures: int, attempts: int
) -> None:
    flaky = FlakyReceiver(failures)
    app = create_fake_twilio_app(
        FakeTwilioSettings(auth_token=AUTH_TOKEN, status_latency_seconds=0, default_outcome="failed")
    )
    with serve_in_thread(flaky.app) as receiver_url, serve_in_thread(app) as fake:
        create(fake, StatusCallback=f"{receiver_url}/status{fragment}")
        await wait_until(lambda: flaky.attempts >= attempts)
        await asyncio.sleep(0.2)  # room for a wrong extra attempt
    assert flaky.attempts == attempts


async def test_a_callback_that_times_out_is_retried_once_by_default() -> None:
    attempts = []
    slow = FastAPI()

    @slow.post("/status")
    async def status() -> Response:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            await asyncio.sleep(1.0)  # past the fake's read timeout
        return Response(status_code=204)

    settings = FakeTwilioSettings(
        auth_token=AUTH_TOKEN, status_latency_seconds=0, default_outcome="failed", callback_timeout_seconds=0.2
    )
    with serve_in_thread(slow) as receiver_url, serve_in_thread(create_fake_twilio_app(settings)) as fake:
        create(fake, StatusCallback=f"{receiver_url}/status")
        await wait_until(lambda: len(attempts) >= 2)
        await asyncio.sleep(0.3)
    assert len(attempts) == 2


async def test_every_nth_callback_can_be_lost(receiver) -> None:
    callbacks, status_url = receiver
    app = create_fake_twilio_app(
        FakeTwilioSettings(auth_token=AUTH_TOKEN, status_latency_seconds=0, drop_status_callbacks_every=2)
    )
    with serve_in_thread(app) as fake:
        sid = create(fake, StatusCallback=status_url).json()["sid"]
        message_url = f"{fake}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"
        await wait_until(lambda: HTTP.get(message_url, auth=AUTH).json()["status"] == "delivered")
        await asyncio.sleep(0.1)
    assert callbacks.statuses(sid) == ["sent"]  # `delivered`, the second, was lost
