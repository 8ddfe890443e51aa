"""Signed links: they verify, and nothing else does (tampering, wrong purpose, wrong key)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from orchestrator.config import Settings
from orchestrator.delivery.tracking import (
    CLICK,
    OPEN,
    UNSUBSCRIBE,
    LinkClaims,
    click_url,
    email_links,
    instrument_html,
    open_pixel_url,
    sign,
    unsubscribe_url,
    verify,
)

SETTINGS = Settings(secret_key="test-secret", public_base_url="https://mail.shop.example", email_provider="smtp")


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1].removesuffix(".gif")


def test_each_link_verifies_for_its_own_purpose_only():
    opened = token_of(open_pixel_url(SETTINGS, 41))
    clicked = token_of(click_url(SETTINGS, 41, "https://shop.example/cart?id=7&utm=mail"))
    unsubscribed = token_of(unsubscribe_url(SETTINGS, customer_id=9, message_id=41))
    assert verify(SETTINGS, opened, OPEN) == LinkClaims(OPEN, message_id=41)
    assert verify(SETTINGS, clicked, CLICK).url == "https://shop.example/cart?id=7&utm=mail"
    assert verify(SETTINGS, unsubscribed, UNSUBSCRIBE) == LinkClaims(
        UNSUBSCRIBE, message_id=41, customer_id=9, channel="email"
    )
    # An open token is no click token: otherwise any pixel URL would become a redirect.
    assert verify(SETTINGS, opened, CLICK) is None
    assert verify(SETTINGS, opened, UNSUBSCRIBE) is None


def test_urls_live_under_the_public_base_url():
    assert open_pixel_url(SETTINGS, 1).startswith("https://mail.shop.example/t/o/")
    assert open_pixel_url(SETTINGS, 1).endswith(".gif")
    assert click_url(SETTINGS, 1, "https://x.example").startswith("https://mail.shop.example/t/c/")
    assert unsubscribe_url(SETTINGS, customer_id=1).startswith("https://mail.shop.example/unsubscribe/")


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: _flip(t, 3),  # the claims
        lambda t: _flip(t, len(t) - 3),  # the signature
        lambda t: t.split(".")[0],  # no signature
        lambda t: t + ".x",
        lambda t: "",
        lambda t: "!!!.???",
        lambda t: "A" * 10_000,
    ],
)
def test_tampered_tokens_do_not_verify(tamper):
    token = token_of(click_url(SETTINGS, 41, "https://shop.example/"))
    assert verify(SETTINGS, tamper(token), CLICK) is None


def test_a_forged_redirect_target_does_not_verify():
    genuine = token_of(click_url(SETTINGS, 41, "https://shop.example/"))
    payload, signature = genuine.split(".")
    forged_payload = token_of(click_url(SETTINGS, 41, "https://evil.example/")).split(".")[0]
    assert verify(SETTINGS, f"{forged_payload}.{signature}", CLICK) is None


def test_another_secret_key_invalidates_every_link():
    token = sign(SETTINGS, LinkClaims(UNSUBSCRIBE, customer_id=3, channel="email"))
    assert verify(Settings(secret_key="other"), token, UNSUBSCRIBE) is None


def test_instrument_html_routes_links_through_redirects_and_adds_a_pixel():
    html = (
        '<html><body><p><a class="cta" href="https://shop.example/cart?a=1&amp;b=2">Cart</a> '
        "<a href='http://shop.example/plain'>Plain</a> <a href=\"mailto:help@shop.example\">Help</a> "
        '<a href="https://mail.shop.example/unsubscribe/abc">Unsubscribe</a></p></BODY></html>'
    )
    out = instrument_html(html, SETTINGS, 77)
    hrefs = re.findall(r"""href=(["'])(.*?)\1""", out)
    targets = [verify(SETTINGS, token_of(url), CLICK) for _, url in hrefs[:2]]
    # The browser reads `&amp;` as `&`: the redirect must lead where the original link did.
    assert [t.url for t in targets] == ["https://shop.example/cart?a=1&b=2", "http://shop.example/plain"]
    assert all(t.message_id == 77 for t in targets)
    assert hrefs[2][1] == "mailto:help@shop.example"
    assert hrefs[3][1] == "https://mail.shop.example/unsubscribe/abc"  # our own links stay as they are
    pixel = re.search(r'<img src="([^"]+)" width="1" height="1"', out).group(1)
    assert verify(SETTINGS, token_of(pixel), OPEN).message_id == 77
    assert out.index("<img") < out.index("</BODY>")


def test_instrument_html_without_a_body_tag_appends_the_pixel():
    assert instrument_html("<p>Hi</p>", SETTINGS, 5).startswith("<p>Hi</p><img ")


def _row(**values):
    defaults = dict(
        id=12, customer_id=4, channel="email", marketing=True, html="<p><a href='https://x.example'>x</a></p>"
    )
    return SimpleNamespace(**{**defaults, **values})


def test_email_links_for_marketing_over_smtp_track_and_unsubscribe():
    unsubscribe, html = email_links(SETTINGS, _row())
    assert verify(SETTINGS, token_of(unsubscribe), UNSUBSCRIBE) == LinkClaims(UNSUBSCRIBE, 12, 4, "email")
    assert "/t/c/" in html and "/t/o/" in html


def test_email_links_leave_transactional_mail_and_other_providers_alone():
    assert email_links(SETTINGS, _row(marketing=False)) == (None, _row().html)
    unsubscribe, html = email_links(SETTINGS.model_copy(update={"email_provider": "sendgrid"}), _row())
    assert unsubscribe and html == _row().html  # SendGrid tracks opens and clicks itself
    unsubscribe, html = email_links(SETTINGS.model_copy(update={"email_tracking": False}), _row())
    assert unsubscribe and html == _row().html
