"""API keys on the HTTP API: which roles may call which router.

Each router is included with one access policy (`app.include_router(r, dependencies=
requires(OPERATIONS))`), so handlers never deal with keys. A policy names the roles that
may read (GET, HEAD) and those that may change things (every other method).

Open mode, for local use: while no key has ever been created and
`ORCHESTRATOR_REQUIRE_API_KEYS` is false, every request is allowed and start-up logs a
warning. Keys can be created from the CLI while the service runs, so an open process asks
the database again (one `LIMIT 1` query on a tiny table) once its memory of "no key yet"
is older than `api_key_cache_seconds`; once it has seen a key it remembers that the API is
closed, which is final because keys are revoked, never deleted. A valid key is looked up
by its hash and remembered for `api_key_cache_seconds` too (5 s by default), so a
revocation counts within that time: a database round trip and a connection per request
cost more than the rest of a single event's ingestion (bench/results/HISTORY.md, ingest).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from fastapi.params import Depends as DependsParam
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.auth.keys import RecentLookups, any_key_ever_created, find_active_key
from orchestrator.runtime import Runtime

log = logging.getLogger("orchestrator.auth")

OPEN_API_WARNING = "API is open: no API keys exist; create one with `orchestrator keys create`"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READERS = ("admin", "marketer", "ops")

# The ways of presenting a key, as OpenAPI security schemes (`document_api_keys`).
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>`"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "`X-API-Key: <key>`"},
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "HTTP Basic with the key as user name and an empty password: Segment's write key",
    },
}


def presented_key(request: Request) -> str | None:
    """The key in `Authorization: Bearer <key>`, `X-API-Key: <key>`, or HTTP Basic with the key
    as user name (how Segment's SDKs and CDPs send their write key; the password is empty).
    Read here rather than through FastAPI's security dependencies, which FastAPI re-inspects
    on every request: on `/v1/track` that was a tenth of the request's CPU (bench/results/HISTORY.md, ingest)."""
    headers = request.headers
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        if scheme == "bearer" and credentials:
            return credentials
        if scheme == "basic" and credentials:
            return _basic_user(credentials)
    return headers.get("x-api-key") or None


def _basic_user(credentials: str) -> str | None:
    """The user name of Basic credentials (or the password, for a client that puts the key there)."""
    try:
        user, _, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "\x00invalid"  # presented but unreadable: refused as an invalid key, never open mode
    return user or password or None


def document_api_keys(app) -> None:
    """Put the security schemes in the OpenAPI document, so /docs offers to send a key."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            for path, operations in schema["paths"].items():
                if path.startswith("/v1/") or path == "/metrics":  # the routers under an AccessPolicy
                    for operation in operations.values():
                        operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


@dataclass(frozen=True)
class Caller:
    """Who made the request: a key's name and role, or nobody in open mode."""

    key_name: str | None
    role: str | None


OPEN_CALLER = Caller(key_name=None, role=None)


class AccessPolicy:
    """A FastAPI dependency: the roles allowed to read and to write one group of routes."""

    def __init__(self, name: str, *, read: Iterable[str], write: Iterable[str]) -> None:
        self.name = name
        self.read = frozenset(read)
        self.write = frozenset(write)

    def roles_for(self, method: str) -> frozenset[str]:
        return self.read if method.upper() in READ_METHODS else self.write

    async def __call__(self, request: Request) -> Caller:
        runtime: Runtime = request.app.state.runtime
        presented = presented_key(request)
        recent = recent_lookups(request, runtime)
        known = recent.valid_key(presented) if presented else None
        if known is None:
            if not presented and recent.known_open():
                return _open(request)
            async with runtime.sessions() as session:
                key = await find_active_key(session, presented) if presented else None
                if key is None:
                    if not await api_is_closed(request, runtime, session):
                        recent.remember_open()
                        return _open(request)
                    raise HTTPException(
                        401,
                        "a valid API key is required (Authorization: Bearer <key> or X-API-Key)"
                        if not presented
                        else "invalid or revoked API key",
                        headers={"WWW-Authenticate": "Bearer"},
                    )
            recent.remember_valid(presented, key)
            known = key.name, key.role
        name, role = known
        allowed = self.roles_for(request.method)
        if role not in allowed:
            raise HTTPException(
                403,
                f"key '{name}' has role '{role}'; {request.method} on {self.name} "
                f"routes needs {' or '.join(sorted(allowed)) or 'a role no key has'}",
            )
        caller = Caller(key_name=name, role=role)
        request.state.caller = caller
        return caller


def _open(request: Request) -> Caller:
    request.state.caller = OPEN_CALLER
    return OPEN_CALLER


def recent_lookups(request: Request, runtime: Runtime) -> RecentLookups:
    """One per app (so per process), made on first use."""
    state = request.app.state
    if getattr(state, "recent_key_lookups", None) is None:
        state.recent_key_lookups = RecentLookups(runtime.settings.api_key_cache_seconds)
    return state.recent_key_lookups


async def api_is_closed(request: Request, runtime: Runtime, session: AsyncSession) -> bool:
    if runtime.settings.require_api_keys or getattr(request.app.state, "api_closed", False):
        return True
    if await any_key_ever_created(session):
        request.app.state.api_closed = True  # final: keys are never deleted
        return True
    return False


async def warn_if_api_open(runtime: Runtime) -> bool:
    """At start-up: say loudly that anyone can call the API. True when it is open."""
    if runtime.settings.require_api_keys:
        return False
    async with runtime.sessions() as session:
        if await any_key_ever_created(session):
            return False
    log.warning(OPEN_API_WARNING)
    return True


def requires(policy: AccessPolicy) -> list[DependsParam]:
    """For `app.include_router(router, dependencies=requires(POLICY))`."""
    return [Depends(policy)]


# The route → role table (docs/api.md, "API keys and roles"). Writes by a read-only role get 403.
EVENT_INGESTION = AccessPolicy("event ingestion", read=("admin",), write=("admin", "ingest"))
# A write key in a web page is public: only a key that can do nothing but send events from a
# page may be one, and such a key is refused on the routes above (where a server's calls are trusted).
BROWSER_EVENT_INGESTION = AccessPolicy("browser event ingestion", read=(), write=("site",))
OPERATIONS = AccessPolicy("customer and message", read=READERS, write=("admin",))
MARKETING = AccessPolicy("journey, template and KPI", read=READERS, write=("admin", "marketer"))
CUSTOMER_IMPORT = AccessPolicy("customer import", read=READERS, write=("admin", "marketer"))
MONITORING = AccessPolicy("monitoring", read=("admin", "ops"), write=())
