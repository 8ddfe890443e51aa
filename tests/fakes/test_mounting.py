"""The fakes mounted in the service: their `/_admin` routes follow the API-key policy of the
`/v1` admin routes, they use the service's own credentials, and real providers mount none."""

from __future__ import annotations

import httpx
import pytest
from starlette.routing import Mount

from orchestrator.api.app import create_app
from orchestrator.auth.keys import create_key
from orchestrator.clock import SimulatedClock
from orchestrator.config import Settings
from orchestrator.startup import build_runtime
from tests.conftest import START, _reset, make_settings

ADMIN_ROUTES = ["/_fake/twilio/_admin/messages", "/_fake/sendgrid/_admin/messages"]


@pytest.fixture
async def service(database_url, request):
    """Our app with both fakes mounted, as `orchestrator serve` runs it without credentials."""
    await _reset(database_url)
    overrides = getattr(request, "param", {})
    settings = make_settings(database_url, sms_provider="twilio", email_provider="sendgrid", **overrides)
    runtime = await build_runtime(settings, clock=SimulatedClock(START))
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http, runtime
    await runtime.aclose()


async def make_key(runtime, role: str) -> dict[str, str]:
    async with runtime.sessions() as session, session.begin():
        key = (await create_key(session, role, role, runtime.clock.now())).key
    return {"Authorization": f"Bearer {key}"}


async def test_admin_routes_are_open_only_while_the_api_is_open(service):
    http, runtime = service
    for path in ADMIN_ROUTES:
        assert (await http.get(path)).status_code == 200  # open mode: no key exists yet
    admin, ops = await make_key(runtime, "admin"), await make_key(runtime, "ops")
    for path in ADMIN_ROUTES:
        assert (await http.get(path)).status_code == 401
        assert (await http.get(path, headers={"Authorization": "Bearer orch_forged"})).status_code == 401
        assert (await http.get(path, headers=ops)).status_code == 200  # readers read, as on /v1/admin
        assert (await http.delete(path, headers=ops)).status_code == 403  # only admin changes things
        assert (await http.delete(path, headers=admin)).status_code == 204
    assert (await http.post("/_fake/twilio/_admin/fail-next", json={"count": 1})).status_code == 401


@pytest.mark.parametrize("service", [{"require_api_keys": True}], indirect=True)
async def test_required_api_keys_close_the_admin_routes_before_any_key_exists(service):
    http, runtime = service
    for path in ADMIN_ROUTES:
        assert (await http.get(path)).status_code == 401
    admin = await make_key(runtime, "admin")
    for path in ADMIN_ROUTES:
        assert (await http.get(path, headers=admin)).status_code == 200


@pytest.mark.parametrize("service", [{"require_api_keys": True}], indirect=True)
async def test_the_fake_apis_keep_their_own_provider_auth(service):
    """Only `/_admin` is ours to guard; the adapters reach the fake Twilio with its token."""
    http, runtime = service
    sid = "AC" + "0" * 32
    url = f"/_fake/twilio/2010-04-01/Accounts/{sid}/Messages.json"
    form = {"To": "+14155550100", "From": "+15005550006", "Body": "hi"}
    assert (await http.post(url, data=form, auth=(sid, "fake-twilio-auth-token"))).status_code == 401
    assert (await http.post(url, data=form, auth=(sid, runtime.settings.fake_twilio_auth_token))).status_code == 201


@pytest.mark.parametrize(
    "credentials",
    [dict(twilio_account_sid="AC" + "1" * 32, twilio_auth_token="t" * 32), dict(sendgrid_api_key="SG.real-key")],
)
def test_real_providers_mount_no_fake_at_all(credentials):
    app = create_app(Settings(**credentials), run_worker=False)
    mounted = [route.path for route in app.routes if isinstance(route, Mount)]
    assert not [path for path in mounted if path.startswith("/_fake")]


def test_without_credentials_both_fakes_are_mounted():
    app = create_app(Settings(), run_worker=False)
    assert {route.path for route in app.routes if isinstance(route, Mount)} >= {"/_fake/twilio", "/_fake/sendgrid"}
