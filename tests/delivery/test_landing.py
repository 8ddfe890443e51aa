"""The landing URL our redirects send people to: UTM parameters and a signed message reference."""

from __future__ import annotations

from types import SimpleNamespace

from orchestrator.config import Settings
from orchestrator.delivery.landing import landing_url, message_reference, referenced_message

SETTINGS = Settings(secret_key="test-secret")
SMS = SimpleNamespace(id=1234, channel="sms", journey_id="post-purchase", template="second-code", step_id="sms-1")


def test_utm_and_the_reference_are_appended_to_the_query_as_it_was():
    url = landing_url(SETTINGS, "https://shop.example/p?x=%C3%A9&y=a+b#top", SMS)
    reference = message_reference(SETTINGS, 1234)
    assert url == (
        "https://shop.example/p?x=%C3%A9&y=a+b&utm_source=orchestrator&utm_medium=sms"
        f"&utm_campaign=post-purchase&utm_content=second-code&orc={reference}#top"
    )
    assert len(reference) == 10 and referenced_message(SETTINGS, reference) == 1234


def test_a_link_that_carries_its_own_utm_keeps_them():
    url = landing_url(SETTINGS, "https://shop.example/?utm_campaign=spring&utm_source=newsletter", SMS)
    assert url.startswith("https://shop.example/?utm_campaign=spring&utm_source=newsletter&utm_medium=sms&utm_content=")
    assert url.count("utm_campaign") == 1 and url.count("utm_source") == 1


def test_the_step_stands_in_for_a_missing_template_and_the_source_is_a_setting():
    email = SimpleNamespace(id=7, channel="email", journey_id="welcome", template=None, step_id="hello")
    settings = Settings(secret_key="test-secret", landing_utm_source="acme")
    assert "utm_source=acme&utm_medium=email&utm_campaign=welcome&utm_content=hello&orc=" in landing_url(
        settings, "https://shop.example/", email
    )


def test_forged_or_foreign_references_name_no_message():
    reference = message_reference(SETTINGS, 1234)
    other = Settings(secret_key="someone-else")
    assert referenced_message(other, reference) is None
    assert referenced_message(SETTINGS, "1" + reference[1:]) is None  # another id, same signature
    assert referenced_message(SETTINGS, message_reference(other, 1234)) is None
    for junk in (None, "", "x", "!" * 12, reference + "x" * 20):
        assert referenced_message(SETTINGS, junk) is None


def test_off_leaves_the_url_untouched():
    settings = Settings(secret_key="test-secret", landing_utm=False)
    assert landing_url(settings, "https://shop.example/?a=1", SMS) == "https://shop.example/?a=1"
