"""NUL characters in a URL's path or query get a 422 naming the parameter.

PostgreSQL text cannot hold NUL, so `/v1/customers/a%00b` reached the database as a
query parameter and came back as a 500. No route has a use for NUL, so it is refused
before routing, in FastAPI's 422 shape.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.api.browser_origins import refusal_cors_headers


def nul_location(scope: Scope) -> list[str] | None:
    """["path"] or ["query", name] when that part of the URL holds a NUL character."""
    if "\x00" in scope.get("path", ""):
        return ["path"]
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                return ["query", name.replace("\x00", "")]
    return None


class RefuseNulInUrls:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        location = nul_location(scope) if scope["type"] == "http" else None
        if location is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "detail": [
                    {"type": "string_nul", "loc": location, "input": None, "msg": "NUL characters are not allowed here"}
                ]
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 422,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *refusal_cors_headers(scope),  # readable by a listed site's page (browser_origins.py)
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
