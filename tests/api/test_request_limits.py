"""Body size limits, gzip bodies and small 422s (docs/api.md, "Limits")."""

from __future__ import annotations

import gzip
import json

from orchestrator.api.app import create_app
from orchestrator.api.errors import MAX_ECHOED_INPUT
from orchestrator.storage.models import Event
from tests.api.test_events import count

TEN_MB = 10 * 1024 * 1024


def padded_track(size: int) -> bytes:
    return json.dumps({"userId": "a", "event": "Big", "properties": {"pad": "x" * size}}).encode()


async def test_ten_megabytes_on_track_is_a_413_read_no_further_than_the_limit(runtime):
    """Driven at the ASGI level to count what the app reads: a 10 MB body sent in 64 KB
    chunks is refused after at most one chunk past the 32 KB limit."""
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    chunk = b"x" * 65536
    chunks_read = 0
    sent: list[dict] = []

    async def receive():
        nonlocal chunks_read
        chunks_read += 1
        return {"type": "http.request", "body": chunk, "more_body": chunks_read < TEN_MB // len(chunk)}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/track",
        "raw_path": b"/v1/track",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
        "app": app,
        "state": {},
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert chunks_read == 1  # 64 KB read, over the 32 KB limit: nothing more
    assert "32768 bytes" in json.loads(sent[1]["body"])["detail"]


async def test_ten_megabytes_are_refused_on_identify_batch_and_consents(client, runtime):
    huge = padded_track(TEN_MB)
    assert (await client.post("/v1/identify", content=huge)).status_code == 413
    assert (await client.post("/v1/batch", content=huge)).status_code == 413
    assert (
        await client.post("/v1/customers/a/consents", content=huge, headers={"Content-Type": "application/json"})
    ).status_code == 413
    assert await count(runtime, Event) == 0


async def test_bodies_just_under_their_limits_are_accepted(client, runtime):
    limit = runtime.settings.max_call_bytes
    body = padded_track(limit - 100)
    assert len(body) <= limit
    assert (await client.post("/v1/track", content=body)).status_code == 200
    assert (await client.post("/v1/track", content=padded_track(limit + 1))).status_code == 413


async def test_one_oversized_call_in_a_batch_is_a_413_naming_it(client, runtime):
    limit = runtime.settings.max_call_bytes
    small = {"type": "track", "userId": "a", "event": "Small"}
    big = {"type": "track", "userId": "a", "event": "Big", "properties": {"pad": "x" * limit}}
    response = await client.post("/v1/batch", json={"batch": [small, big]})
    assert response.status_code == 413
    assert response.json()["detail"].startswith("batch[1] is ")
    assert await count(runtime, Event) == 0


async def test_a_gzip_body_is_inflated_and_stored(client, runtime):
    body = gzip.compress(json.dumps({"batch": [{"type": "track", "userId": "a", "event": "Zipped"}]}).encode())
    response = await client.post(
        "/v1/batch", content=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    assert await count(runtime, Event) == 1


async def test_the_limit_applies_to_the_inflated_size_of_a_gzip_body(client, runtime):
    bomb = gzip.compress(padded_track(TEN_MB))  # about 10 KB on the wire
    assert len(bomb) < runtime.settings.max_call_bytes
    response = await client.post("/v1/track", content=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "after gzip inflation" in response.json()["detail"]


async def test_a_corrupt_gzip_body_is_a_400_and_another_encoding_a_415(client, runtime):
    corrupt = gzip.compress(padded_track(100))[:-12]
    assert (await client.post("/v1/track", content=corrupt, headers={"Content-Encoding": "gzip"})).status_code == 400
    assert (
        await client.post("/v1/track", content=b"\x00garbage", headers={"Content-Encoding": "gzip"})
    ).status_code == 400
    assert (await client.post("/v1/track", content=b"{}", headers={"Content-Encoding": "br"})).status_code == 415
    assert await count(runtime, Event) == 0


async def test_gzip_works_on_fastapi_routes_too(client, runtime):
    await client.post("/v1/identify", json={"userId": "a"})
    body = gzip.compress(json.dumps({"channel": "email", "status": "opted_out", "source": "api"}).encode())
    response = await client.post(
        "/v1/customers/a/consents",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


async def test_a_422_echoes_only_the_start_of_a_long_input(client):
    long_name = "y" * 30_000
    response = await client.post("/v1/track", json={"userId": "a", "event": long_name})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "event"]
    assert error["input"] == "y" * MAX_ECHOED_INPUT + "…"
    assert len(response.content) < 2000


async def test_a_422_about_a_large_object_echoes_the_start_of_its_json(client):
    response = await client.post(
        "/v1/batch",
        json={
            "batch": [{"userId": "a", "event": "x" * 20_000, "type": "track", "properties": {"k": "v" * 20_000}}] * 20
        },
    )
    assert response.status_code == 422
    assert len(response.content) < 20 * 2000
    assert all(len(json.dumps(error["input"])) < MAX_ECHOED_INPUT + 10 for error in response.json()["detail"])
