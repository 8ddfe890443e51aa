"""`orchestrator simulate`: each launch journey path, and the engine's rules, in memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tooling.conftest import JOURNEYS, TEMPLATES


@pytest.fixture
def simulate(cli, tmp_path):
    def run(journey: str, customer: dict, events: list, *extra: str, expect_code: int = 0) -> dict | str:
        (tmp_path / "customer.json").write_text(json.dumps(customer))
        (tmp_path / "events.json").write_text(json.dumps(events))
        human = "--human" in extra
        args = [a for a in extra if a != "--human"]
        result = cli(
            "simulate",
            journey,
            "--customer",
            tmp_path / "customer.json",
            "--events",
            tmp_path / "events.json",
            "--journeys",
            JOURNEYS,
            "--templates",
            TEMPLATES,
            *([] if human else ["--format", "json"]),
            *args,
        )
        assert result.code == expect_code, result.err
        return result.out if human else json.loads(result.out)

    return run


def kinds(output: dict) -> list[str]:
    return [entry["kind"] for entry in output["timeline"]]


# --- welcome -------------------------------------------------------------------------------


def test_welcome_in_french(simulate):
    out = simulate(
        "welcome",
        {"userId": "amelie", "traits": {"email": "amelie@example.fr", "locale": "fr-FR", "first_name": "Amélie"}},
        [{"at": "0s", "event": "Signed Up"}],
    )
    assert kinds(out) == ["event", "enter", "send", "end"]
    [message] = out["messages"]
    assert (message["channel"], message["to"], message["locale"], message["offset"]) == (
        "email",
        "amelie@example.fr",
        "fr",
        "+0s",
    )
    assert message["subject"] == "Bienvenue, Amélie !" and "Merci pour votre inscription" in message["body"]
    assert out["outcome"] == {"status": "completed", "exit_reason": None, "converted": False, "enrollments": 1}


def test_welcome_falls_back_to_the_default_locale_and_locale_overrides(simulate):
    customer = {"userId": "amelie", "traits": {"email": "amelie@example.fr", "locale": "fr"}}
    out = simulate("welcome", customer, [{"at": "0s", "event": "Signed Up"}], "--locale", "de-DE")
    [message] = out["messages"]
    assert (out["locale"], message["locale"], message["subject"]) == ("de-DE", "en", "Welcome aboard, friend!")
    assert message["html"].startswith("<p>Hi there,</p>")


def test_welcome_without_an_address_is_a_skip_with_its_reason(simulate):
    out = simulate("welcome", {"userId": "ghost"}, [{"at": "0s", "event": "Signed Up"}])
    assert kinds(out) == ["event", "enter", "skip", "end"]
    assert out["timeline"][2]["detail"] == "email to (no address): no email address"


# --- abandoned cart ------------------------------------------------------------------------

SAM = {"userId": "sam", "traits": {"phone": "+14155550100", "sms_opt_in": True}}


def test_abandoned_cart_texts_after_an_hour(simulate):
    out = simulate("abandoned-cart", SAM, [{"at": "0s", "event": "Cart Abandoned", "properties": {"cart_value": 80}}])
    assert kinds(out) == ["event", "enter", "wait", "if", "send", "end"]
    wait, branch = out["timeline"][2], out["timeline"][3]
    assert wait["detail"] == "1h, resumes at 2026-03-02 18:00 (+1h)"
    assert branch["detail"] == "has_event('Order Completed') → else (has_event('Order Completed') = false)"
    [message] = out["messages"]
    assert (message["offset"], message["channel"], message["to"]) == ("+1h", "sms", "+14155550100")
    assert (message["encoding"], message["segments"]) == ("GSM-7", 1)
    assert message["body"].startswith("You left something in your cart! Use code CART15-SAM for 15% off")


def test_abandoned_cart_human_timeline(simulate):
    out = simulate("abandoned-cart", SAM, [{"at": "0s", "event": "Cart Abandoned"}], "--human")
    lines = out.splitlines()
    assert "     +1h  2026-03-02 18:00  send      [discount-sms] sms to +14155550100 (en; GSM-7, 1 segment)" in lines
    assert any(line.strip().startswith("| You left something in your cart!") for line in lines)
    assert lines[-1] == "outcome: completed; 1 message sent, 0 not sent; not converted"


def test_abandoned_cart_exits_because_they_ordered(simulate):
    out = simulate(
        "abandoned-cart",
        SAM,
        [
            {"at": "0s", "event": "Cart Abandoned"},
            {"at": "20m", "event": "Order Completed", "properties": {"revenue": 80}},
        ],
    )
    assert kinds(out) == ["event", "enter", "wait", "event", "convert", "if", "exit", "end"]
    assert out["timeline"][5]["detail"].endswith("→ then (has_event('Order Completed') = true)")
    assert out["messages"] == []
    assert out["outcome"] == {
        "status": "exited",
        "exit_reason": "ordered before the reminder",
        "converted": True,
        "enrollments": 1,
    }


def test_abandoned_cart_skipped_without_sms_opt_in(simulate):
    out = simulate(
        "abandoned-cart",
        {"userId": "nina", "traits": {"phone": "+14155550102"}},
        [{"at": "0s", "event": "Cart Abandoned"}],
    )
    [message] = out["messages"]
    assert (message["status"], message["reason"], message["offset"]) == ("skipped", "no sms opt-in", "+1h")


def test_abandoned_cart_in_traditional_chinese_is_ucs2(simulate):
    out = simulate("abandoned-cart", SAM, [{"at": "0s", "event": "Cart Abandoned"}], "--locale", "zh-TW")
    [message] = out["messages"]
    assert (message["locale"], message["encoding"], message["segments"]) == ("zh-Hant", "UCS-2", 1)
    assert "CART15-SAM" in message["body"]


def test_abandoned_cart_reentry_waits_seven_days(simulate):
    out = simulate(
        "abandoned-cart",
        SAM,
        [
            {"at": "0s", "event": "Cart Abandoned"},
            {"at": "1d", "event": "Cart Abandoned"},
            {"at": "7d", "event": "Cart Abandoned"},
        ],
    )
    [refused] = [e for e in out["timeline"] if e["kind"] == "no-entry"]
    assert refused["offset"] == "+1d" and refused["detail"].startswith("reentry: after 7d")
    assert [m["offset"] for m in out["messages"]] == ["+1h", "+7d1h"]


# --- post-purchase -------------------------------------------------------------------------


def test_post_purchase_whatsapp_for_the_opted_in(simulate):
    out = simulate(
        "post-purchase",
        {
            "userId": "lola",
            "traits": {"phone": "+34600000001", "whatsapp_opt_in": True, "locale": "es", "first_name": "Lola"},
        },
        [{"at": "0s", "event": "Order Completed", "properties": {"order_id": "B-7"}}],
    )
    assert out["timeline"][3]["detail"] == "consented('whatsapp') → then (consented('whatsapp') = true)"
    # The second code (issue 19) goes by SMS four days later; Lola opted in to WhatsApp only.
    message, second_code = out["messages"]
    assert (message["channel"], message["offset"], message["step"]) == ("whatsapp", "+3d", "whatsapp-follow-up")
    assert message["body"].startswith("¡Hola Lola! Tu pedido B-7")
    assert (second_code["channel"], second_code["step"], second_code["status"]) == ("sms", "second-code-sms", "skipped")


def test_post_purchase_email_otherwise(simulate):
    out = simulate(
        "post-purchase",
        {"userId": "max", "traits": {"email": "max@example.com"}},
        [{"at": "2026-03-10T12:00:00Z", "event": "Order Completed", "properties": {"order_id": "C-9"}}],
        "--start",
        "2026-03-10T12:00:00Z",
    )
    message, second_code = out["messages"]  # the SMS second code (issue 19): no phone, so skipped
    assert (message["channel"], message["subject"], message["at"]) == (
        "email",
        "How was your order C-9?",
        "2026-03-13T12:00:00+00:00",
    )
    assert (second_code["channel"], second_code["status"]) == ("sms", "skipped")


# --- the engine's rules on a journey of our own --------------------------------------------

FLOW = """\
id: flow
trigger:
  event: Asked
  condition: "event.total > 10"
