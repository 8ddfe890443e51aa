"""Error answers in the OpenAPI document, as the API really gives them.

Every error except a 422 is `{"detail": "<one sentence>"}` (an `HTTPException`, or the
body limits of `request_bodies.py`); a 422 is FastAPI's list of field errors. Routes name
their own 404s and 409s (`responses=`); the statuses every route of a kind can answer are
added to the document here, so a client generated from it knows them all. Shared by
`orchestrator/api` and `webhooks/`.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel


class ErrorMessage(BaseModel):
    detail: str


def error(description: str) -> dict:
    return {"model": ErrorMessage, "description": description}


NOT_FOUND = {404: error("No such resource")}
CONFLICT = {409: error("Not possible in the resource's current state")}
BODY_ERRORS = {413: error("Body (or one call of a batch) over its size limit, docs/api.md")}

_MESSAGE_REF = {"$ref": "#/components/schemas/ErrorMessage"}
_ON_EVERY_KEYED_ROUTE = {"401": "No valid API key (when keys exist)", "403": "The key's role may not do this"}
_ON_EVERY_BODY = {
    "400": "Body not readable: a corrupt gzip stream or unparsable JSON",
    "413": "Body over its size limit (after gzip inflation), docs/api.md",
    "415": "Content-Encoding other than gzip",
}


def _add(operation: dict, statuses: dict[str, str]) -> None:
    responses = operation.setdefault("responses", {})
    for status, description in statuses.items():
        responses.setdefault(
            status, {"description": description, "content": {"application/json": {"schema": _MESSAGE_REF}}}
        )


def document_error_responses(app: FastAPI) -> None:
    """Wrap `app.openapi` (after `document_api_keys`) to add the statuses every route may answer."""
    generate = app.openapi
    completed: list[dict] = []  # the document once these are added: it is built once, then cached

    def openapi() -> dict:
        schema = generate()
        if not any(done is schema for done in completed):
            schema.setdefault("components", {}).setdefault("schemas", {})["ErrorMessage"] = (
                ErrorMessage.model_json_schema()
            )
            for operations in schema["paths"].values():
                for operation in operations.values():
                    if operation.get("security"):
                        _add(operation, _ON_EVERY_KEYED_ROUTE)
                    if "requestBody" in operation:
                        _add(operation, _ON_EVERY_BODY)
            completed.append(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
