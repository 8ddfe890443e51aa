"""A fake of SendGrid's v3 Mail Send API that speaks the real wire format.

`POST /v3/mail/send` takes the JSON SendGrid takes (personalizations, from, subject, content,
headers, custom_args, ...) and answers as SendGrid answers:
- 202 with an empty body and an `X-Message-Id` header when the message is queued;
  200 without one in sandbox mode (`mail_settings.sandbox_mode.enable`), nothing queued;
- 401 without a Bearer API key or with an unknown one, 403 for a key lacking `mail.send`;
- 400 naming the offending field for a malformed payload;
- every error body shaped `{"errors": [{"message": ..., "field": ..., "help": ...}]}`.

Magic recipients (in to, cc or bcc) let tests provoke provider trouble:
- any address `@rate-limited.sendgrid.test` gets 429 with SendGrid's X-RateLimit-* headers;
- any address `@server-error.sendgrid.test` gets 500.
(`.test` is reserved by RFC 2606, so these can never be real mailboxes.)

Every queued message lands in a witness log, like the provider's activity feed: in memory,
optionally appended to a JSONL file (so another process can read it), and over HTTP at
`GET /_admin/messages` (`DELETE` clears it; mounted in the service these sit behind its
API-key policy). Routes are relative, so the app can be mounted under a prefix next to other
fakes. Run it alone with `python -m orchestrator.fakes.sendgrid --port 8026`.

Given an event webhook URL and a signing key (`event_webhook_url`, `event_signing_key`, or
`app.state.event_webhook` once the service knows its key), each queued message is reported
`processed` then `delivered` to that URL, signed as SendGrid's Signed Event Webhook signs
(`orchestrator/fakes/sendgrid_events.py`).
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from orchestrator.clock import Clock
from orchestrator.fakes.credentials import FAKE_SENDGRID_API_KEY
from orchestrator.fakes.sendgrid_events import EventWebhook

RATE_LIMITED_DOMAIN = "rate-limited.sendgrid.test"
SERVER_ERROR_DOMAIN = "server-error.sendgrid.test"
DEFAULT_API_KEY = FAKE_SENDGRID_API_KEY

# SendGrid's wording, from its Mail Send error reference and real responses.
HELP_URL = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
NO_AUTHORIZATION = "authorization required"
BAD_API_KEY = "The provided authorization grant is invalid, expired, or revoked"
MISSING_SCOPE = "access forbidden"
FROM_REQUIRED = (
    "The from object must be provided for every email send. It is an object that requires "
    "the email parameter, but may also contain a name parameter.  e.g. "
    '{"email" : "example@example.com"}  or '
    '{"email" : "example@example.com", "name" : "Example Recipient"}.'
)
PERSONALIZATIONS_REQUIRED = "The personalizations field is required and must have at least one personalization."
TO_REQUIRED = "The to parameter is required for all personalization objects."
INVALID_ADDRESS = "Does not contain a valid address."
SUBJECT_REQUIRED = (
    "The subject is required. You can get around this requirement if you use a template with "
    "a subject defined or if every personalization has a subject defined."
)
CONTENT_REQUIRED = (
    "Unless a valid template_id is provided, the content parameter is required. There must "
    "be at least one defined content block. We typically suggest both text/plain and "
    "text/html blocks are included, but only one block is required."
)
CONTENT_VALUE_REQUIRED = "The content value must be a string at least one character in length."
CONTENT_TYPE_REQUIRED = "The content type must be a string at least one character in length."
CONTENT_ORDER = "If present, text/plain must be first, followed by text/html, followed by any other content."

# Headers SendGrid sets itself and refuses in the `headers` object.
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "Content-Type",
        "Content-Transfer-Encoding",
        "To",
        "From",
        "Subject",
        "Reply-To",
        "CC",
        "BCC",
    )
)
# Loose on purpose, like the provider's first check: one @, no spaces, a dot in the domain.
_EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


@dataclass(frozen=True)
class FakeSendGridSettings:
    api_keys: frozenset[str] = frozenset({DEFAULT_API_KEY})
    # Keys that exist but lack the `mail.send` scope: SendGrid answers those with 403.
    keys_without_mail_send: frozenset[str] = frozenset()
    witness_log_path: Path | None = None
    # How far ahead X-RateLimit-Reset lies on a 429 (SendGrid sends a Unix timestamp).
    rate_limit_reset_seconds: int = 1
    clock: Clock = Clock()  # stateless, so one shared default is fine
    event_webhook_url: str | None = None
    event_signing_key: str | None = None  # PEM, ECDSA P-256


class WitnessLog:
    """Queued messages, oldest first; safe to read from the test thread while serving."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as log:
                    log.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            if self.path is not None:
                self.path.write_text("", encoding="utf-8")


