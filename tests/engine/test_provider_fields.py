"""What customers' data can do to provider fields: through the real adapters, the fake Twilio
over HTTP and a real SMTP server (issue 14, items 3 and 5)."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from orchestrator.clock import SimulatedClock
from orchestrator.engine.dispatch import ClaimedMessage, outbound
from orchestrator.engine.loop import WorkerLoop
from orchestrator.events.ingest import ingest
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.journeys.loader import parse_journey
from orchestrator.startup import build_runtime
from orchestrator.storage.models import Message
from orchestrator.templating.control_chars import clean_body, clean_header
from orchestrator.templating.store import TemplateStore
from tests.conftest import START, _reset, make_settings
from tests.providers import fake_twilio, smtp_server

HOSTILE = "Ann\x1b[31m\u202egpj.exe\u2066\x85\x7f\r\nBcc: victim@example.com\rX-Evil: 1"


@pytest.fixture(scope="module")
def twilio():
    with fake_twilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def smtp():
    with smtp_server() as server:
        yield server


@pytest.fixture
async def runtime(database_url, twilio, smtp, tmp_path):
    twilio.clear()
    smtp[0].messages.clear()
    smtp[0].envelopes.clear()
    await _reset(database_url)
    settings = make_settings(
        database_url,
        sms_provider="twilio",
        whatsapp_provider="twilio",
        email_provider="smtp",
        twilio_api_base_url=twilio.url,
        smtp_port=smtp[1],
        public_base_url="http://127.0.0.1:9",
        fake_twilio_auth_token=twilio.auth_token,  # the fake process's token, as the service would share it
    )
    runtime = await build_runtime(settings, clock=SimulatedClock(START))
    folder = tmp_path / "templates" / "profile-sms"
    folder.mkdir(parents=True)
    (folder / "en.txt").write_text("Hi {{ customer.first_name }}!\nAbout you: {{ customer.bio }}")
    runtime.templates.templates.update(TemplateStore.load(tmp_path / "templates").templates)
    runtime.catalog.add_current(
        parse_journey(
            "id: profile\ntrigger: {event: Profile Updated}\nsteps:\n"
            "  - id: echo\n    send: {channel: sms, template: profile-sms}\n"
            "  - id: ask\n    send: {channel: sms, template: nps-question}\n",
            tmp_path / "profile.yaml",
        )
    )
    yield runtime
    await runtime.aclose()


async def send_events(runtime, *calls) -> None:
    async with runtime.sessions() as session, session.begin():
        await ingest(session, runtime, list(calls))


async def messages(runtime) -> dict[str, Message]:
    async with runtime.sessions() as session:
        return {m.step_id: m for m in (await session.exec(select(Message).order_by(col(Message.id)))).all()}


async def test_a_body_over_the_adapters_maximum_fails_and_never_reaches_twilio(runtime, twilio):
    bio = "I like long walks. " * 700  # a 13,300-character trait
    await send_events(
        runtime,
        IdentifyCall(
            userId="ann", traits={"phone": "+14155550100", "sms_opt_in": True, "first_name": "Ann", "bio": bio}
        ),
        TrackCall(userId="ann", event="Profile Updated"),
    )
    await WorkerLoop(runtime).drain()

    stored = await messages(runtime)
    too_long = len(f"Hi Ann!\nAbout you: {bio}".strip())
    assert (stored["echo"].status, stored["echo"].error_code) == ("failed", "body_too_long")
    assert stored["echo"].status_reason == f"body is {too_long:,} characters, the SMS limit is 1,600"
    # The customer's other message is unaffected, and only it reached the provider.
    assert stored["ask"].status == "sent"
    assert [m["body"] for m in twilio.witnessed()] == [stored["ask"].body]


async def test_control_characters_from_traits_never_reach_twilio(runtime, twilio):
    # A NUL no longer gets this far: the event API refuses it (tests/api/test_hostile_input.py);
    # the stripping of one is covered in test_what_bodies_and_headers_keep.
    nul = ""
    await send_events(
        runtime,
        IdentifyCall(
            userId="ann",
            traits={"phone": "+14155550100", "sms_opt_in": True, "first_name": HOSTILE + nul, "bio": "two\r\nlines"},
        ),
        TrackCall(userId="ann", event="Profile Updated"),
    )
    await WorkerLoop(runtime).drain()

    arrived = {m["body"] for m in twilio.witnessed()}
    stored = await messages(runtime)
    expected = "Hi Ann[31mgpj.exe\nBcc: victim@example.com\nX-Evil: 1!\nAbout you: two\nlines"
    assert stored["echo"].status == "sent" and stored["echo"].body == expected
    assert expected in arrived


async def test_an_email_subject_from_traits_is_one_clean_line_at_the_smtp_server(runtime, smtp):
    await send_events(
        runtime,
        IdentifyCall(userId="ann", traits={"email": "ann@example.com", "first_name": HOSTILE}),
        TrackCall(userId="ann", event="Signed Up"),
    )
    await WorkerLoop(runtime).drain()

    inbox = smtp[0]
    [mail] = inbox.messages
    assert mail["Subject"] == "Welcome aboard, Ann[31mgpj.exe Bcc: victim@example.com X-Evil: 1!"
    assert mail["Bcc"] is None and mail["X-Evil"] is None
    assert inbox.envelopes == [("hello@orchestrator.local", ["ann@example.com"])]
    body = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")  # SMTP's own line ends
    assert "Hi Ann[31mgpj.exe\nBcc: victim@example.com\nX-Evil: 1," in body  # a body keeps its line breaks
    assert not any(c in body for c in "\x1b\u202e\u2066\x85\x7f\r")


def test_messages_written_without_rendering_are_cleaned_on_their_way_out(runtime):
    """An agent's reply goes to the provider without a template: `outbound` cleans it too."""
    claimed = ClaimedMessage(
        id=1,
        send_key="agent:1",
        enrollment_id=None,
        customer_id=1,
        step_id=None,
        channel="sms",
        to_address="+14155550100",
        subject="Re:\r\nBcc: x@example.com",
        body="Sure\x00\x1b!\r\nBye",
        html=None,
        template_metadata={},
        marketing=False,
        priority=0,
        fallback_channel=None,
        attempts=1,
        next_attempt_at=None,
    )
    message = outbound(claimed, runtime.settings)
    assert (message.subject, message.body) == ("Re: Bcc: x@example.com", "Sure!\nBye")


@pytest.mark.parametrize(
    "text, body, header",
    [
        ("plain text", "plain text", "plain text"),
        ("two\nlines\ttabbed", "two\nlines\ttabbed", "two lines tabbed"),
        ("crlf\r\nand\rcr", "crlf\nand\ncr", "crlf and cr"),
        ("nul\x00esc\x1bbell\x07del\x7f", "nulescbelldel", "nulescbelldel"),
        ("c1\x80\x85\x9f", "c1", "c1"),
        ("bidi\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069", "bidi", "bidi"),
        ("sep\u2028par\u2029", "sep\u2028par\u2029", "sep par "),
        (
            "שלום\u200f marks \u200e\u061c stay",
            "שלום\u200f marks \u200e\u061c stay",
            "שלום\u200f marks \u200e\u061c stay",
        ),
    ],
)
def test_what_bodies_and_headers_keep(text, body, header):
    assert (clean_body(text), clean_header(text)) == (body, header)
