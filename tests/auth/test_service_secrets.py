"""Secrets the service generates for itself: random, kept in the database, shared by every
process, and a published secret refused next to real provider credentials."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.auth.service_secrets import GENERATORS, InsecureConfiguration, public_key_of, stored_secrets
from orchestrator.clock import SimulatedClock
from orchestrator.config import PUBLISHED_SECRET_KEYS
from orchestrator.delivery.tracking import UNSUBSCRIBE, LinkClaims, sign, verify
from orchestrator.startup import build_runtime
from orchestrator.storage.database import create_engine, session_factory
from orchestrator.storage.migrate import upgrade_to_head
from tests.conftest import START, _reset, make_settings
from tests.webhooks.twilio_signing import inbound_form, post_signed

# What main shipped as defaults, in the source for anyone to read.
OLD_DEVELOPMENT_SECRET_KEY = "development-only-secret-key-change-me"
OLD_FAKE_TWILIO_AUTH_TOKEN = "fake-twilio-auth-token"


async def test_every_secret_is_generated_once_and_shared_by_every_process(database_url):
    await _reset(database_url)
    first = await build_runtime(make_settings(database_url), clock=SimulatedClock(START))
    second = await build_runtime(make_settings(database_url), clock=SimulatedClock(START))  # another process
    try:
        for name in GENERATORS:
            value = getattr(first.settings, name)
            assert value and value == getattr(second.settings, name), name
        assert first.settings.secret_key not in PUBLISHED_SECRET_KEYS | {OLD_DEVELOPMENT_SECRET_KEY}
        assert len(first.settings.secret_key) >= 32
        assert first.settings.fake_twilio_auth_token != OLD_FAKE_TWILIO_AUTH_TOKEN
        public_key_of(first.settings.fake_sendgrid_signing_key)  # a usable ECDSA key
    finally:
        await first.aclose()
        await second.aclose()


async def test_processes_starting_together_agree_on_one_value(database_url):
    await _reset(database_url)
    engine = create_engine(database_url)
    try:
        await upgrade_to_head(engine)
        sessions = session_factory(engine)
        results = await asyncio.gather(*(stored_secrets(sessions) for _ in range(4)))
        assert all(result == results[0] for result in results) and set(results[0]) == set(GENERATORS)
    finally:
        await engine.dispose()


async def test_a_configured_secret_wins_over_the_stored_one(database_url):
    await _reset(database_url)
    runtime = await build_runtime(
        make_settings(database_url, secret_key="mine-" + "x" * 40), clock=SimulatedClock(START)
    )
    try:
        assert runtime.settings.secret_key == "mine-" + "x" * 40
    finally:
        await runtime.aclose()


async def test_links_signed_with_the_old_public_default_are_refused(runtime):
    forged = sign(
        make_settings("sqlite://", secret_key=OLD_DEVELOPMENT_SECRET_KEY),
        LinkClaims(purpose=UNSUBSCRIBE, customer_id=1, channel="email"),
    )
    assert verify(runtime.settings, forged, UNSUBSCRIBE) is None


async def test_a_stop_signed_with_the_old_public_fake_token_is_refused(client, runtime):
    form = inbound_form("SM-forged", "+14155550100", "STOP")
    response = await post_signed(client, runtime, "/webhooks/twilio/inbound", form, token=OLD_FAKE_TWILIO_AUTH_TOKEN)
    assert response.status_code == 403


@pytest.mark.parametrize("secret_key", [OLD_DEVELOPMENT_SECRET_KEY, "change-me", "short-but-private"])
@pytest.mark.parametrize(
    "credentials",
    [dict(twilio_account_sid="AC" + "1" * 32, twilio_auth_token="t" * 32), dict(sendgrid_api_key="SG.real-key")],
)
async def test_real_providers_with_a_published_or_short_secret_refuse_to_start(tmp_path, secret_key, credentials):
    settings = make_settings(f"sqlite:///{tmp_path / 'x.db'}", secret_key=secret_key, **credentials)
    with pytest.raises(InsecureConfiguration, match="ORCHESTRATOR_SECRET_KEY"):
        await build_runtime(settings)


@pytest.mark.parametrize("secret", ["change-me", "short-but-private-and-31-chars!"])
@pytest.mark.parametrize("name", ["site_identity_secret", "site_identity_previous_secret"])
async def test_a_published_or_short_site_identity_secret_refuses_to_start(tmp_path, secret, name):
    """Pages show a userId and its hash: enough to find a weak secret offline. No real providers needed."""
    strong = {"site_identity_secret": "s" * 32} if name != "site_identity_secret" else {}
    settings = make_settings(f"sqlite:///{tmp_path / 'x.db'}", **strong, **{name: secret})
    with pytest.raises(InsecureConfiguration, match=f"ORCHESTRATOR_{name.upper()} is a published or short"):
        await build_runtime(settings)


def test_an_empty_site_identity_secret_is_unset():
    from orchestrator.config import Settings

    assert Settings(site_identity_secret="").site_identity_secret is None  # `VAR=`, as compose passes an unset one
    assert Settings(site_identity_previous_secret="").site_identity_secrets == ()


async def test_real_providers_start_with_a_generated_secret(tmp_path):
    settings = make_settings(
        f"sqlite:///{tmp_path / 'x.db'}", sendgrid_api_key="SG.real-key", email_provider="sendgrid"
    )
    runtime = await build_runtime(settings)
    try:
        assert len(runtime.settings.secret_key) >= 32
    finally:
        await runtime.aclose()


def test_settings_that_skipped_the_database_sign_nothing(tmp_path):
    """No fallback constant: without a configured or stored secret there is nothing to sign with."""
    with pytest.raises(ValueError, match="secret_key"):
        sign(make_settings(f"sqlite:///{tmp_path / 'x.db'}"), LinkClaims(purpose=UNSUBSCRIBE, customer_id=1))
