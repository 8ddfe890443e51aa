"""A local Twilio that speaks the real wire format of the Programmable Messaging API.

The real `twilio` SDK (and plain `httpx`) talk to it over sockets, so the adapters, webhook
handlers and retry logic are exercised exactly as against api.twilio.com: form-encoded
requests, HTTP Basic auth, Twilio's Message resource JSON, Twilio's error JSON and codes, and
status callbacks signed with `X-Twilio-Signature`.

Behaviour is chosen by the recipient, like Twilio's test credentials ("magic numbers"):

    To                     result
    +15005550001           400 / 21211 invalid 'To' number               (Twilio's own)
    +15005550002           400 / 21612 not reachable                     (Twilio's own)
    +15005550003           400 / 21408 no permission for region          (Twilio's own)
    +15005550004           400 / 21610 recipient unsubscribed (STOP)     (Twilio's own)
    +15005550009           400 / 21614 not a mobile number               (Twilio's own)
    +15005550429           429 / 20429 too many requests                 (fake only)
    +15005550500           500 / 20500 internal server error             (fake only)
    whatsapp:+15005550016  400 / 63016 outside the 24h window; only for a
                           free-form Body, a ContentSid template goes out (fake only)
    +15005550030           accepted, then `undelivered` with 30003       (fake only)
    +15005550060           accepted, then `failed` with 30006            (fake only)

    From                   result
    +15005550001           400 / 21212 invalid 'From' number             (Twilio's own)
    +15005550007           400 / 21606 'From' not owned by the account   (Twilio's own)
    +15005550008           400 / 21611 'From' queue is full              (Twilio's own)

Every other recipient is accepted and later `delivered`. The fake-only numbers sit in the
+1500555xxxx range Twilio reserves for testing, so they can never reach a real phone.

Messages can be read back as from Twilio: `GET .../Messages/{sid}.json`, and the list
`GET .../Messages.json` with Twilio's filters and paging (see `twilio_listing`).

Status callbacks are retried as Twilio documents for its webhooks (connection overrides):
one retry by default, or what the URL's `#rc=` (retry count, 0-5) and `#rp=` (retry
policy: `ct` connection failure, `rt` read timeout, `4xx`, `5xx`, `all`) fragment asks;
the fragment itself is never sent, so the signature covers the URL without it.
`drop_status_callbacks_every` loses every Nth callback for good, like a receiver that
was down through all retries.

Admin endpoints: `GET|DELETE /_admin/messages` for the witness log of accepted messages,
`POST /_admin/fail-next` to make the next N creates fail with a 5xx. They carry no auth of
their own (a test double); mounted in the service they sit behind its API-key policy
(`orchestrator/fakes/mounting.py`). The app holds no lifespan state, so it can be mounted
under a prefix: `app.mount("/_fake/twilio", create_fake_twilio_app())`.

The auth token is never a constant: random unless given (`auth_token`, `--auth-token`), or
the one the service generated and keeps in its database (`--credentials-from-database`), so
that the service and its fake agree and nobody else can sign a status callback or a STOP.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from orchestrator.fakes.twilio_callbacks import post_status_callback
from orchestrator.fakes.twilio_listing import list_page
from orchestrator.fakes.twilio_rules import (
    ACCOUNT_SID,
    API_VERSION,
    FAILED,
    MAGIC_DELIVERY_FAILURES,
    UNDELIVERED,
    WHATSAPP_PREFIX,
    ApiError,
    DeliveryFailure,
    billable_segments,
    error_body,
    new_message_resource,
    new_sid,
    rfc2822,
    strip_channel,
    validate_create,
)

DELIVERY_OUTCOMES = ("delivered", "undelivered", "failed")


@dataclass
class FakeTwilioSettings:
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    # None accepts any well-formed account SID, as long as the Basic-auth user is the SID in
    # the URL; set it to pin the fake to one account.
    account_sid: str | None = None
    response_latency_seconds: float = 0.0
    # Pause before each status step (sent, delivered, ...) and its callback.
    status_latency_seconds: float = 0.05
    default_outcome: str = "delivered"  # one of DELIVERY_OUTCOMES
    price_per_segment: Decimal = Decimal("-0.0079")
    price_unit: str = "USD"
    # The sender a Messaging Service "picks" when the request names no From.
    messaging_service_from: str = "+15005550006"
    whatsapp_read_receipts: bool = False
    status_callbacks: bool = True  # off for load tests where nobody listens
    callback_timeout_seconds: float = 15.0  # Twilio's default read timeout (`rt`) for webhooks
    drop_status_callbacks_every: int = 0  # lose every Nth callback (after its retries): 0 never
    fail_next: int = 0  # the next N creates answer `fail_next_status`, then normal service
    fail_next_status: int = 503
    log_path: Path | None = None  # witness log as JSON lines, readable by other processes


def twilio_error(error: ApiError, **names: str) -> JSONResponse:
    return JSONResponse(error_body(error, **names), status_code=error.http_status)


def read_witness_log(path: Path) -> list[dict[str, Any]]:
    """The messages another process's fake accepted, from its `log_path`."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class FakeTwilioState:
    """Everything the fake remembers; reachable as `app.state.fake_twilio`."""

    settings: FakeTwilioSettings
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # sid -> resource
    sids_by_to: dict[str, list[str]] = field(default_factory=dict)  # what a `To` filter reads
    callbacks_posted: int = 0  # every callback the fake meant to post, dropped ones included
    witness_log: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    fail_next_status: int = 503
    # Strong references: the event loop keeps only weak ones to running tasks.
    background_tasks: set[asyncio.Task] = field(default_factory=set)
    log_lock: threading.Lock = field(default_factory=threading.Lock)
    # One HTTP client per event loop for every status callback: building a client (SSL
    # context, CA bundle) costs ~40 ms of CPU, far more than the callback itself.
    callback_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = field(default_factory=dict)
    log_file: Any = None

    def callback_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if loop not in self.callback_clients:
            # Twilio's webhook defaults: 5 s to connect, 15 s to read. A pool as wide as a burst
            # needs, so callbacks are not queued behind each other inside the client.
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
            timeout = httpx.Timeout(self.settings.callback_timeout_seconds, connect=5.0)
            self.callback_clients[loop] = httpx.AsyncClient(timeout=timeout, limits=limits)
        return self.callback_clients[loop]

    def add(self, resource: dict[str, Any]) -> None:
        self.messages[resource["sid"]] = resource
        self.sids_by_to.setdefault(resource["to"], []).append(resource["sid"])

    def newest_first(self, to: str | None) -> list[dict[str, Any]]:
        sids = self.sids_by_to.get(to, []) if to is not None else list(self.messages)
        return [self.messages[sid] for sid in reversed(sids)]

    def record(self, entry: dict[str, Any]) -> None:
        with self.log_lock:
            self.witness_log.append(entry)
            if self.settings.log_path is not None:
                if self.log_file is None:
                    self.settings.log_path.parent.mkdir(parents=True, exist_ok=True)
                    self.log_file = self.settings.log_path.open("a", encoding="utf-8")
                # One line per accepted message, flushed at once: another process reads it,
                # and a line must be there even if this process is killed a moment later.
                self.log_file.write(json.dumps(entry) + "\n")
                self.log_file.flush()

    def clear(self) -> None:
        """Forget every message, so one test's traffic cannot leak into the next."""
        with self.log_lock:
            self.messages.clear()
            self.sids_by_to.clear()
            self.witness_log.clear()
            if self.settings.log_path is not None and self.settings.log_path.exists():
                self.settings.log_path.write_text("")


