"""The ingestion routes' middleware: what differs from, or must match, the FastAPI routes."""

from __future__ import annotations

from orchestrator.api.app import create_app
from orchestrator.api.direct_ingestion import ROUTES
from orchestrator.storage.models import Event
from tests.api.test_events import count


async def test_it_serves_exactly_the_documented_segment_routes(runtime):
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    documented = {path for path, operations in app.openapi()["paths"].items() if "post" in operations}
    assert (
        set(ROUTES)
        == {"/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias", "/v1/batch"}
        <= documented
    )


async def test_malformed_json_is_a_422_about_the_body(client, runtime):
    response = await client.post(
        "/v1/track", content=b'{"userId": "a", "event": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"][0] == "body" and error["type"] == "json_invalid"
    assert await count(runtime, Event) == 0


async def test_json_sent_as_text_plain_is_accepted(client, runtime):
    response = await client.post(
        "/v1/track", content=b'{"userId": "a", "event": "Signed Up"}', headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    assert await count(runtime, Event) == 1


async def test_other_methods_on_those_paths_still_reach_fastapi(client):
    assert (await client.get("/v1/track")).status_code == 405
