"""Short links without a database: what the body becomes, its length, the segment budget."""

from __future__ import annotations

import re

import pytest

from orchestrator.channels.base import Channel
from orchestrator.config import PROJECT_ROOT, Settings
from orchestrator.delivery.short_links import ShortLink, apply_links, find_link, parse_token, preview_url, short_url
from orchestrator.templating.sms import measure_sms
from orchestrator.templating.store import TemplateStore
from orchestrator.tooling.preview import preview

SETTINGS = Settings(secret_key="test-secret", short_link_base_url="https://g.sh")
BIG_ENROLLMENT = 62**6 - 1  # the largest id PREVIEW_ID_CHARACTERS covers


def shorten(text, channel="sms", marketing=True, enrollment_id=7, settings=SETTINGS):
    return apply_links(
        text, settings, channel=channel, marketing=marketing, enrollment_id=enrollment_id, send_key="journey:7:step"
    )


def test_a_long_url_becomes_a_short_link_of_about_30_characters():
    body, [link] = shorten("Sale! https://shop.example/collections/autumn?utm_source=sms&utm_campaign=x. STOP to end")
    [short] = re.findall(r"https://g\.sh/s/[0-9A-Za-z_-]+", body)
    assert link == ShortLink(0, "https://shop.example/collections/autumn?utm_source=sms&utm_campaign=x")
    assert body == f"Sale! {short}. STOP to end"  # the sentence's full stop stays outside the link
    assert len(short_url(SETTINGS, BIG_ENROLLMENT, "journey:7:step", link)) == len("https://g.sh") + 17 == 29
    assert len(short_url(SETTINGS, BIG_ENROLLMENT, "k", link)) == len(preview_url(SETTINGS))


def test_e_mail_transactional_and_unenrolled_messages_keep_their_urls():
    text = "Reset: https://shop.example/reset?t=abc"
    assert shorten(text, channel="email") == (text, [])
    assert shorten(text, marketing=False) == (text, [])
    assert shorten(text, enrollment_id=None) == (text, [])
    assert shorten(text, settings=Settings(short_links=False)) == (text, [])


def test_a_token_names_its_enrollment_and_verifies_only_with_our_secret():
    link = ShortLink(0, "https://shop.example/a")
    token = short_url(SETTINGS, 123456, "journey:7:step", link).rsplit("/", 1)[1]
    enrollment_id, signature = parse_token(token)

    class Row:
        send_key, template_metadata = "journey:7:step", {"links": [link.as_metadata()]}

    assert enrollment_id == 123456 and find_link(SETTINGS, signature, [Row()])[1] == link
    Row.template_metadata = {"links": [ShortLink(0, "https://evil.example/").as_metadata()]}  # a row edited behind us
    assert find_link(SETTINGS, signature, [Row()]) is None
    other = short_url(Settings(secret_key="other"), 123456, "journey:7:step", link).rsplit("/", 1)[1]
    assert parse_token(other)[1] != signature


@pytest.mark.parametrize("locale", ["en", "fr", "es", "zh-Hant"])
def test_the_second_code_sms_stays_within_its_declared_segment_budget(locale, tmp_path):
    """With a long user id and size, the default (long) base URL and the largest enrollment id."""
    settings = Settings(secret_key="s")  # links on http://127.0.0.1:8000, longer than a short domain
    store = TemplateStore.load(PROJECT_ROOT / "templates")
    budget = store.get("post-purchase-second-code").variants[locale].metadata["max_segments"]
    sample = tmp_path / "vars.yaml"
    sample.write_text(
        f"customer: {{userId: maximilian-alexander, traits: {{locale: {locale}, size: 'EU 44.5'}}}}\n"
        "event: {order_id: A-123456789, product_id: trail-runner-gtx-2025}\n"
        "vars: {second_code: AGAIN10-MAXIMILIAN-ALEXANDER, size: 'EU 44.5', last_purchase: trail-runner-gtx-2025}\n"
    )
    shown = preview(store, "post-purchase-second-code", vars_file=sample, channel=Channel.sms, link_settings=settings)
    assert preview_url(settings) in shown.body and "shop.example" not in shown.body
    assert shown.sms["segments"] <= budget, shown.body
    assert not [w for w in shown.warnings if "max_segments" in w]
    body, [link] = apply_links(
        store.get("post-purchase-second-code")
        .variants[locale]
        .body.render(second_code="AGAIN10-MAXIMILIAN-ALEXANDER", size="EU 44.5", last_purchase="trail-runner-gtx-2025"),
        settings,
        channel="sms",
        marketing=True,
        enrollment_id=BIG_ENROLLMENT,
        send_key="journey:1:second-code-sms",
    )
    assert measure_sms(body).segments == shown.sms["segments"]  # preview measured exactly what is sent
    assert link.app.startswith("shop://second-code?code=AGAIN10-MAXIMILIAN-ALEXANDER&size=EU%2044.5")


@pytest.mark.parametrize("app", ["javascript:alert(1)", "data:text/html,x", "JavaScript://%0aalert(1)", "not a url"])
def test_an_app_target_that_is_not_an_app_or_web_url_fails_the_render(app):
    from orchestrator.templating.app_links import app_link
    from orchestrator.templating.render import RenderError

    with pytest.raises(RenderError, match="app target"):
        shorten("Go " + app_link(app, "https://shop.example/"))
    assert shorten("Go " + app_link("shop://x", "https://shop.example/"))[1] == [
        ShortLink(0, "https://shop.example/", "shop://x")
    ]
