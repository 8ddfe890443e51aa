"""API keys: open mode, 401 and 403, roles per route group, revocation, hashed storage, CLI."""

from __future__ import annotations

import asyncio
import hashlib
import logging

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute

from orchestrator.auth.keys import ROLES, create_key, revoke_key
from orchestrator.storage.auth_models import ApiKey
from orchestrator.web.access import OPEN_API_WARNING, AccessPolicy
from tests.webhooks.twilio_signing import inbound_form

TRACK = {"userId": "ann", "event": "Product Viewed"}


async def make_key(runtime, role: str, name: str | None = None) -> str:
    async with runtime.sessions() as session, session.begin():
        return (await create_key(session, name or role, role, runtime.clock.now())).key


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def app_of(client):
    return client._transport.app


async def test_open_mode_serves_without_keys_and_warns_at_start_up(client, runtime, caplog):
    assert (await client.post("/v1/track", json=TRACK)).status_code == 200
    assert (await client.get("/v1/messages")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200
    app = app_of(client)
    with caplog.at_level(logging.WARNING, logger="orchestrator.auth"):
        async with app.router.lifespan_context(app):
            pass
    assert OPEN_API_WARNING in caplog.messages


async def test_no_warning_once_a_key_exists(client, runtime, caplog):
    await make_key(runtime, "admin")
    app = app_of(client)
    with caplog.at_level(logging.WARNING, logger="orchestrator.auth"):
        async with app.router.lifespan_context(app):
            pass
    assert OPEN_API_WARNING not in caplog.messages


async def test_a_key_created_while_running_closes_the_api(client, runtime):
    assert (await client.get("/v1/messages")).status_code == 200
    key = await make_key(runtime, "ops")  # as `orchestrator keys create` would, from another process
    refused = await client.get("/v1/messages")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/v1/messages", headers=bearer(key))).status_code == 200
    assert (await client.get("/v1/messages", headers={"X-API-Key": key})).status_code == 200


async def test_missing_or_wrong_keys_get_401(client, runtime):
    key = await make_key(runtime, "admin")
    for headers in (
        {},
        bearer("orch_wrong"),
        {"X-API-Key": "orch_wrong"},
        {"Authorization": f"Basic {key}"},
        bearer(key + "x"),
    ):
        response = await client.get("/v1/messages", headers=headers)
        assert response.status_code == 401, headers
    assert (await client.post("/v1/track", json=TRACK)).status_code == 401


async def test_require_api_keys_closes_the_api_before_any_key_exists(client, runtime):
    runtime.settings = runtime.settings.model_copy(update={"require_api_keys": True})
    assert (await client.get("/v1/messages")).status_code == 401
    assert (await client.post("/v1/track", json=TRACK)).status_code == 401


async def test_revoked_key_is_refused_and_revoking_the_last_key_keeps_the_api_closed(client, runtime):
    key = await make_key(runtime, "ops", "ann")
    assert (await client.get("/v1/messages", headers=bearer(key))).status_code == 200
    async with runtime.sessions() as session, session.begin():
        await revoke_key(session, "ann", runtime.clock.now())
    assert (await client.get("/v1/messages", headers=bearer(key))).status_code == 401
    assert (await client.get("/v1/messages")).status_code == 401  # not open again


CACHE_SECONDS = 0.3


def remember_keys_for(runtime, seconds: float) -> None:
    """Before the first request: each app makes its memory of key lookups from the settings."""
    runtime.settings = runtime.settings.model_copy(update={"api_key_cache_seconds": seconds})


async def test_a_valid_key_is_remembered_for_the_cache_time_then_its_revocation_counts(client, runtime):
    remember_keys_for(runtime, CACHE_SECONDS)
    key = await make_key(runtime, "ops", "ann")
    assert (await client.get("/v1/messages", headers=bearer(key))).status_code == 200
    async with runtime.sessions() as session, session.begin():
        await revoke_key(session, "ann", runtime.clock.now())
    assert (await client.get("/v1/messages", headers=bearer(key))).status_code == 200  # remembered
    await asyncio.sleep(CACHE_SECONDS + 0.1)
    assert (await client.get("/v1/messages", headers=bearer(key))).status_code == 401


async def test_open_mode_is_remembered_for_the_cache_time_then_a_new_key_closes_the_api(client, runtime):
    remember_keys_for(runtime, CACHE_SECONDS)
    assert (await client.get("/v1/messages")).status_code == 200
    key = await make_key(runtime, "ops")
    assert (await client.get("/v1/messages")).status_code == 200  # still open, as remembered
    await asyncio.sleep(CACHE_SECONDS + 0.1)
    assert (await client.get("/v1/messages")).status_code == 401
    assert (await client.get("/v1/messages", headers=bearer(key))).status_code == 200


async def test_a_remembered_key_keeps_its_role(client, runtime):
    remember_keys_for(runtime, 60)
    key = await make_key(runtime, "ingest")
    assert (await client.post("/v1/track", json=TRACK, headers=bearer(key))).status_code == 200
    for _ in range(2):  # the second answer comes from memory
        assert (await client.get("/v1/messages", headers=bearer(key))).status_code == 403


# (method, path, body, roles allowed). Anything but 401/403 means the key got through.
ROUTES = [
    ("POST", "/v1/track", TRACK, {"admin", "ingest"}),
    ("POST", "/v1/batch", {"batch": [{"type": "identify", "userId": "bo", "traits": {}}]}, {"admin", "ingest"}),
    ("GET", "/v1/messages", None, {"admin", "marketer", "ops"}),
    ("GET", "/v1/customers/ann/timeline", None, {"admin", "marketer", "ops"}),
    ("GET", "/v1/conversations", None, {"admin", "marketer", "ops"}),
    ("POST", "/v1/messages/999999/retry", None, {"admin"}),
    ("POST", "/v1/customers/ann/consents", {"channel": "sms", "status": "opted_in", "source": "api"}, {"admin"}),
    ("GET", "/v1/admin/clock", None, {"admin", "marketer", "ops"}),
    ("POST", "/v1/admin/clock/advance", {"seconds": 1}, {"admin"}),
    ("GET", "/v1/journeys", None, {"admin", "marketer", "ops"}),
    ("POST", "/v1/journeys/no-such-journey/pause", None, {"admin", "marketer"}),
    ("GET", "/v1/kpis", None, {"admin", "marketer", "ops"}),
    ("GET", "/metrics", None, {"admin", "ops"}),
]


async def test_each_role_reaches_exactly_its_routes(client, runtime):
    keys = {role: await make_key(runtime, role) for role in ROLES}
    for method, path, body, allowed in ROUTES:
        for role, key in keys.items():
            response = await client.request(method, path, json=body, headers=bearer(key))
            if role in allowed:
                assert response.status_code not in (401, 403), (role, method, path, response.text)
            else:
                assert response.status_code == 403, (role, method, path, response.status_code)
                assert f"role '{role}'" in response.json()["detail"]


async def test_webhooks_and_health_need_no_key(client, runtime):
    await make_key(runtime, "admin")
    assert (await client.get("/health/live")).status_code == 200
    assert (await client.get("/health/ready")).status_code == 200
    # Refused by the missing Twilio signature (403), not by the missing key (401).
    unsigned = await client.post("/webhooks/twilio/inbound", data=inbound_form("SM1", "+14155550100", "hi"))
    assert unsigned.status_code == 403 and "Signature" in unsigned.text


async def test_every_v1_route_and_metrics_has_an_access_policy(client):
    """A router added without `dependencies=requires(...)` would be open to anyone: fail here."""
    unguarded = []
    for route in app_of(client).routes:
        if (
            isinstance(route, APIRoute)
            and (route.path.startswith("/v1") or route.path == "/metrics")
            and not any(isinstance(dependency.dependency, AccessPolicy) for dependency in route.dependencies)
        ):
            unguarded.append(f"{sorted(route.methods)} {route.path}")
    assert unguarded == []


async def test_keys_are_stored_hashed(runtime):
    key = await make_key(runtime, "marketer", "mia")
    async with runtime.engine.connect() as connection:
        rows = (await connection.execute(sa.select(ApiKey.__table__))).all()
    [row] = rows
    assert key not in " ".join(str(value) for value in row)
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(row.key_prefix) and len(row.key_prefix) < len(key) / 3


def test_keys_command_line(database_url, monkeypatch, capsys):
    from orchestrator.cli import main
    from orchestrator.config import get_settings
    from tests.conftest import _reset

    asyncio.run(_reset(database_url))
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        assert main(["keys", "create", "--role", "ops", "--name", "grafana"]) == 0
        created = capsys.readouterr()
        key = created.out.strip()
        assert key.startswith("orch_") and "not shown again" in created.err
        assert main(["keys", "create", "--role", "ops", "--name", "grafana"]) == 1  # one active key per name
        assert "exists" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            main(["keys", "create", "--role", "superuser", "--name", "x"])
        capsys.readouterr()

        assert main(["keys", "list"]) == 0
        listing = capsys.readouterr().out
        assert "grafana" in listing and "ops" in listing and key[:12] in listing and key not in listing

        assert main(["keys", "revoke", "grafana"]) == 0
        assert main(["keys", "revoke", "grafana"]) == 1
        capsys.readouterr()
        assert main(["keys", "list"]) == 0
        assert "every key is revoked" in capsys.readouterr().err
        assert main(["keys", "list", "--all"]) == 0
        assert "grafana" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()


def test_openapi_offers_every_way_of_sending_a_key_on_the_routes_that_need_one(client):
    schema = app_of(client).openapi()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey", "basic"}
    assert schema["paths"]["/v1/track"]["post"]["security"] == [{"bearer": []}, {"apiKey": []}, {"basic": []}]
    assert "security" not in schema["paths"]["/health/live"]["get"]  # probes carry no key
