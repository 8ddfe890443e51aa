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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.api import events
from orchestrator.api.errors import validation_error_answer
from orchestrator.events.schemas import AliasCall, GroupCall, IdentifyCall, PageCall, ScreenCall, TrackCall
from orchestrator.web.access import EVENT_INGESTION

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


async def _handle(request: Request, model: TypeAdapter, handler: Handler) -> Response:
    try:
        await EVENT_INGESTION(request)
    except HTTPException as refused:
        return await http_exception_handler(request, refused)
    body = await request.body()
    try:
        call = model.validate_json(body)
    except ValidationError as invalid:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in invalid.errors(include_url=False)]
        return await validation_error_answer(request, RequestValidationError(errors))
    try:
        return await (handler(request, call, len(body)) if handler is events.accept_batch else handler(request, call))
    except HTTPException as refused:
        return await http_exception_handler(request, refused)