def create_fake_twilio_app(settings: FakeTwilioSettings | None = None) -> FastAPI:
    settings = settings or FakeTwilioSettings()
    if settings.default_outcome not in DELIVERY_OUTCOMES:
        raise ValueError(f"default_outcome must be one of {DELIVERY_OUTCOMES}")
    state = FakeTwilioState(settings=settings, fail_next=settings.fail_next, fail_next_status=settings.fail_next_status)
    app = FastAPI(title="Fake Twilio", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake_twilio = state
    messages_path = f"/{API_VERSION}/Accounts/{{account_sid}}/Messages"

    @app.post(messages_path + ".json")
    async def create_message(account_sid: str, request: Request) -> Response:
        await asyncio.sleep(settings.response_latency_seconds)
        if not authenticated(request, account_sid, settings):
            return unauthenticated()
        if state.fail_next > 0:
            state.fail_next -= 1
            status = state.fail_next_status
            # Twilio's 20xxx codes mirror the HTTP status (20429, 20500, 20503).
            return twilio_error(ApiError(status, 20000 + status, HTTPStatus(status).phrase))
        try:
            form = await request.form()
        except ClientDisconnect:  # the caller gave up (its timeout); nothing to answer
            return Response(status_code=499)
        params = {key: str(value) for key, value in form.items() if key != "MediaUrl"}
        media_urls = [str(url) for url in form.getlist("MediaUrl")]
        error = validate_create(params, media_urls)
        if error is not None:
            return twilio_error(error, to=params.get("To", ""), from_=params.get("From", ""))
        resource = new_message_resource(account_sid, params, media_urls, settings.price_unit)
        state.add(resource)
        state.record(witness_entry(resource, params, media_urls))
        task = asyncio.create_task(progress_delivery(state, resource, params))
        state.background_tasks.add(task)
        task.add_done_callback(state.background_tasks.discard)
        return JSONResponse(resource, status_code=201, headers=request_id_header())

    @app.get(messages_path + ".json")
    async def list_messages(account_sid: str, request: Request) -> Response:
        await asyncio.sleep(settings.response_latency_seconds)
        if not authenticated(request, account_sid, settings):
            return unauthenticated()
        query = dict(request.query_params)
        mine = [m for m in state.newest_first(query.get("To")) if m["account_sid"] == account_sid]
        page = list_page(mine, query, request.url.path)
        if isinstance(page, ApiError):
            return twilio_error(page)
        return JSONResponse(page, headers=request_id_header())

    @app.get(messages_path + "/{message_sid}.json")
    async def fetch_message(account_sid: str, message_sid: str, request: Request) -> Response:
        await asyncio.sleep(settings.response_latency_seconds)
        if not authenticated(request, account_sid, settings):
            return unauthenticated()
        resource = state.messages.get(message_sid)
        if resource is None or resource["account_sid"] != account_sid:
            return twilio_error(
                ApiError(404, 20404, "The requested resource {path} was not found"),
                path=request.url.path,
            )
        return JSONResponse(resource, headers=request_id_header())

    @app.get("/_admin/messages")
    async def list_witnessed_messages() -> list[dict[str, Any]]:
        with state.log_lock:
            return list(state.witness_log)

    @app.delete("/_admin/messages", status_code=204)
    async def clear_witnessed_messages() -> None:
        state.clear()

    @app.post("/_admin/fail-next")
    async def fail_next_requests(request: Request) -> dict[str, int]:
        """Body `{"count": 2, "status": 500}`; both optional (1 and 503)."""
        body = await request.json() if await request.body() else {}
        state.fail_next = int(body.get("count", 1))
        state.fail_next_status = int(body.get("status", 503))
        return {"count": state.fail_next, "status": state.fail_next_status}

    return app


def authenticated(request: Request, account_sid: str, settings: FakeTwilioSettings) -> bool:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        username, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    expected_sid = settings.account_sid or account_sid
    return (
        ACCOUNT_SID.match(account_sid) is not None
        and username == account_sid == expected_sid
        and secrets.compare_digest(password, settings.auth_token)
    )


def unauthenticated() -> JSONResponse:
    return JSONResponse(
        {
            "code": 20003,
            "detail": "Your AccountSid or AuthToken was incorrect.",
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        },
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="Twilio API"'},
    )


def request_id_header() -> dict[str, str]:
    return {"Twilio-Request-Id": new_sid("RQ")}


def witness_entry(resource: dict[str, Any], params: dict[str, str], media_urls: list[str]) -> dict[str, Any]:
    return {
        "sid": resource["sid"],
        "account_sid": resource["account_sid"],
        "date_created": resource["date_created"],
        "channel": "whatsapp" if params["To"].startswith(WHATSAPP_PREFIX) else "sms",
        "to": params["To"],
        "from": params.get("From"),
        "messaging_service_sid": params.get("MessagingServiceSid"),
        "body": params.get("Body"),
        "content_sid": params.get("ContentSid"),
        "content_variables": params.get("ContentVariables"),
        "media_urls": media_urls,
        "status_callback": params.get("StatusCallback"),
        "num_segments": resource["num_segments"],
    }


def planned_statuses(
    resource: dict[str, Any], settings: FakeTwilioSettings
) -> list[tuple[str, DeliveryFailure | None]]:
    """The status steps this message will go through after creation."""
    failure = MAGIC_DELIVERY_FAILURES.get(strip_channel(resource["to"]))
    if failure is None and settings.default_outcome != "delivered":
        failure = UNDELIVERED if settings.default_outcome == "undelivered" else FAILED
    steps: list[tuple[str, DeliveryFailure | None]] = []
    if resource["status"] == "accepted":
        steps.append(("queued", None))
    if failure is FAILED:
        return steps + [("failed", failure)]
    steps.append(("sent", None))
    if failure is not None:
        return steps + [(failure.status, failure)]
    steps.append(("delivered", None))
    if settings.whatsapp_read_receipts and resource["to"].startswith(WHATSAPP_PREFIX):
        steps.append(("read", None))
    return steps


async def progress_delivery(state: FakeTwilioState, resource: dict[str, Any], params: dict[str, str]) -> None:
    """Move the message through its statuses, posting each to StatusCallback if given."""
    settings = state.settings
    callback_url = params.get("StatusCallback") if settings.status_callbacks else None
    for status, failure in planned_statuses(resource, settings):
        await asyncio.sleep(settings.status_latency_seconds)
        apply_status(resource, status, failure, settings)
        if callback_url:
            state.callbacks_posted += 1
            every = settings.drop_status_callbacks_every
            if every and state.callbacks_posted % every == 0:
                continue  # lost, as if the receiver had been down through every retry
            await post_status_callback(state.callback_client(), callback_url, resource, settings)


def apply_status(
    resource: dict[str, Any],
    status: str,
    failure: DeliveryFailure | None,
    settings: FakeTwilioSettings,
) -> None:
    now = rfc2822(datetime.now(timezone.utc))
    segments = billable_segments(resource["to"], resource["body"])
    resource.update(status=status, date_updated=now)
    if status == "queued" and resource["from"] is None:
        sender = settings.messaging_service_from
        if resource["to"].startswith(WHATSAPP_PREFIX):
            sender = WHATSAPP_PREFIX + sender
        resource.update({"from": sender, "num_segments": str(segments)})
    if status == "sent":
        price = settings.price_per_segment * segments
        resource.update(date_sent=now, price=f"{price:.5f}")
    if failure is not None:
        resource.update(error_code=failure.error_code, error_message=failure.error_message)


def main(argv: list[str] | None = None) -> None:
    from orchestrator.fakes.server import run_standalone

    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.fakes.twilio", description="Run a local fake Twilio API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--auth-token", default=None, help="default: random, printed at start")
    parser.add_argument(
        "--credentials-from-database",
        action="store_true",
        help="use the auth token the service keeps in its database (DATABASE_URL)",
    )
    parser.add_argument("--account-sid", default=None, help="accept only this account SID")
    parser.add_argument("--log-path", type=Path, default=None, help="witness log (JSON lines)")
    parser.add_argument("--no-status-callbacks", action="store_true", help="never post status callbacks")
    parser.add_argument("--response-latency", type=float, default=0.0)
    parser.add_argument("--status-latency", type=float, default=0.5, help="seconds between status callbacks")
    parser.add_argument("--default-outcome", choices=DELIVERY_OUTCOMES, default="delivered")
    parser.add_argument("--price-per-segment", type=Decimal, default=Decimal("-0.0079"))
    args = parser.parse_args(argv)
    settings = FakeTwilioSettings(
        account_sid=args.account_sid,
        log_path=args.log_path,
        response_latency_seconds=args.response_latency,
        status_latency_seconds=args.status_latency,
        default_outcome=args.default_outcome,
        price_per_segment=args.price_per_segment,
        status_callbacks=not args.no_status_callbacks,
    )
    if args.auth_token:
        settings.auth_token = args.auth_token
    app = create_fake_twilio_app(settings)
    if args.credentials_from_database:
        from orchestrator.fakes.mounting import load_credentials_on_start

        load_credentials_on_start(app, twilio=settings)
    elif not args.auth_token:
        print(f"fake Twilio auth token: {settings.auth_token}", flush=True)
    run_standalone(app, args.host, args.port, log_level="warning")


if __name__ == "__main__":
    main()
