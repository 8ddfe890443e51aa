"""The fakes inside the service (`/_fake/twilio`, `/_fake/sendgrid`), and their credentials.

Mounted only while no real provider is configured: a deployment with real credentials
carries no test double at all. Their `/_admin` routes list recipients, bodies and
unsubscribe links, so they follow the same API-key policy as the `/v1` admin routes
(`OPERATIONS` in `orchestrator/web/access.py`): open only while the API itself is open.

The fakes get their credentials from the service once its runtime exists (they come from
the database, `orchestrator/auth/service_secrets.py`): the fake Twilio's auth token, the
fake SendGrid's event signing key and where to post its events.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from orchestrator.config import Settings
from orchestrator.fakes.credentials import FAKE_SENDGRID_PATH, FAKE_TWILIO_PATH

log = logging.getLogger("orchestrator")
ADMIN_PREFIX = "/_admin"


class AdminRoutesBehindAccessPolicy:
    """ASGI wrapper: `/_admin…` inside a mounted fake needs what the policy asks for.

    It runs before the fake sees the request, while `scope["app"]` is still the service's
    app, so the policy finds the runtime and the key cache where the `/v1` routes do."""

    def __init__(self, fake: FastAPI) -> None:
        self.fake = fake

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and _relative_path(scope).startswith(ADMIN_PREFIX):
            from orchestrator.web.access import OPERATIONS

            try:
                await OPERATIONS(Request(scope))
            except HTTPException as refused:
                response = JSONResponse(
                    {"detail": refused.detail}, status_code=refused.status_code, headers=refused.headers
                )
                await response(scope, receive, send)
                return
        await self.fake(scope, receive, send)


def _relative_path(scope) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def mount_bundled_fakes(app: FastAPI, settings: Settings) -> None:
    """Without provider credentials, the service carries its own Twilio and SendGrid."""
    app.state.bundled_fakes = {}
    if settings.uses_real_providers:
        if settings.uses_fake_twilio or settings.uses_fake_sendgrid:
            log.error(
                "real provider credentials are set, so no fake provider is mounted: give %s credentials too "
                "or set its provider to local",
                "Twilio" if settings.uses_fake_twilio else "SendGrid",
            )
        return
    if settings.uses_fake_twilio and not settings.twilio_api_base_url:
        from orchestrator.fakes.twilio import create_fake_twilio_app

        app.state.bundled_fakes["twilio"] = fake = create_fake_twilio_app()
        app.mount(FAKE_TWILIO_PATH, AdminRoutesBehindAccessPolicy(fake))
        log.warning("no TWILIO_ACCOUNT_SID: SMS and WhatsApp go to the bundled fake Twilio at %s", FAKE_TWILIO_PATH)
    if settings.uses_fake_sendgrid and not settings.sendgrid_api_base_url:
        from orchestrator.fakes.sendgrid import create_fake_sendgrid_app

        app.state.bundled_fakes["sendgrid"] = fake = create_fake_sendgrid_app()
        app.mount(FAKE_SENDGRID_PATH, AdminRoutesBehindAccessPolicy(fake))
        log.warning("no SENDGRID_API_KEY: e-mail goes to the bundled fake SendGrid at %s", FAKE_SENDGRID_PATH)


def configure_bundled_fakes(app: FastAPI, settings: Settings) -> None:
    """Hand the mounted fakes the credentials `settings` carries (resolved from the database)."""
    fakes = getattr(app.state, "bundled_fakes", {})
    if "twilio" in fakes:
        fakes["twilio"].state.fake_twilio.settings.auth_token = settings.fake_twilio_auth_token
    if "sendgrid" in fakes:
        webhook = fakes["sendgrid"].state.event_webhook
        webhook.url = settings.public_base_url + "/webhooks/sendgrid/events"
        webhook.signing_key = settings.fake_sendgrid_signing_key


def load_credentials_on_start(app: FastAPI, *, twilio=None) -> None:
    """A standalone fake that takes its credentials from the service's database (DATABASE_URL)
    when it starts serving: the compose stack's fake Twilio, started beside the service."""

    @asynccontextmanager
    async def lifespan(_app):
        from orchestrator.auth.service_secrets import with_service_secrets
        from orchestrator.storage.database import create_engine, session_factory

        settings = Settings()
        engine = create_engine(settings.database_url)
        try:
            settings = await with_service_secrets(settings, session_factory(engine))
        finally:
            await engine.dispose()
        if twilio is not None:
            twilio.auth_token = settings.fake_twilio_auth_token
        yield

    app.router.lifespan_context = lifespan
