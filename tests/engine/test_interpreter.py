"""The step interpreter on its own: no database, no provider."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from orchestrator.engine.interpreter import Facts, advance, resume_after_event, resume_after_timeout
from orchestrator.journeys.compiler import compile_journey
from orchestrator.journeys.loader import parse_journey

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

JOURNEY = """\
id: reply-flow
trigger: {event: Asked}
steps:
  - id: ask
    send: {channel: sms, template: question}
  - id: await-answer
    wait_for:
      event: Answered
      timeout: 2d
      on_event:
        - id: thanks
          send: {channel: sms, template: thanks}
      on_timeout:
        - id: vip-check
          if: "customer.vip and event.total > 100"
          then:
            - id: call-them
              send: {channel: email, template: call}
          else:
            - exit: never answered
  - id: bye
    send: {channel: email, template: bye}
"""


def journey():
    return compile_journey(parse_journey(JOURNEY, Path("reply-flow.yaml")).definition)


def facts(**customer) -> Facts:
    return Facts(customer=customer, event={"total": 150})


def test_runs_until_the_wait_for_and_schedules_its_timeout():
    result = advance(journey(), "ask", facts(), NOW)
    assert [n.id for n in result.sends] == ["ask"]
    assert (result.cursor, result.waiting_for, result.due_at) == ("await-answer", "Answered", NOW + timedelta(days=2))


def test_event_branch_then_continues_after_the_wait_for():
    compiled = journey()
    result = advance(compiled, resume_after_event(compiled, "await-answer"), facts(), NOW)
    assert [n.id for n in result.sends] == ["thanks", "bye"]
    assert result.status == "completed"


def test_timeout_branch_with_condition_true():
    compiled = journey()
    result = advance(compiled, resume_after_timeout(compiled, "await-answer"), facts(vip=True), NOW)
    assert [n.id for n in result.sends] == ["call-them", "bye"]
    assert [t.detail for t in result.trace if t.kind == "if"] == ["customer.vip and event.total > 100 → then"]


def test_timeout_branch_with_condition_false_exits():
    compiled = journey()
    result = advance(compiled, resume_after_timeout(compiled, "await-answer"), facts(), NOW)
    assert result.sends == [] and (result.status, result.exit_reason) == ("exited", "never answered")


def test_wait_moves_the_cursor_past_itself():
    compiled = compile_journey(
        parse_journey(
            "id: w\ntrigger: {event: X}\nsteps:\n  - wait: 90m\n  - send: {channel: sms, template: t}\n", Path("w.yaml")
        ).definition
    )
    result = advance(compiled, compiled.first, facts(), NOW)
    assert (result.cursor, result.due_at, result.sends) == ("2", NOW + timedelta(minutes=90), [])
    assert [n.id for n in advance(compiled, result.cursor, facts(), result.due_at).sends] == ["2"]


def test_has_event_and_consent_helpers():
    compiled = compile_journey(
        parse_journey(
            "id: h\ntrigger: {event: X}\nsteps:\n  - if: \"has_event('Order Completed') or not consented('sms')\"\n"
            "    then: [{exit: done}]\n  - send: {channel: sms, template: t}\n",
            Path("h.yaml"),
        ).definition
    )
    ordered = Facts(customer={}, event={}, events_since_entry={"Order Completed"}, consented=lambda c: True)
    fresh = Facts(customer={}, event={}, events_since_entry=set(), consented=lambda c: True)
    assert advance(compiled, compiled.first, ordered, NOW).status == "exited"
    assert [n.id for n in advance(compiled, compiled.first, fresh, NOW).sends] == ["2"]


def test_nested_missing_attributes_read_as_empty():
    compiled = compile_journey(
        parse_journey(
            "id: n\ntrigger: {event: X}\nsteps:\n  - if: \"customer.address.city == 'Paris'\"\n    then: [{exit: paris}]\n"
            "  - send: {channel: sms, template: t}\n",
            Path("n.yaml"),
        ).definition
    )
    result = advance(compiled, compiled.first, Facts(customer={}, event={}), NOW)
    assert result.status == "completed" and [n.id for n in result.sends] == ["2"]


def test_consent_for_an_unknown_channel_is_never_given():
    from orchestrator.customers.consent import OPTED_IN, SendPermissions

    permissions = SendPermissions(consents={"sms": OPTED_IN})
    assert permissions.marketing_allowed("sms") and not permissions.marketing_allowed("fax")
