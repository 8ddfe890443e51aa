"""The ceiling for Twilio status callbacks on this machine: FastAPI, the same signature check
(`RequestValidator`), and one UPDATE of the message in its own transaction, on an engine
built like ours (`create_engine`, same pool). No inbox, no history, no status rules.
`bench/callbacks.py --systems ...,one-update` serves it with uvicorn like `orchestrator api`
and fires the same signed callbacks at it, so our webhook can be read against it."""

from __future__ import annotations

import os

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request, Response
from twilio.request_validator import RequestValidator

from orchestrator.storage.database import create_engine

app = FastAPI()
engine = create_engine(os.environ["DATABASE_URL"])
validator = RequestValidator(os.environ["ORCHESTRATOR_FAKE_TWILIO_AUTH_TOKEN"])
PUBLIC_BASE_URL = os.environ["ORCHESTRATOR_PUBLIC_BASE_URL"]
UPDATE = sa.text("UPDATE messages SET status = :status, updated_at = now() WHERE provider_message_id = :sid")


@app.post("/webhooks/twilio/status")
async def status(request: Request) -> Response:
    form = {key: str(value) for key, value in (await request.form()).multi_items()}
    url = f"{PUBLIC_BASE_URL}{request.url.path}?{request.url.query}"
    if not validator.validate(url, form, request.headers.get("X-Twilio-Signature", "")):
        raise HTTPException(403)
    async with engine.begin() as connection:
        await connection.execute(UPDATE, {"status": form["MessageStatus"], "sid": form["MessageSid"]})
    return Response(status_code=204)


@app.get("/health/live")
async def live() -> dict:
    return {"status": "ok"}
