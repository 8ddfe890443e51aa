"""`orchestrator validate` measures SMS as they will be sent: links at their short length."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.config import Settings, get_settings
from orchestrator.delivery.short_links import preview_url
from orchestrator.templating.sms import measure_sms
from orchestrator.tooling.validate import validate
from tests.tooling.conftest import JOURNEYS, TEMPLATES

JOURNEY = """id: promo
trigger: {event: Signed Up}
steps:
  - id: promo-sms
    send:
      channel: sms
      template: promo
      vars: {code: "SPRING-{{ customer.user_id | upper }}"}
"""
SHORT_RAW_URL = "https://x.co/a"  # 14 characters, shorter than any short link of ours
LONG_RAW_URL = "https://shop.example/collections/spring/" + "p" * 60  # 100 characters


def _files(tmp_path: Path, variants: dict[str, str]) -> tuple[Path, Path]:
    journey = tmp_path / "journeys" / "promo.yaml"
    journey.parent.mkdir(parents=True)
    journey.write_text(JOURNEY)
    folder = tmp_path / "templates" / "promo"
    folder.mkdir(parents=True)
    for locale, text in variants.items():
        (folder / f"{locale}.txt").write_text(text)
    return journey, tmp_path / "templates"


def _variant(budget: int, body: str) -> str:
    return f"---\n# what it may cost\nmax_segments: {budget}\n---\n{body}\n"


def test_a_link_that_fits_raw_but_not_shortened_fails_with_file_line_step_locale_and_numbers(tmp_path):
    settings = Settings(short_link_base_url="https://go.shop.example")  # links of 23 + 17 = 40 characters
    # 120 + 1 + 14 = 135 characters raw: one segment. With the link at 40: 161, two.
    fits_raw = "Code {{ code }} " + "a" * (120 - len("Code SPRING-SAMPLE-CUSTOMER ")) + " " + SHORT_RAW_URL
    # 100 + 1 + 100 = 201 characters raw: two segments. With the link at 40: 141, one.
    fits_short = "b" * 100 + " " + LONG_RAW_URL
    journey, templates = _files(tmp_path, {"en": _variant(1, fits_raw), "fr": _variant(1, fits_short)})
    raw = fits_raw.replace("{{ code }}", "SPRING-SAMPLE-CUSTOMER")
    assert (measure_sms(raw).segments, measure_sms(fits_short).segments) == (1, 2)
    assert len(preview_url(settings)) == 40

    report = validate([journey], journey.parent, templates, link_settings=settings)

    [finding] = [f for f in report.findings if f.severity == "error"]
    assert (finding.file, finding.line, finding.key) == (str(journey), 7, "steps[0].send.template")
    assert finding.message == (
        "step promo-sms, locale en: 2 SMS segments (GSM-7, 161 characters with links at their short length), "
        f"over the budget of 1 (max_segments in {templates / 'promo' / 'en.txt'}:3)"
    )
    assert report.findings == [finding]  # fr: two segments raw, one as sent: fine


def test_the_command_fails_on_it_with_the_configured_base_url(cli, tmp_path):
    link = len(preview_url(get_settings()))  # the configured base: what `orchestrator validate` measures with
    # Raw, 175 - link characters (137 with the default base): one segment. Sent, 161: two.
    body = "c" * (160 - link) + " " + SHORT_RAW_URL
    journey, templates = _files(tmp_path, {"en": _variant(1, body), "fr": _variant(2, body)})
    run = cli("validate", journey, "--templates", templates)
    assert run.code == 1
    assert run.out.splitlines() == [
        f"{journey}:7: error: steps[0].send.template: step promo-sms, locale en: 2 SMS segments (GSM-7, 161 "
        f"characters with links at their short length), over the budget of 1 (max_segments in "
        f"{templates / 'promo' / 'en.txt'}:3)",
        "1 error, 0 warnings (1 journey file, 1 template)",
    ]
    # Raw, two segments; sent, 160 characters: one.
    body = "c" * (159 - link) + " " + LONG_RAW_URL
    journey, templates = _files(tmp_path / "again", {"en": _variant(1, body)})
    assert cli("validate", journey, "--templates", templates).code == 0


def test_a_budget_that_is_not_a_number_is_an_error_on_the_template(cli, tmp_path):
    journey, templates = _files(tmp_path, {"en": "---\nmax_segments: two\n---\nHello {{ code }}\n"})
    run = cli("validate", journey, "--templates", templates, "--format", "json")
    assert run.code == 1
    assert [(f["file"], f["line"], f["key"], f["message"]) for f in json.loads(run.out)] == [
        (str(templates / "promo" / "en.txt"), 2, "max_segments", "must be a whole number of segments, got 'two'")
    ]


def test_a_budget_the_sample_data_cannot_check_is_a_warning(cli, tmp_path):
    journey, templates = _files(tmp_path, {"en": _variant(1, "Hello {{ customer.first_name }}, {{ code }}")})
    run = cli("validate", journey, "--templates", templates, "--format", "json")
    [finding] = json.loads(run.out)
    assert (finding["severity"], finding["line"]) == ("warning", 7)
    assert finding["message"].startswith("step promo-sms, locale en: max_segments not checked, no render with sample")


def test_the_launch_sms_fit_their_budgets_even_on_a_long_base_url():
    """The launch second-code SMS declares a budget in every locale; validate holds it there."""
    settings = Settings(short_link_base_url="https://orchestrator.shop.example")  # 33 + 17 = 50 characters
    report = validate([], JOURNEYS, TEMPLATES, link_settings=settings)
    assert report.findings == []
    # 47 + 17 = 64 characters a link: only the Spanish text (133 characters with a 38-character
    # link, 159 with this one) still fits its one segment.
    longer = Settings(short_link_base_url="https://orchestrator.marketing.shop.example.com")
    report = validate([], JOURNEYS, TEMPLATES, link_settings=longer)
    assert [(f.severity, f.line, f.key, f.message.split(":")[0]) for f in report.findings] == [
        ("error", 32, "steps[3].send.template", f"step second-code-sms, locale {locale}")
        for locale in ("en", "fr", "zh-Hant")
    ]
