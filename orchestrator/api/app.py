"""The HTTP application: thin routers over the engine."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from orchestrator.api import admin, customers, events
from orchestrator.config import Settings, get_settings
from orchestrator.engine.loop import WorkerLoop
from orchestrator.runtime import Runtime, build_runtime

log = logging.getLogger("orchestrator")


def create_app(settings: Settings | None = None, *, run_worker: bool = True, runtime: Runtime | None = None) -> FastAPI:
    """`run_worker` puts the worker loop in this process (the embedded default)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own_runtime = runtime is None
        app.state.runtime = runtime or await build_runtime(settings)
        app.state.worker_loop = WorkerLoop(app.state.runtime) if run_worker else None
        if app.state.worker_loop:
            app.state.worker_loop.start()
        if app.state.runtime.clock.simulated:
            log.warning("simulated clock: time moves only through POST /v1/admin/clock/advance")
        try:
            yield
        finally:
            if app.state.worker_loop:
                await app.state.worker_loop.stop()
            if own_runtime:
                await app.state.runtime.aclose()

    app = FastAPI(title="orchestrator", version="0.1.0", lifespan=lifespan)
    app.include_router(events.router)
    app.include_router(customers.router)
    app.include_router(admin.router)
    return app
