"""The fake SendGrid, exercised over real HTTP the way SendGrid's own clients would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from orchestrator.clock import SimulatedClock
from orchestrator.fakes.sendgrid import (
    DEFAULT_API_KEY,
    RATE_LIMITED_DOMAIN,
    SERVER_ERROR_DOMAIN,
    FakeSendGridSettings,
    create_fake_sendgrid_app,
)
from orchestrator.fakes.server import free_port, serve_in_thread

SCOPELESS_KEY = "SG.key-without-mail-send"
FROZEN_NOW = 1_750_000_000.0
FROZEN_CLOCK = SimulatedClock(datetime.fromtimestamp(FROZEN_NOW, timezone.utc))


@pytest.fixture(scope="module")
def fake_app(tmp_path_factory) -> FastAPI:
    settings = FakeSendGridSettings(
        keys_without_mail_send=frozenset({SCOPELESS_KEY}),
        witness_log_path=tmp_path_factory.mktemp("sendgrid") / "witness.jsonl",
        rate_limit_reset_seconds=30,
        clock=FROZEN_CLOCK,
    )
    return create_fake_sendgrid_app(settings)


@pytest.fixture(scope="module")
def base_url(fake_app) -> Iterator[str]:
    with serve_in_thread(fake_app) as url:
        yield url


@pytest.fixture
def client(base_url, fake_app) -> Iterator[httpx.Client]:
    fake_app.state.witness.clear()
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}) as c:
        yield c


def mail(**overrides) -> dict:
    payload = {
        "personalizations": [{"to": [{"email": "ana@customer.example", "name": "Ana"}]}],
        "from": {"email": "hello@shop.example", "name": "Shop"},
        "subject": "Welcome",
        "content": [
            {"type": "text/plain", "value": "Hello Ana"},
            {"type": "text/html", "value": "<p>Hello Ana</p>"},
        ],
        "custom_args": {"send_key": "k-1"},
        "headers": {"List-Unsubscribe": "<https://shop.example/u/1>"},
    }
    payload.update(overrides)
    return {key: value for key, value in payload.items() if value is not None}


def assert_sendgrid_errors(response: httpx.Response) -> list[dict]:
    errors = response.json()["errors"]
    assert errors and all(set(error) == {"message", "field", "help"} for error in errors)
    return errors


def test_queues_valid_mail_with_202_and_message_id(client, fake_app) -> None:
    response = client.post("/v3/mail/send", json=mail())

    assert response.status_code == 202
    assert response.content == b""
    message_id = response.headers["X-Message-Id"]
    assert len(message_id) == 22
    [entry] = fake_app.state.witness.messages()
    assert entry["message_id"] == message_id
    assert entry["status"] == "processed"
    assert entry["from"] == "hello@shop.example"
    assert entry["to"] == ["ana@customer.example"]
    assert entry["subject"] == "Welcome"
    assert entry["request"]["custom_args"] == {"send_key": "k-1"}


def test_admin_feed_lists_and_clears_messages(client) -> None:
    client.post("/v3/mail/send", json=mail())
    client.post("/v3/mail/send", json=mail(subject="Second"))

    listed = client.get("/_admin/messages").json()["messages"]
    assert [m["subject"] for m in listed] == ["Welcome", "Second"]

    assert client.delete("/_admin/messages").status_code == 204
    assert client.get("/_admin/messages").json() == {"messages": []}


def test_witness_log_is_appended_to_jsonl_file(client, fake_app) -> None:
    path: Path = fake_app.state.settings.witness_log_path
    message_id = client.post("/v3/mail/send", json=mail()).headers["X-Message-Id"]

    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["message_id"] for line in lines] == [message_id]

    client.delete("/_admin/messages")
    assert path.read_text(encoding="utf-8") == ""


BAD_KEY_MESSAGE = "The provided authorization grant is invalid, expired, or revoked"


@pytest.mark.parametrize(
    ("authorization", "status", "message"),
    [
        pytest.param(None, 401, "authorization required", id="missing"),
        pytest.param("Bearer SG.unknown", 401, BAD_KEY_MESSAGE, id="unknown-key"),
        pytest.param(f"Basic {DEFAULT_API_KEY}", 401, BAD_KEY_MESSAGE, id="wrong-scheme"),
        pytest.param(f"Bearer {SCOPELESS_KEY}", 403, "access forbidden", id="no-mail-send-scope"),
    ],
)
def test_rejects_bad_credentials(base_url, fake_app, authorization, status, message) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.post(f"{base_url}/v3/mail/send", json=mail(), headers=headers)

    assert response.status_code == status
    assert assert_sendgrid_errors(response) == [{"message": message, "field": None, "help": None}]
    assert fake_app.state.witness.messages() == []


def test_malformed_json_is_bad_request(client) -> None:
    response = client.post("/v3/mail/send", content=b"{not json", headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert assert_sendgrid_errors(response)[0]["message"] == "Bad Request"


BAD_ADDRESS = [{"to": [{"email": "not-an-address"}]}]
DUPLICATE_RECIPIENT = [{"to": [{"email": "a@x.example"}], "cc": [{"email": "A@x.example"}]}]
HTML_BEFORE_TEXT = [{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain", "value": "x"}]

MALFORMED_PAYLOADS = [
    # (id, payload, field SendGrid names, how its message starts)
    ("no-from", mail(**{"from": None}), "from.email", "The from object must be provided"),
    ("from-not-object", mail(**{"from": "a@x.example"}), "from", "Invalid type. Expected: object"),
    ("no-personalizations", mail(personalizations=[]), "personalizations", "The personalizations"),
    ("no-to", mail(personalizations=[{"subject": "x"}]), "personalizations.0.to", "The to parameter"),
    ("bad-address", mail(personalizations=BAD_ADDRESS), "personalizations.0.to.0.email",
     "Does not contain a valid address."),
    ("duplicate-recipient", mail(personalizations=DUPLICATE_RECIPIENT), "personalizations.0",
     "Each email address in the personalization block"),
    ("no-subject", mail(subject=None), "subject", "The subject is required"),
    ("no-content", mail(content=None), "content", "Unless a valid template_id is provided"),
    ("empty-content", mail(content=[{"type": "text/plain", "value": ""}]), "content.0.value",
     "The content value must be a string"),
    ("content-order", mail(content=HTML_BEFORE_TEXT), "content.0.type",
     "If present, text/plain must be first"),
    ("custom-arg-not-string", mail(custom_args={"send_key": 7}), "custom_args.send_key",
     "Invalid type. Expected: string, given: integer."),
    ("custom-args-not-object", mail(custom_args="k-1"), "custom_args",
     "Invalid type. Expected: object, given: string."),
    ("reserved-header", mail(headers={"Subject": "x"}), "headers.Subject",
     "The Subject header is reserved"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "field", "message_start"),
    [pytest.param(*case[1:], id=case[0]) for case in MALFORMED_PAYLOADS],
)
def test_malformed_payload_names_the_field(client, fake_app, payload, field, message_start) -> None:
    response = client.post("/v3/mail/send", json=payload)

    assert response.status_code == 400
    errors = assert_sendgrid_errors(response)
    matching = [e for e in errors if e["field"] == field]
    assert matching, errors
    assert matching[0]["message"].startswith(message_start)
    assert matching[0]["help"].startswith("http://sendgrid.com/docs/")
    assert fake_app.state.witness.messages() == []


def test_every_problem_is_reported_at_once(client) -> None:
    response = client.post("/v3/mail/send", json={})

    fields = {error["field"] for error in assert_sendgrid_errors(response)}
    assert fields == {"from.email", "personalizations", "subject", "content"}


def test_subject_in_every_personalization_is_enough(client) -> None:
    payload = mail(subject=None, personalizations=[{"to": [{"email": "a@x.example"}], "subject": "Hi"}])
    assert client.post("/v3/mail/send", json=payload).status_code == 202


def test_rate_limited_domain_answers_429_with_reset_headers(client, fake_app) -> None:
    payload = mail(personalizations=[{"to": [{"email": f"ana@{RATE_LIMITED_DOMAIN}"}]}])
    response = client.post("/v3/mail/send", json=payload)

    assert response.status_code == 429
    assert assert_sendgrid_errors(response)[0]["message"] == "too many requests"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) == int(FROZEN_NOW) + 30
    assert fake_app.state.witness.messages() == []


def test_server_error_domain_answers_500(client, fake_app) -> None:
    payload = mail(
        personalizations=[{"to": [{"email": "ana@customer.example"}], "bcc": [{"email": f"x@{SERVER_ERROR_DOMAIN}"}]}]
    )
    response = client.post("/v3/mail/send", json=payload)

    assert response.status_code == 500
    assert_sendgrid_errors(response)
    assert fake_app.state.witness.messages() == []


def test_sandbox_mode_validates_without_queueing(client, fake_app) -> None:
    response = client.post("/v3/mail/send", json=mail(mail_settings={"sandbox_mode": {"enable": True}}))

    assert response.status_code == 200
    assert "X-Message-Id" not in response.headers
    assert fake_app.state.witness.messages() == []


def test_mountable_under_a_prefix() -> None:
    parent = FastAPI()
    fake = create_fake_sendgrid_app()
    parent.mount("/sendgrid", fake)
    with serve_in_thread(parent) as url:
        auth = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
        response = httpx.post(f"{url}/sendgrid/v3/mail/send", json=mail(), headers=auth)
        listed = httpx.get(f"{url}/sendgrid/_admin/messages").json()["messages"]

    assert response.status_code == 202
    assert [m["message_id"] for m in listed] == [response.headers["X-Message-Id"]]


def test_runs_alone_as_a_module(tmp_path) -> None:
    port, witness = free_port(), tmp_path / "witness.jsonl"
    command = [
        sys.executable, "-m", "orchestrator.fakes.sendgrid",
        "--port", str(port), "--api-key", "SG.cli-key", "--witness-log", str(witness),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/v3/mail/send"
        deadline = time.monotonic() + 10
        while True:
            try:
                response = httpx.post(url, json=mail(), headers={"Authorization": "Bearer SG.cli-key"})
                break
            except httpx.ConnectError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "fake SendGrid did not start"
                time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert response.status_code == 202
    assert json.loads(witness.read_text())["message_id"] == response.headers["X-Message-Id"]