def sendgrid_error(message: str, field: str | None = None, help_anchor: str | None = None) -> dict[str, Any]:
    help_url = f"{HELP_URL}#{help_anchor}" if help_anchor else None
    return {"message": message, "field": field, "help": help_url}


def errors_response(status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": errors}, status_code=status, headers=headers)


def validate_mail_send(payload: Any) -> list[dict[str, Any]]:
    """Every problem SendGrid would report for this payload (empty when it is valid)."""
    if not isinstance(payload, dict):
        return [_type_error(payload, "object", None)]
    errors: list[dict[str, Any]] = []
    uses_template = isinstance(payload.get("template_id"), str)

    sender = payload.get("from")
    if sender is not None and not isinstance(sender, dict):
        errors.append(_type_error(sender, "object", "from"))
    elif not (sender and _is_email(sender.get("email"))):
        errors.append(sendgrid_error(FROM_REQUIRED, "from.email", "message.from"))

    personalizations = payload.get("personalizations")
    if personalizations is not None and not isinstance(personalizations, list):
        errors.append(_type_error(personalizations, "array", "personalizations"))
        personalizations = []
    elif not personalizations:
        errors.append(sendgrid_error(PERSONALIZATIONS_REQUIRED, "personalizations", "-Personalizations-Errors"))
        personalizations = []
    for index, personalization in enumerate(personalizations):
        errors.extend(_personalization_errors(index, personalization))

    subject = payload.get("subject")
    every_personalization_has_subject = bool(personalizations) and all(
        isinstance(p, dict) and p.get("subject") for p in personalizations
    )
    if subject is not None and not isinstance(subject, str):
        errors.append(_type_error(subject, "string", "subject"))
    elif not subject and not uses_template and not every_personalization_has_subject:
        errors.append(sendgrid_error(SUBJECT_REQUIRED, "subject", "message.subject"))

    errors.extend(_content_errors(payload.get("content"), uses_template))
    errors.extend(_string_map_errors(payload.get("headers"), "headers"))
    errors.extend(_reserved_header_errors(payload.get("headers")))
    errors.extend(_string_map_errors(payload.get("custom_args"), "custom_args"))
    return errors


def _personalization_errors(index: int, personalization: Any) -> list[dict[str, Any]]:
    field = f"personalizations.{index}"
    if not isinstance(personalization, dict):
        return [_type_error(personalization, "object", field)]
    errors: list[dict[str, Any]] = []
    if not personalization.get("to"):
        errors.append(sendgrid_error(TO_REQUIRED, f"{field}.to", "message.personalizations.to"))
    seen: set[str] = set()
    for kind in ("to", "cc", "bcc"):
        recipients = personalization.get(kind) or []
        if not isinstance(recipients, list):
            errors.append(_type_error(recipients, "array", f"{field}.{kind}"))
            continue
        for position, recipient in enumerate(recipients):
            email = recipient.get("email") if isinstance(recipient, dict) else None
            if not _is_email(email):
                errors.append(
                    sendgrid_error(
                        INVALID_ADDRESS,
                        f"{field}.{kind}.{position}.email",
                        f"message.personalizations.{kind}",
                    )
                )
            elif email.lower() in seen:
                errors.append(
                    sendgrid_error(
                        "Each email address in the personalization block should be unique "
                        "between to, cc, and bcc. We found the first duplicate instance of "
                        f"[{email}] in the {field}.{kind} field.",
                        field,
                        "-Personalizations-Errors",
                    )
                )
            else:
                seen.add(email.lower())
    errors.extend(_string_map_errors(personalization.get("custom_args"), f"{field}.custom_args"))
    errors.extend(_string_map_errors(personalization.get("headers"), f"{field}.headers"))
    return errors


def _content_errors(content: Any, uses_template: bool) -> list[dict[str, Any]]:
    if content is None or content == []:
        if uses_template:
            return []
        return [sendgrid_error(CONTENT_REQUIRED, "content", "message.content")]
    if not isinstance(content, list):
        return [_type_error(content, "array", "content")]
    errors: list[dict[str, Any]] = []
    types: list[str] = []
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            errors.append(_type_error(block, "object", f"content.{index}"))
            continue
        if isinstance(block.get("type"), str) and block["type"]:
            types.append(block["type"])
        else:
            errors.append(sendgrid_error(CONTENT_TYPE_REQUIRED, f"content.{index}.type", "message.content.type"))
        if not (isinstance(block.get("value"), str) and block["value"]):
            errors.append(sendgrid_error(CONTENT_VALUE_REQUIRED, f"content.{index}.value", "message.content.value"))
    if "text/plain" in types and types[0] != "text/plain":
        errors.append(sendgrid_error(CONTENT_ORDER, "content.0.type", "message.content.type"))
    return errors


def _string_map_errors(value: Any, field: str) -> list[dict[str, Any]]:
    """`headers` and `custom_args` are objects whose values must all be strings."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [_type_error(value, "object", field)]
    return [_type_error(item, "string", f"{field}.{key}") for key, item in value.items() if not isinstance(item, str)]


def _reserved_header_errors(headers: Any) -> list[dict[str, Any]]:
    if not isinstance(headers, dict):
        return []
    return [
        sendgrid_error(
            f"The {name} header is reserved and cannot be set in the headers object.",
            f"headers.{name}",
            "message.headers",
        )
        for name in headers
        if name.lower() in RESERVED_HEADERS
    ]


def _type_error(value: Any, expected: str, field: str | None) -> dict[str, Any]:
    given = _JSON_TYPE_NAMES.get(type(value), "unknown")
    anchor = f"message.{field.split('.')[0]}" if field else None
    return sendgrid_error(f"Invalid type. Expected: {expected}, given: {given}.", field, anchor)


def _is_email(value: Any) -> bool:
    return isinstance(value, str) and bool(_EMAIL_PATTERN.match(value))


def _recipient_domains(payload: dict[str, Any]) -> set[str]:
    return {
        recipient["email"].rpartition("@")[2].lower()
        for personalization in payload["personalizations"]
        for kind in ("to", "cc", "bcc")
        for recipient in personalization.get(kind) or []
    }


def _witness_entry(message_id: str, payload: dict[str, Any], clock: Clock) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "received_at": clock.now().isoformat(),
        "status": "processed",  # the first event SendGrid's activity feed shows
        "from": payload["from"]["email"],
        "to": [r["email"] for p in payload["personalizations"] for r in p["to"]],
        "subject": payload.get("subject"),
        "request": payload,
    }


def create_fake_sendgrid_app(settings: FakeSendGridSettings | None = None) -> FastAPI:
    settings = settings or FakeSendGridSettings()
    app = FastAPI(title="Fake SendGrid v3 Mail Send", docs_url=None, redoc_url=None)
    witness = WitnessLog(settings.witness_log_path)
    app.state.settings = settings
    app.state.witness = witness
    app.state.event_webhook = EventWebhook(settings.event_webhook_url, settings.event_signing_key, settings.clock)
    known_keys = settings.api_keys | settings.keys_without_mail_send

    @app.post("/v3/mail/send")
    async def mail_send(request: Request) -> Response:
        scheme, _, api_key = request.headers.get("authorization", "").partition(" ")
        if not api_key:
            return errors_response(401, [sendgrid_error(NO_AUTHORIZATION)])
        if scheme.lower() != "bearer" or api_key not in known_keys:
            return errors_response(401, [sendgrid_error(BAD_API_KEY)])
        if api_key in settings.keys_without_mail_send:
            return errors_response(403, [sendgrid_error(MISSING_SCOPE)])

        try:
            payload = json.loads(await request.body())
        except ValueError:
            return errors_response(400, [sendgrid_error("Bad Request")])
        if errors := validate_mail_send(payload):
            return errors_response(400, errors)

        domains = _recipient_domains(payload)
        if RATE_LIMITED_DOMAIN in domains:
            reset_at = int(settings.clock.now().timestamp()) + settings.rate_limit_reset_seconds
            headers = {
                "X-RateLimit-Limit": "600",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset_at),
            }
            return errors_response(429, [sendgrid_error("too many requests")], headers)
        if SERVER_ERROR_DOMAIN in domains:
            return errors_response(500, [sendgrid_error("internal server error")])

        sandbox = (payload.get("mail_settings") or {}).get("sandbox_mode") or {}
        if sandbox.get("enable") is True:
            return Response(status_code=200)  # valid, but not queued: nothing to witness
        message_id = secrets.token_urlsafe(16)  # 22 URL-safe characters, like SendGrid's
        witness.record(_witness_entry(message_id, payload, settings.clock))
        app.state.event_webhook.report_delivery(message_id, payload)
        return Response(status_code=202, headers={"X-Message-Id": message_id})

    @app.get("/_admin/messages")
    async def list_messages() -> dict[str, Any]:
        return {"messages": witness.messages()}

    @app.delete("/_admin/messages", status_code=204)
    async def clear_messages() -> Response:
        witness.clear()
        return Response(status_code=204)

    return app


def main(argv: list[str] | None = None) -> None:
    from orchestrator.fakes.server import run_standalone

    parser = argparse.ArgumentParser(description="Serve a fake SendGrid v3 Mail Send API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8026)
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        help=f"an accepted API key (repeatable; default {DEFAULT_API_KEY})",
    )
    parser.add_argument("--witness-log", type=Path, help="append queued messages to this JSONL file")
    args = parser.parse_args(argv)
    settings = FakeSendGridSettings(
        api_keys=frozenset(args.api_keys or {DEFAULT_API_KEY}),
        witness_log_path=args.witness_log,
    )
    run_standalone(create_fake_sendgrid_app(settings), args.host, args.port)


if __name__ == "__main__":
    main()
