"""API keys on the HTTP API: which roles may call which router.

Each router is included with one access policy (`app.include_router(r, dependencies=
requires(OPERATIONS))`), so handlers never deal with keys. A policy names the roles that
may read (GET, HEAD) and those that may change things (every other method).

Open mode, for local use: while no key has ever been created and
`ORCHESTRATOR_REQUIRE_API_KEYS` is false, every request is allowed and start-up logs a
warning. Keys can be created from the CLI while the service runs, so an open process asks
the database again on each request without a valid key (one `LIMIT 1` query on a tiny
table, as cheap as the key lookup every keyed request makes); once it has seen a key it
remembers that the API is closed, which is final because keys are revoked, never deleted.
Valid keys are looked up on every request, not cached, so a revocation counts at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.params import Depends as DependsParam
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.api.dependencies import RuntimeDep
from orchestrator.api_keys import any_key_ever_created, find_active_key
from orchestrator.runtime import Runtime

log = logging.getLogger("orchestrator.auth")

OPEN_API_WARNING = "API is open: no API keys exist; create one with `orchestrator keys create`"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READERS = ("admin", "marketer", "ops")

# auto_error=False: a missing header is our decision (open mode, or 401), not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <key>`")


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

    async def __call__(
        self,
        request: Request,
        runtime: RuntimeDep,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header_key: Annotated[str | None, Depends(_api_key_header)],
    ) -> Caller:
        presented = bearer.credentials if bearer else header_key
        async with runtime.sessions() as session:
            key = await find_active_key(session, presented) if presented else None
            if key is None:
                if not await api_is_closed(request, runtime, session):
                    request.state.caller = OPEN_CALLER
                    return OPEN_CALLER
                raise HTTPException(401, "a valid API key is required (Authorization: Bearer <key> or X-API-Key)"
                                    if not presented else "invalid or revoked API key",
                                    headers={"WWW-Authenticate": "Bearer"})
        allowed = self.roles_for(request.method)
        if key.role not in allowed:
            raise HTTPException(403, f"key '{key.name}' has role '{key.role}'; {request.method} on {self.name} "
                                     f"routes needs {' or '.join(sorted(allowed)) or 'a role no key has'}")
        caller = Caller(key_name=key.name, role=key.role)
        request.state.caller = caller
        return caller


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


# The route → role table (README, "Operations"). Writes by a read-only role get 403.
EVENT_INGESTION = AccessPolicy("event ingestion", read=("admin",), write=("admin", "ingest"))
OPERATIONS = AccessPolicy("customer and message", read=READERS, write=("admin",))
MARKETING = AccessPolicy("journey, template and KPI", read=READERS, write=("admin", "marketer"))
MONITORING = AccessPolicy("monitoring", read=("admin", "ops"), write=())