exit_on: [Unsubscribed]
goal: {event: Paid, within: 2d}
steps:
  - id: ask
    wait_for:
      event: Answered
      timeout: 1d
      on_event:
        - id: thanks
          send: {channel: email, template: welcome-email}
      on_timeout:
        - id: vip
          if: "customer.vip"
          then:
            - id: call
              send: {channel: sms, template: abandoned-cart-sms, vars: {discount_code: X, discount_percent: 5}}
  - id: later
    wait: 60d
  - id: boom
    if: "event.total > 'a hundred'"
"""

ANN = {"userId": "ann", "traits": {"email": "ann@example.com", "phone": "+14155550109"}}


@pytest.fixture
def flow(tmp_path) -> str:
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW)
    return str(path)


def test_wait_for_wakes_on_its_event(simulate, flow):
    out = simulate(
        flow, ANN, [{"at": "0s", "event": "Asked", "properties": {"total": 20}}, {"at": "2h", "event": "Answered"}]
    )
    assert kinds(out)[:6] == ["event", "enter", "wait_for", "event", "wake", "send"]
    assert out["messages"][0]["step"] == "thanks" and out["messages"][0]["offset"] == "+2h"


def test_wait_for_times_out_and_identify_changes_traits(simulate, flow):
    out = simulate(
        flow,
        ANN,
        [
            {"at": "0s", "event": "Asked", "properties": {"total": 20}},
            {"at": "1h", "traits": {"vip": True, "sms_opt_in": True}},
        ],
    )
    timeout = next(e for e in out["timeline"] if e["kind"] == "timeout")
    assert (timeout["offset"], timeout["step"]) == ("+1d", "ask")
    assert [(m["step"], m["status"], m["offset"]) for m in out["messages"]] == [("call", "queued", "+1d")]


def test_a_failing_condition_fails_the_enrollment(simulate, flow):
    out = simulate(flow, ANN, [{"at": "0s", "event": "Asked", "properties": {"total": 20}}], "--horizon", "90d")
    assert out["outcome"]["status"] == "failed"
    assert out["outcome"]["exit_reason"] == "TypeError: '>' not supported between instances of 'int' and 'str'"
    assert out["timeline"][-1]["offset"] == "+61d"


def test_exit_on_goal_and_trigger_condition(simulate, flow):
    out = simulate(
        flow,
        ANN,
        [
            {"at": "0s", "event": "Asked", "properties": {"total": 5}},
            {"at": "1h", "event": "Asked", "properties": {"total": 50}},
            {"at": "3h", "event": "Unsubscribed"},
            {"at": "5h", "event": "Paid"},
        ],
    )
    assert out["timeline"][1] == {
        **out["timeline"][1],
        "kind": "no-entry",
        "detail": "trigger condition 'event.total > 10' is false (event.total = 5)",
    }
    assert out["outcome"] == {
        "status": "exited",
        "exit_reason": "exit_on: Unsubscribed",
        "converted": True,
        "enrollments": 1,
    }


def test_horizon_reports_an_enrollment_still_waiting(simulate, flow):
    out = simulate(
        flow,
        ANN,
        [{"at": "0s", "event": "Asked", "properties": {"total": 20}}, {"at": "1h", "event": "Answered"}],
        "--horizon",
        "10d",
    )
    assert out["outcome"]["status"] == "active" and kinds(out)[-1] == "horizon"
    assert out["timeline"][-1]["detail"].startswith("still active at the horizon: step boom, next step due 2026-05-01")


# --- input errors name file, line and key --------------------------------------------------


def test_bad_customer_file(cli, tmp_path):
    (tmp_path / "c.yaml").write_text("userId: ann\ntraits:\n  phone: '12'\n")
    (tmp_path / "e.yaml").write_text("- {at: 0s, event: Signed Up}\n")
    run = cli("simulate", "welcome", "--customer", tmp_path / "c.yaml", "--events", tmp_path / "e.yaml")
    assert run.code == 2
    assert run.err.startswith(f"{tmp_path / 'c.yaml'}:3: traits.phone: not a phone number")


def test_bad_events_file(cli, tmp_path):
    (tmp_path / "c.yaml").write_text("userId: ann\n")
    (tmp_path / "e.yaml").write_text("- {at: 0s, event: Signed Up}\n- at: soon\n  event: Signed Up\n")
    run = cli("simulate", "welcome", "--customer", tmp_path / "c.yaml", "--events", tmp_path / "e.yaml")
    assert run.code == 2
    assert run.err.startswith(f"{tmp_path / 'e.yaml'}:2: [1].at: 'soon' is neither an offset")


def test_unknown_journey(cli, tmp_path):
    Path(tmp_path / "c.yaml").write_text("userId: ann\n")
    Path(tmp_path / "e.yaml").write_text("[]\n")
    run = cli(
        "simulate", "nope", "--customer", tmp_path / "c.yaml", "--events", tmp_path / "e.yaml", "--journeys", JOURNEYS
    )
    assert run.code == 2 and "no journey with id 'nope'" in run.err


# --- links ---------------------------------------------------------------------------------


def test_links_of_a_marketing_sms_are_shortened_as_the_engine_shortens_them(simulate):
    from orchestrator.config import get_settings
    from orchestrator.delivery.short_links import SHORT_PATH, short_base_url
    from orchestrator.templating.sms import measure_sms

    customer = {"userId": "ines", "traits": {"phone": "+34600000002", "sms_opt_in": True, "locale": "es", "size": "38"}}
    order = [{"at": "0s", "event": "Order Completed", "properties": {"order_id": "B-9", "product_id": "boots-12"}}]
    out = simulate("post-purchase", customer, order)
    [sms] = [m for m in out["messages"] if m["channel"] == "sms"]
    short = short_base_url(get_settings()) + SHORT_PATH + "1"  # enrollment 1, then its signature
    assert short in sms["body"] and "shop.example" not in sms["body"]
    assert sms["segments"] == measure_sms(sms["body"]).segments
    assert sms["links"] == [
        {
            "index": 0,
            "url": "https://shop.example/second-code?code=AGAIN10-INES&size=38",
            "app": "shop://second-code?code=AGAIN10-INES&size=38&after=boots-12",
        }
    ]
    timeline = simulate("post-purchase", customer, order, "--human")
    assert (
        "link 1 leads to https://shop.example/second-code?code=AGAIN10-INES&size=38 "
        "(app first: shop://second-code?code=AGAIN10-INES&size=38&after=boots-12)" in timeline
    )


# --- frequency caps --------------------------------------------------------------------------


def test_a_send_over_the_frequency_cap_is_skipped_as_the_dispatcher_would(cli, tmp_path, caps_file):
    caps_file.write_text("caps:\n  sms: {per_day: 1}\n")
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    sms = "  - send: {channel: sms, template: abandoned-cart-sms, vars: {discount_percent: 5, discount_code: X}}\n"
    receipt = sms.replace("channel: sms,", "channel: sms, transactional: true,")
    (journeys / "chatty.yaml").write_text(
        "id: chatty\nquiet_hours: off\ntrigger: {event: Cart Abandoned}\nsteps:\n"
        + sms + "  - wait: 2h\n" + sms + "  - wait: 1d\n" + sms + receipt
    )  # fmt: skip
    customer = {"userId": "sam", "traits": {"phone": "+14155550100", "sms_opt_in": True, "timezone": "Asia/Tokyo"}}
    (tmp_path / "customer.json").write_text(json.dumps(customer))
    (tmp_path / "events.json").write_text(json.dumps([{"at": "0s", "event": "Cart Abandoned"}]))
    run = cli(
        "simulate", "chatty", "--customer", tmp_path / "customer.json", "--events", tmp_path / "events.json",
        "--journeys", journeys, "--templates", TEMPLATES, "--format", "json",
    )  # fmt: skip
    assert run.code == 0, run.err
    out = json.loads(run.out)
    assert [(m["status"], m["reason"]) for m in out["messages"]] == [
        ("queued", None),
        (
            "skipped",
            f"frequency_cap: sms per_day 1 (reached; last slot taken by message {out['messages'][0]['send_key']})",
        ),
        ("queued", None),  # the next day in Tokyo
        ("queued", None),  # transactional: never capped
    ]
