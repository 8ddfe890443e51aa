"""The HTTP application: thin routers over the engine."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from orchestrator.api import (
    admin,
    broadcasts,
    consents,
    conversations,
    customer_data,
    customers,
    events,
    health,
    journeys,
    kpis,
    reports,
    segments,
    timeline,
)
from orchestrator.api import conversions as conversion_routes
from orchestrator.api import metrics as metrics_routes
from orchestrator.api.direct_ingestion import DirectIngestion
from orchestrator.api.errors import validation_error_answer
from orchestrator.api.request_bodies import BodyLimits
from orchestrator.api.site_assets import mount_site_assets
from orchestrator.api.url_checks import RefuseNulInUrls
from orchestrator.config import Settings, get_settings
from orchestrator.console.app import mount_console
from orchestrator.engine.loop import WorkerLoop
from orchestrator.fakes.mounting import configure_bundled_fakes, mount_bundled_fakes
from orchestrator.runtime import Runtime
from orchestrator.startup import build_runtime
from orchestrator.web.access import (
    CUSTOMER_IMPORT,
    EVENT_INGESTION,
    MARKETING,
    MONITORING,
    OPERATIONS,
    document_api_keys,
    requires,
    warn_if_api_open,
)
from orchestrator.web.responses import document_error_responses
from webhooks import email_links as email_link_routes
from webhooks import sendgrid as sendgrid_webhooks
from webhooks import short_links as short_link_routes
from webhooks import twilio as twilio_webhooks

log = logging.getLogger("orchestrator")


def create_app(settings: Settings | None = None, *, run_worker: bool = True, runtime: Runtime | None = None) -> FastAPI:
    """`run_worker` puts the worker loop in this process (the embedded default)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own_runtime = runtime is None
        app.state.runtime = runtime or await build_runtime(settings)
        configure_bundled_fakes(app, app.state.runtime.settings)
        await warn_if_api_open(app.state.runtime)
        app.state.worker_loop = WorkerLoop(app.state.runtime) if run_worker else None
        if app.state.worker_loop:
            app.state.worker_loop.start()
        reload_on_sighup(app.state.runtime)
        if app.state.runtime.clock.simulated:
            log.warning("simulated clock: time moves only through POST /v1/admin/clock/advance")
        try:
            yield
        finally:
            await events.close_intake(app.state)
            await twilio_webhooks.close_status_intake(app.state)
            if app.state.worker_loop:
                await app.state.worker_loop.stop()
            if own_runtime:
                await app.state.runtime.aclose()

    app = FastAPI(
        title="orchestrator",
        version="0.1.0",
        lifespan=lifespan,
        exception_handlers={RequestValidationError: validation_error_answer},
    )
    # Who may call what: the route → role table in orchestrator/web/access.py and docs/api.md.
    app.include_router(events.router, dependencies=requires(EVENT_INGESTION))
    app.include_router(customers.router, dependencies=requires(OPERATIONS))
    app.include_router(customer_data.imports_router, dependencies=requires(CUSTOMER_IMPORT))
    app.include_router(customer_data.privacy_router, dependencies=requires(OPERATIONS))
    app.include_router(timeline.router, dependencies=requires(OPERATIONS))
    app.include_router(admin.router, dependencies=requires(OPERATIONS))
    app.include_router(journeys.router, dependencies=requires(MARKETING))
    app.include_router(broadcasts.router, dependencies=requires(MARKETING))
    app.include_router(kpis.router, dependencies=requires(MARKETING))
    app.include_router(reports.router, dependencies=requires(MARKETING))
    app.include_router(segments.router, dependencies=requires(MARKETING))
    app.include_router(conversion_routes.router, dependencies=requires(MARKETING))
    app.include_router(consents.router, dependencies=requires(OPERATIONS))
    app.include_router(conversations.router, dependencies=requires(OPERATIONS))
    app.include_router(metrics_routes.router, dependencies=requires(MONITORING))
    app.include_router(health.router)  # probes carry no key
    app.include_router(twilio_webhooks.router)
    app.include_router(sendgrid_webhooks.router)
    app.include_router(email_link_routes.router)
    app.include_router(short_link_routes.router)
    app.add_middleware(DirectIngestion)  # the ingestion routes, without FastAPI's per-request machinery
    app.add_middleware(BodyLimits, settings=settings)  # limits and gzip for every route
    app.add_middleware(RefuseNulInUrls)  # added last, so outermost
    mount_console(app)  # pages at /, over the API above with the same keys
    mount_site_assets(app)  # analytics.js for websites, at /site
    document_api_keys(app)
    document_error_responses(app)
    mount_bundled_fakes(app, settings)
    if runtime is not None:  # already built, so its secrets are known now (tests skip the lifespan)
        app.state.runtime = runtime
        configure_bundled_fakes(app, runtime.settings)
    return app


def create_api_app() -> FastAPI:
    """The API alone, configured from the environment: what `orchestrator api` runs in each
    uvicorn worker process (uvicorn needs an import string and a factory for more than one)."""
    return create_app(get_settings(), run_worker=False)


def reload_on_sighup(runtime: Runtime) -> None:
    """`kill -HUP <pid>` reloads journeys and segments, like `POST /v1/journeys/reload`."""
    import asyncio
    import signal

    from orchestrator.startup import reload_journeys_and_segments

    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload_journeys_and_segments(runtime)))
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests), or no signals
        pass
