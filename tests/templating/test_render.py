"""Templates: locale fallback, strict variables, and the sandbox."""

from __future__ import annotations

import pytest

from orchestrator.config import PROJECT_ROOT
from orchestrator.templating.locales import locale_chain
from orchestrator.templating.render import RenderError, render_message
from orchestrator.templating.store import TemplateStore


@pytest.fixture(scope="module")
def store() -> TemplateStore:
    return TemplateStore.load(PROJECT_ROOT / "templates", "en")


@pytest.mark.parametrize(
    ("requested", "chain"),
    [
        ("fr-CA", ["fr-CA", "fr", "en"]),
        ("zh-TW", ["zh-TW", "zh-Hant-TW", "zh-Hant", "zh", "en"]),
        ("zh_hant_hk", ["zh-Hant-HK", "zh-Hant", "zh-HK", "zh", "en"]),
        (None, ["en"]),
    ],
)
def test_locale_chain(requested, chain):
    assert locale_chain(requested, "en") == chain


def test_every_launch_template_has_the_four_locales(store):
    assert store.problems == []
    for name in ["welcome-email", "abandoned-cart-sms", "post-purchase-whatsapp", "post-purchase-email"]:
        assert set(store.get(name).variants) == {"en", "fr", "es", "zh-Hant"}, name


def test_missing_variable_is_an_error_not_a_blank(store):
    with pytest.raises(RenderError, match="discount_code"):
        render_message(store, "abandoned-cart-sms", "en", {"customer": {}, "discount_percent": 15})


def test_unknown_template(store):
    with pytest.raises(RenderError, match="does not exist"):
        render_message(store, "nope", "en", {})


def test_sandbox_blocks_escapes(tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "en.txt").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    store = TemplateStore.load(tmp_path)
    with pytest.raises(RenderError, match="unsafe|__class__"):
        render_message(store, "evil", "en", {})


def test_syntax_error_is_reported_with_file_and_line(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "en.txt").write_text("---\nsubject: Hi\n---\nline one\n{% if %}\n")
    store = TemplateStore.load(tmp_path)
    [problem] = store.problems
    assert problem.file.endswith("broken/en.txt") and problem.line == 5


@pytest.mark.parametrize("locale", ["en", "fr", "es", "zh-Hant"])
@pytest.mark.parametrize("name", ["welcome-email", "post-purchase-email", "post-purchase-whatsapp"])
def test_templates_read_well_without_a_first_name(store, name, locale):
    rendered = render_message(store, name, locale, {"customer": {"user_id": "u1"}, "event": {"order_id": "A-1"}})
    greeting = rendered.body.splitlines()[0]
    assert " ," not in greeting and " :" not in greeting and "  " not in greeting and "¡Hola !" not in greeting
    assert "None" not in rendered.body


def test_an_error_is_described_by_its_kind_and_message_and_never_holds_a_nul():
    from orchestrator.templating.render import describe_error

    assert describe_error(TypeError("must be real number, not str")) == "TypeError: must be real number, not str"
    assert describe_error(MemoryError()) == "MemoryError"
    # Messages may quote customers' data; PostgreSQL cannot store a NUL in a reason.
    assert describe_error(ValueError("bad 'X\x00L'")) == "ValueError: bad 'XL'"
