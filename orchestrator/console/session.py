"""Who is using the console: a login with an API key, kept in an encrypted session cookie.

The console calls the API in-process with the very key its user logged in with, so a page
can do exactly what that key may do through the API, and revoking the key ends the session
at the next request. The cookie therefore carries the key, encrypted and authenticated
(Fernet, AES-128-CBC + HMAC-SHA256) under a key derived from `secret_key`, HttpOnly so page
scripts never see it, SameSite=Lax, Secure when the console is served over HTTPS, and it
expires after `SESSION_HOURS`.

Forms and htmx requests carry a CSRF token bound to the session (a random value inside the
encrypted cookie, echoed in a hidden field or the `X-CSRF-Token` header); a write without the
matching token is refused, so another site cannot make a logged-in browser act.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken

COOKIE = "orchestrator_console"
SESSION_HOURS = 12
CONSOLE_ROLES = ("admin", "marketer", "ops")  # `ingest` and `site` keys are for applications, not people


@dataclass(frozen=True)
class ConsoleSession:
    key: str | None  # None while the API is open (no key was ever created)
    name: str
    role: str
    csrf: str

    def may_write(self, *roles: str) -> bool:
        return self.role in roles


def _fernet(secret_key: str) -> Fernet:
    derived = hashlib.sha256(b"orchestrator console session\0" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(secret_key: str, key: str | None, name: str, role: str) -> tuple[str, ConsoleSession]:
    session = ConsoleSession(key=key, name=name, role=role, csrf=secrets.token_urlsafe(24))
    payload = json.dumps({"k": key, "n": name, "r": role, "c": session.csrf}).encode()
    return _fernet(secret_key).encrypt(payload).decode(), session


def unseal(secret_key: str, cookie: str | None) -> ConsoleSession | None:
    if not cookie:
        return None
    try:
        payload = json.loads(_fernet(secret_key).decrypt(cookie.encode(), ttl=SESSION_HOURS * 3600))
        return ConsoleSession(key=payload["k"], name=payload["n"], role=payload["r"], csrf=payload["c"])
    except (InvalidToken, ValueError, KeyError, TypeError):
        return None


def csrf_matches(session: ConsoleSession, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf, presented)
