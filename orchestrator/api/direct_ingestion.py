"""`POST /v1/track`, `/v1/identify` and `/v1/batch` served in front of FastAPI's router.

These three routes are called thousands of times a second; every other route a few times a
minute. Measured on the 2-core machine, FastAPI's routing, dependency solving and request
and response wrappers cost about half of a single event's CPU (bench/results/HISTORY.md, ingest), so
a pure ASGI middleware takes these three requests first and does what their routes in
`orchestrator/api/events.py` do, with the same objects and in the same order:

1. the routes' access policy (`EVENT_INGESTION`: 401 / 403 exactly as elsewhere);
2. the body validated against the routes' own pydantic models, straight from the JSON bytes;
   an invalid body gets FastAPI's 422 answer, each error's `loc` starting with `"body"`;
3. the same handler functions (`accept_single`, `accept_batch`): group commit, answer.

The FastAPI routes stay registered: they are what OpenAPI and /docs describe, and they serve
these paths when the middleware is not installed. One difference: the body is read as JSON
whatever its Content-Type says (FastAPI would refuse a JSON body sent as `text/plain`,
which some HTTP clients send by default).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.api import events
from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.web.access import EVENT_INGESTION

Handler = Callable[[Request, object], Awaitable[Response]]

ROUTES: dict[str, tuple[TypeAdapter, Handler]] = {
    "/v1/track": (TypeAdapter(TrackCall), events.accept_single),
    "/v1/identify": (TypeAdapter(IdentifyCall), events.accept_single),
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
        return await request_validation_exception_handler(request, RequestValidationError(errors, body=body))
    return await handler(request, call)
