"""`orchestrator preview`: render one template, measure SMS, warn about what costs money."""

from __future__ import annotations

import json

from tests.tooling.conftest import JOURNEYS, TEMPLATES


def preview(cli, *args: str):
    return cli("preview", *args, "--journeys", JOURNEYS, "--templates", TEMPLATES)


def test_traditional_chinese_sms_is_ucs2_and_says_why(cli):
    run = preview(cli, "abandoned-cart-sms", "--locale", "zh-Hant")
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0] == "template abandoned-cart-sms, locale zh-Hant, channel sms"
    assert (
        lines[1] == "vars: discount_percent=15, discount_code='CART15-SAMPLE-CUSTOMER' "
        "(from step discount-sms, " + str(JOURNEYS / "abandoned-cart.yaml") + ":21)"
    )
    assert (
        "  您的購物車還有商品！72 小時內使用優惠碼 CART15-SAMPLE-CUSTOMER 即享 15% 折扣。回覆 STOP 取消訂閱。" in lines
    )
    assert "sms: UCS-2, 1 segment, 68 characters (68 UTF-16 units)" in lines
    [warning] = [line for line in lines if line.startswith("warning:")]
    assert warning.startswith(
        "warning: UCS-2 (70 characters a segment, 67 when split) because of 29 characters "
        "outside GSM-7: '您' (U+60A8), '的' (U+7684)"
    )


def test_json_output(cli):
    run = preview(cli, "abandoned-cart-sms", "--locale", "zh-TW", "--format", "json")
    out = json.loads(run.out)
    assert (out["requested_locale"], out["locale"], out["channel"]) == ("zh-TW", "zh-Hant", "sms")
    assert out["sms"] == {"encoding": "UCS-2", "segments": 1, "characters": 68, "units": 68}
    assert out["variables"] == {"discount_percent": 15, "discount_code": "CART15-SAMPLE-CUSTOMER"}


def test_a_single_accented_letter_makes_a_gsm_message_ucs2(cli, tmp_path):
    (tmp_path / "templates" / "cart").mkdir(parents=True)
    text = "¡Olvidaste tu carrito! Usa el código CART15 para un 15% de descuento durante 72 horas. " * 2
    (tmp_path / "templates" / "cart" / "es.txt").write_text(text + "\n")
    out = json.loads(
        cli(
            "preview",
            "cart",
            "--locale",
            "es",
            "--channel",
            "sms",
            "--templates",
            tmp_path / "templates",
            "--journeys",
            tmp_path,
            "--format",
            "json",
        ).out
    )
    assert out["sms"]["encoding"] == "UCS-2" and out["sms"]["segments"] == 3
    assert out["warnings"] == [
        "UCS-2 (70 characters a segment, 67 when split) because of 1 character outside GSM-7: 'ó' (U+00F3)",
        "3 segments: billed as 3 messages",
    ]


def test_the_spanish_cart_reminder_fits_one_gsm_segment(cli):
    out = json.loads(preview(cli, "abandoned-cart-sms", "--locale", "es", "--format", "json").out)
    assert (out["sms"]["encoding"], out["sms"]["segments"]) == ("GSM-7", 1)


def test_long_sms_warnings(cli, tmp_path):
    (tmp_path / "templates" / "long").mkdir(parents=True)
    (tmp_path / "templates" / "long" / "en.txt").write_text("{{ text }} €\n")
    (tmp_path / "vars.yaml").write_text(f"vars:\n  text: {'a' * 1700}\n")
    run = cli(
        "preview",
        "long",
        "--channel",
        "sms",
        "--vars",
        tmp_path / "vars.yaml",
        "--templates",
        tmp_path / "templates",
        "--journeys",
        tmp_path,
        "--format",
        "json",
    )
    out = json.loads(run.out)
    assert out["sms"] == {"encoding": "GSM-7", "segments": 12, "characters": 1702, "units": 1703}
    assert out["warnings"] == [
        "€ counts as two GSM-7 characters",
        "12 segments: billed as 12 messages",
        "1702 characters: over 1600, which providers refuse",
    ]


def test_email_with_sample_customer_event_and_html(cli, tmp_path):
    (tmp_path / "vars.yaml").write_text(
        "customer:\n  userId: ann\n  traits: {first_name: Ann, email: ann@example.com}\nevent: {order_id: A-1}\n"
    )
    run = preview(cli, "welcome-email", "--vars", tmp_path / "vars.yaml")
    lines = run.out.splitlines()
    assert lines[0] == "template welcome-email, locale en, channel email"
    assert "subject: Welcome aboard, Ann!" in lines and "html:" in lines and "  <p>Hi Ann,</p>" in lines
    run = preview(cli, "post-purchase-email", "--vars", tmp_path / "vars.yaml", "--locale", "fr-CA")
    assert "subject: Votre commande A-1 vous plaît-elle ?" in run.out
    assert "warning: no 'fr-CA' variant: rendered the 'fr' one" in run.out


def test_missing_variables_say_how_to_give_them(cli, tmp_path):
    (tmp_path / "templates" / "code").mkdir(parents=True)
    (tmp_path / "templates" / "code" / "en.txt").write_text("Your code: {{ code }}\n")
    run = cli("preview", "code", "--templates", tmp_path / "templates", "--journeys", tmp_path)
    assert run.code == 1
    assert (
        run.err == "error: template 'code' (en): 'code' is undefined (give sample values with --vars FILE: "
        "customer, event, vars)\n"
    )


def test_unknown_template(cli):
    run = preview(cli, "nope")
    assert run.code == 1 and run.err.startswith("error: template 'nope' cannot be loaded: no folder")


def test_links_count_at_their_short_length_only_where_the_engine_shortens_them():
    from orchestrator.config import Settings
    from orchestrator.delivery.short_links import preview_url
    from orchestrator.templating.sms import measure_sms
    from orchestrator.templating.store import TemplateStore
    from orchestrator.tooling.preview import preview as render_preview

    store = TemplateStore.load(TEMPLATES)
    shortening = Settings(short_link_base_url="https://g.sh")
    shown = render_preview(store, "post-purchase-second-code", journeys_dir=JOURNEYS, link_settings=shortening)
    assert preview_url(shortening) in shown.body and "shop.example" not in shown.body
    assert shown.sms["characters"] == len(shown.body) and shown.sms["segments"] == 1
    # Short links switched off: sent as written, so measured as written (two segments here).
    plain = Settings(short_links=False)
    shown = render_preview(store, "post-purchase-second-code", journeys_dir=JOURNEYS, link_settings=plain)
    assert "https://shop.example/second-code?code=AGAIN10-SAMPLE-CUSTOMER&size=" in shown.body
    assert shown.sms["segments"] == measure_sms(shown.body).segments == 2
    # A transactional send is never shortened either (the NPS thanks carry their review link).
    shown = render_preview(store, "nps-thanks-promoter", journeys_dir=JOURNEYS, link_settings=shortening)
    assert "https://example.com/review" in shown.body
