"""No 5xx on hostile input: schemathesis drives every documented operation, valid and invalid
input alike (all its generation modes and phases), through the ASGI app on each database;
any server error fails the run. API keys are not required here (open mode): the access
policy has tests of its own (tests/web/test_access.py)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans

from orchestrator.api.app import create_app
from tests.conftest import _reset, make_settings

# Bounded: about 2,000 cases and under a minute per database on an idle 2-core machine.
EXAMPLES_PER_OPERATION = 20
cases_run: list[str] = []


@pytest.fixture
async def api_schema(database_url):
    await _reset(database_url)
    app = create_app(make_settings(database_url), run_worker=False)  # builds its own runtime in its lifespan
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(modes=list(GenerationMode), max_examples=EXAMPLES_PER_OPERATION)
    cases_run.clear()
    yield schema
    shutdown_lifespans()  # the app's lifespan closes its runtime and database connections
    operations = set(cases_run)
    print(f"schemathesis on {database_url.split(':')[0]}: {len(cases_run)} cases, {len(operations)} operations")
    assert len(operations) >= 30  # the run covered the API, not an empty schema


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.timeout(1200)  # generous for a loaded machine; an idle one needs under a minute
@schema.parametrize()
@settings(
    derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)  # the same cases every run
def test_no_operation_answers_hostile_input_with_a_server_error(case):
    cases_run.append(case.operation.label)
    response = case.call()  # an exception in the app propagates here, as a 500 would
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
    )


# Each class of input that was a 5xx, as a plain test: a 422 (or 4xx) naming the field.


def _locations(response) -> list[list]:
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["detail"]]


async def test_invalid_utf8_bodies_are_a_422_about_the_body(client):
    for path in ("/v1/track", "/v1/identify", "/v1/batch"):
        response = await client.post(
            path, content=b'{"userId": "\xe8\x80", "event": "x"}', headers={"Content-Type": "application/json"}
        )
        assert all(loc[0] == "body" for loc in _locations(response))


async def test_ids_and_offsets_beyond_64_bits_name_the_parameter(client):
    huge = str(2**63)
    assert ["path", "conversation_id"] in _locations(await client.get(f"/v1/conversations/{huge}"))
    assert ["path", "message_id"] in _locations(await client.post(f"/v1/messages/{huge}/retry"))
    assert ["query", "offset"] in _locations(await client.get("/v1/messages", params={"offset": huge}))
    assert ["query", "offset"] in _locations(await client.get("/v1/conversations", params={"offset": huge}))


async def test_nan_and_infinity_in_clock_advance_name_seconds(client):
    for text in ("NaN", "Infinity", "-Infinity"):
        response = await client.post(
            "/v1/admin/clock/advance", content=f'{{"seconds": {text}}}', headers={"Content-Type": "application/json"}
        )
        assert ["body", "seconds"] in _locations(response)


async def test_kpi_dates_in_year_1_or_9999_name_the_parameter(client):
    for day in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        assert ["query", "from"] in _locations(await client.get("/v1/kpis", params={"from": day}))
        assert ["query", "to"] in _locations(await client.get("/v1/journeys/welcome/stats", params={"to": day}))


async def test_nul_characters_name_the_field(client):
    assert ["path"] in _locations(await client.get("/v1/customers/a%00b"))
    assert ["query", "journey"] in _locations(await client.get("/v1/messages", params={"journey": "a\x00b"}))
    assert ["body", "userId"] in _locations(await client.post("/v1/track", json={"userId": "a\x00", "event": "x"}))
    response = await client.post(
        "/v1/batch", json={"batch": [{"type": "track", "userId": "a", "event": "x", "properties": {"note": "a\x00b"}}]}
    )
    assert ["body", "batch", 0, "track", "properties"] in _locations(response)
    assert "note" in response.json()["detail"][0]["msg"]
    await client.post("/v1/identify", json={"userId": "a"})
    response = await client.post(
        "/v1/customers/a/consents",
        json={"channel": "email", "status": "opted_in", "source": "api", "evidence": {"f\x00": 1}},
    )
    assert ["body", "evidence"] in _locations(response)


async def test_nan_in_event_properties_names_the_property(client):
    response = await client.post(
        "/v1/track",
        content=b'{"userId": "a", "event": "x", "properties": {"price": NaN}}',
        headers={"Content-Type": "application/json"},
    )
    assert ["body", "properties"] in _locations(response)
    assert "price" in response.json()["detail"][0]["msg"]
    response = await client.post(
        "/v1/identify",
        content=b'{"userId": "a", "traits": {"score": 1e999}}',
        headers={"Content-Type": "application/json"},
    )
    assert ["body", "traits"] in _locations(response)


async def test_deeply_nested_bodies_are_a_422(client):
    deep = "[" * 5000 + "]" * 5000
    body = f'{{"userId": "a", "event": "x", "properties": {{"deep": {deep}}}}}'
    assert all(loc[0] == "body" for loc in _locations(await client.post("/v1/track", content=body)))
    body = '{"userId": "a", "event": "x", "properties": {"deep": ' + "[" * 40 + "]" * 40 + "}}"
    assert ["body", "properties"] in _locations(await client.post("/v1/track", content=body))
    body = '{"channel": "email", "status": "opted_in", "source": "api", "evidence": ' + "[" * 5000 + "]" * 5000 + "}"
    response = await client.post("/v1/customers/a/consents", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500


async def test_a_time_zone_offset_postgresql_cannot_hold_is_stored_in_utc(client):
    response = await client.post(
        "/v1/track", json={"userId": "a", "event": "x", "timestamp": "2026-12-12T00:24:56-19:37"}
    )
    assert response.status_code == 200, response.text


def test_the_openapi_document_lists_the_error_answers_with_their_shapes(client):
    schema = client._transport.app.openapi()
    message = {"$ref": "#/components/schemas/ErrorMessage"}
    track = schema["paths"]["/v1/track"]["post"]["responses"]
    assert {"400", "401", "403", "413", "415", "422"} <= set(track)
    assert track["413"]["content"]["application/json"]["schema"] == message
    assert schema["components"]["schemas"]["ErrorMessage"]["properties"]["detail"]["type"] == "string"
    for path, method, statuses in (
        ("/v1/customers/{user_id}", "get", {"404"}),
        ("/v1/messages/{message_id}/retry", "post", {"404", "409"}),
        ("/v1/admin/clock/advance", "post", {"409", "413"}),
        ("/v1/journeys/{journey_id}/pause", "post", {"404"}),
        ("/webhooks/twilio/status", "post", {"403", "422"}),
    ):
        assert statuses <= set(schema["paths"][path][method]["responses"]), (path, statuses)


async def test_from_after_to_is_a_field_error_in_the_documented_list_shape(client):
    response = await client.get("/v1/kpis", params={"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"})
    assert ["query", "to"] in _locations(response)


async def test_report_dates_in_year_1_or_9999_name_the_parameter(client):
    for day in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        response = await client.get("/v1/reports/weekly-kpis/figures", params={"from": day})
        assert ["query", "from"] in _locations(response)
