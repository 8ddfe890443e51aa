"""The central customer database over HTTP: import a file, export or erase one person
(docs/customers.md). Thin: the work is in `orchestrator/customers`.

The import body is streamed to a temporary file as it arrives (never held in memory; the
body limits middleware lets this one path through, `request_bodies.py`), then read line by
line and applied in batches.
"""

from __future__ import annotations

import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from orchestrator.clock import UtcDatetime
from orchestrator.customers.erasure import erase_customer
from orchestrator.customers.import_files import Format, ImportFileError
from orchestrator.customers.imports import ImportSource, import_customers
from orchestrator.customers.records import customer_rows, export_document, find_customer
from orchestrator.web.dependencies import RuntimeDep, SessionDep
from orchestrator.web.responses import NOT_FOUND, error

CONTENT_TYPES: dict[str, Format] = {
    "text/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/ndjson": "jsonl",
}

imports_router = APIRouter(prefix="/v1", tags=["customers and messages"])
privacy_router = APIRouter(prefix="/v1", tags=["customers and messages"])


class RejectPublic(BaseModel):
    line: int
    column: str | None
    reason: str


class ImportAnswer(BaseModel):
    file: str
    dry_run: bool
    lines: int
    created: int
    updated: int
    unchanged: int
    rejected_lines: int
    consents_recorded: int
    reject_count: int
    rejects: list[RejectPublic]  # the first 100; `reject_count` counts them all


class ErasureAnswer(BaseModel):
    user_id: str
    erased_at: UtcDatetime
    tombstones: int
    rows_changed: int


def _format_of(request: Request) -> Format:
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type not in CONTENT_TYPES:
        raise HTTPException(
            415, f"Content-Type '{content_type}': send text/csv or application/x-ndjson (one JSON object a line)"
        )
    if (request.headers.get("content-encoding") or "identity").strip().lower() != "identity":
        raise HTTPException(415, "Content-Encoding: an import is sent uncompressed")
    return CONTENT_TYPES[content_type]


@imports_router.post(
    "/customers/import",
    response_model=ImportAnswer,
    responses={
        413: error("Body over ORCHESTRATOR_MAX_IMPORT_BYTES"),
        415: error("Not CSV or JSON Lines"),
        422: error("The file cannot be read at all (no userId column, not UTF-8)"),
    },  # fmt: skip
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def import_file(
    request: Request,
    runtime: RuntimeDep,
    dry_run: Annotated[bool, Query(description="check and count, write nothing")] = False,
    file_name: Annotated[
        str | None, Query(max_length=255, description="named in the consent evidence; default: upload.<format>")
    ] = None,
) -> ImportAnswer:
    """Create or update customers from a CSV or JSON Lines body; every rejected line is
    answered with its line, column and reason. The same file twice changes nothing."""
    fmt = _format_of(request)
    limit = runtime.settings.max_import_bytes
    with tempfile.TemporaryFile() as spool:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"body too large: an import takes at most {limit} bytes; use the CLI")
            spool.write(chunk)
        spool.seek(0)
        source = ImportSource(file=file_name or f"upload.{fmt}", imported_at=runtime.clock.now(), dry_run=dry_run)
        try:
            report = await import_customers(runtime.sessions, spool, fmt, source)
        except ImportFileError as problem:
            raise HTTPException(422, str(problem)) from None
    answer: dict[str, Any] = {**report.__dict__, "rejects": [RejectPublic(**r.__dict__) for r in report.rejects]}
    return ImportAnswer(**answer)


@privacy_router.get("/customers/{user_id}/export", responses=NOT_FOUND)
async def export_customer(user_id: str, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Everything held about one person, as JSON: profile, traits, consents with their
    evidence, events, identity links, enrollments, messages with their statuses and clicks,
    conversations, replies, NPS answers, conversions, orders, suppressions."""
    customer = await find_customer(session, user_id)
    if customer is None:
        raise HTTPException(404, f"no customer with userId '{user_id}'")
    return export_document(await customer_rows(session, customer), runtime.clock.now())


@privacy_router.post("/customers/{user_id}/erase", response_model=ErasureAnswer, responses=NOT_FOUND)
async def erase(user_id: str, session: SessionDep, runtime: RuntimeDep) -> ErasureAnswer:
    """Erase one person's personal data; keep the aggregates; never message their addresses
    again (docs/customers.md, "Erase"). Admin only."""
    async with session.begin():
        customer = await find_customer(session, user_id, lock=True)
        if customer is None:
            raise HTTPException(404, f"no customer with userId '{user_id}'")
        erasure = await erase_customer(session, customer, runtime.settings.erasure_key, runtime.clock.now())
    return ErasureAnswer(**erasure.__dict__)
