"""`POST /v1/track`, `/v1/identify`, `/v1/batch` (and Segment's other single calls,
`/v1/page`, `/v1/screen`, `/v1/group`, `/v1/alias`) served in front of FastAPI's router.

These routes are called thousands of times a second; every other route a few times a
minute. Measured on the 2-core machine, FastAPI's routing, dependency solving and request
and response wrappers cost about half of a single event's CPU (bench/results/HISTORY.md, ingest), so
a pure ASGI middleware takes these three requests first and does what their routes in
`orchestrator/api/events.py` do, with the same objects and in the same order:

1. the routes' access policy (`EVENT_INGESTION`: 401 / 403 exactly as elsewhere);
2. the body (already size-checked and inflated by `request_bodies.BodyLimits`) validated
   against the routes' own pydantic models, straight from the JSON bytes; an invalid body
   gets the app's 422 answer (`errors.py`), each error's `loc` starting with `"body"`;
3. the same handler functions (`accept_single`, `accept_batch`): group commit, answer.

The FastAPI routes stay registered: they are what OpenAPI and /docs describe, and they serve
these paths when the middleware is not installed. One difference: the body is read as JSON
whatever its Content-Type says (FastAPI would refuse a JSON body sent as `text/plain`,
which some HTTP clients send by default).

Browsers: analytics.js (@segment/analytics-next 1.84, docs/website-kpis.md) posts each call
to `<apiHost>/<first letter of its type>` (`/v1/t`, `/v1/p`, `/v1/i`, ...) and batches to
`/v1/b`, as `text/plain`, with the write key in the body as `writeKey` and, since 1.7x, also
as HTTP Basic (which makes the browser send a CORS preflight first). Those paths are served
here only, for the sites in `ORCHESTRATOR_SITE_ORIGINS`: the same handlers, the body's
`writeKey` presented as HTTP Basic when no header carries a key, and only a key of the
`site` role accepted (a key in a web page is public; the paths above refuse it). An identify
among them changes contact addresses and consent only with a valid `context.userHash`
(`orchestrator/events/site_identity.py`); a wrong one is a 403 naming it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable

from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.api import events
from orchestrator.api.browser_origins import BROWSER_PATHS, PREFLIGHT_HEADERS, cors_headers, page_origin
from orchestrator.api.errors import validation_error_answer
from orchestrator.events.schemas import AliasCall, GroupCall, IdentifyCall, PageCall, ScreenCall, TrackCall
from orchestrator.events.site_identity import USER_HASH, WrongUserHash, check_page_calls
from orchestrator.web.access import BROWSER_EVENT_INGESTION, EVENT_INGESTION, AccessPolicy

Handler = Callable[..., Awaitable[Response]]

ROUTES: dict[str, tuple[TypeAdapter, Handler]] = {
    "/v1/track": (TypeAdapter(TrackCall), events.accept_single),
    "/v1/identify": (TypeAdapter(IdentifyCall), events.accept_single),
    "/v1/page": (TypeAdapter(PageCall), events.accept_single),
    "/v1/screen": (TypeAdapter(ScreenCall), events.accept_single),
    "/v1/group": (TypeAdapter(GroupCall), events.accept_single),
    "/v1/alias": (TypeAdapter(AliasCall), events.accept_single),
    "/v1/batch": (TypeAdapter(events.BatchCall), events.accept_batch),
}


class DirectIngestion:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in BROWSER_PATHS:
            await _from_a_browser(scope, receive, send)
            return
        route = ROUTES.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await _handle(request, *route)
        except ClientDisconnect:  # nothing was read, nothing stored: nobody to answer
            return
        await response(scope, receive, send)


async def _from_a_browser(scope: Scope, receive: Receive, send: Send) -> None:
    cors = cors_headers(scope)
    if cors is None:  # a site not listed: no CORS answer either, so its page cannot even read the refusal
        detail = f"Origin: {page_origin(scope)!r} is not in ORCHESTRATOR_SITE_ORIGINS, so its pages may not send events"
        await JSONResponse({"detail": detail}, status_code=403, headers={"Vary": "Origin"})(scope, receive, send)
        return
    if scope["method"] == "OPTIONS":  # the preflight: analytics.js sends an Authorization header
        await Response(status_code=204, headers={**cors, **PREFLIGHT_HEADERS})(scope, receive, send)
        return
    if scope["method"] != "POST":
        await Response("POST only", status_code=405, headers={**cors, "Allow": "POST"})(scope, receive, send)
        return
    try:
        body = await Request(scope, receive).body()
    except ClientDisconnect:
        return
    headers = list(scope["headers"])
    key = None if any(name in (b"authorization", b"x-api-key") for name, _ in headers) else _write_key(body)
    if key:
        headers.append((b"authorization", b"Basic " + base64.b64encode(f"{key}:".encode())))

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    request = Request({**scope, "headers": headers}, replay)
    response = await _handle(request, *ROUTES[BROWSER_PATHS[scope["path"]]], policy=BROWSER_EVENT_INGESTION)
    response.headers.update(cors)
    await response(scope, receive, send)


def _write_key_refusal(refused: HTTPException) -> str:
    if refused.status_code == 401:
        return "writeKey: missing, invalid or revoked; a site sends with an API key of the site role"
    return f"writeKey: {refused.detail}"


def _write_key(body: bytes) -> str | None:
    try:
        key = json.loads(body).get("writeKey")
    except (ValueError, AttributeError):  # not JSON, or not an object: validation answers that
        return None
    return key if isinstance(key, str) else None


async def _handle(
    request: Request, model: TypeAdapter, handler: Handler, *, policy: AccessPolicy = EVENT_INGESTION
) -> Response:
    try:
        await policy(request)
    except HTTPException as refused:
        if policy is BROWSER_EVENT_INGESTION:  # the key came from the body's writeKey (or analytics.js's Basic)
            refused = HTTPException(refused.status_code, _write_key_refusal(refused), refused.headers)
        return await http_exception_handler(request, refused)
    body = await request.body()
    try:
        call = model.validate_json(body)
    except ValidationError as invalid:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in invalid.errors(include_url=False)]
        return await validation_error_answer(request, RequestValidationError(errors))
    if policy is BROWSER_EVENT_INGESTION:
        try:
            check_page_calls(
                call.batch if handler is events.accept_batch else [call],
                request.app.state.runtime.settings.site_identity_secrets,
            )
        except WrongUserHash as wrong:
            where = f"batch[{wrong.index}]." if handler is events.accept_batch else ""
            return await http_exception_handler(request, HTTPException(403, f"{where}context.{USER_HASH}: {wrong}"))
    try:
        return await (handler(request, call, len(body)) if handler is events.accept_batch else handler(request, call))
    except HTTPException as refused:
        return await http_exception_handler(request, refused)
