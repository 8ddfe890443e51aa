"""Health checks for load balancers and orchestrators (Kubernetes probes and the like).

`/health/live` says the process answers HTTP and touches nothing else, so a database
outage never gets healthy processes restarted. `/health/ready` says whether this process
can do its work now: the database answers `SELECT 1` within a short timeout. Neither needs
an API key: probes carry none, and the answers reveal nothing about customers.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.web.dependencies import RuntimeDep

router = APIRouter(prefix="/health", tags=["health"])

# Shorter than a probe's usual timeout (Kubernetes: 1 s by default, often raised), and
# long enough for a busy pool to hand out a connection.
READINESS_TIMEOUT_SECONDS = 2.0


async def database_problem(engine: AsyncEngine, timeout: float = READINESS_TIMEOUT_SECONDS) -> str | None:
    """None when the database answers `SELECT 1` in time, else why not."""

    async def select_one() -> None:
        async with engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    try:
        await asyncio.wait_for(select_one(), timeout)
    except TimeoutError:
        return f"database did not answer within {timeout:g} s"
    except Exception as error:  # any driver error means "not ready", with its first line as the reason
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        return f"database unreachable: {type(error).__name__}: {first_line}"
    return None


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/ready", responses={503: {"description": "the database is unreachable or too slow"}})
async def ready(runtime: RuntimeDep) -> JSONResponse:
    problem = await database_problem(runtime.engine)
    if problem:
        return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
    return JSONResponse({"status": "ready"})
