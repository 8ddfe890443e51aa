"""The floor for `POST /v1/track` on this machine: FastAPI, the same pydantic model, the same
answer, and nothing else (no database, no API key, no journeys). `bench/ingest.py --floor`
serves it with uvicorn (httptools, uvloop) like `orchestrator api` and measures it with the
same load generator, so the ingest figures can be read against what the framework costs."""

from __future__ import annotations

import json

from fastapi import FastAPI, Response

from orchestrator.events.schemas import TrackCall

app = FastAPI()


@app.post("/v1/track")
async def track(call: TrackCall) -> Response:
    return Response(
        json.dumps(
            {
                "success": True,
                "accepted": 1,
                "duplicates": 0,
                "results": [{"messageId": call.messageId, "duplicate": False}],
            }
        ),
        media_type="application/json",
    )


@app.get("/health/live")
async def live() -> dict:
    return {"status": "ok"}
