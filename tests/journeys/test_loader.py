"""Journey files: the launch journeys load; broken files fail with file, line and key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.config import PROJECT_ROOT
from orchestrator.journeys.loader import JourneyLoadError, load_directory, parse_journey

VALID = """\
id: demo
trigger:
  event: Signed Up
steps:
  - send:
      channel: email
      template: welcome-email
"""


def errors_of(text: str, name: str = "journeys/demo.yaml") -> list[str]:
    with pytest.raises(JourneyLoadError) as caught:
        parse_journey(text, Path(name))
    return [str(e) for e in caught.value.errors]


def test_the_launch_journeys_load():
    report = load_directory(PROJECT_ROOT / "journeys")
    assert report.errors == []
    assert sorted(j.definition.id for j in report.loaded) == [
        "abandoned-cart",
        "nps-survey",
        "post-purchase",
        "welcome",
    ]
    cart = next(j for j in report.loaded if j.definition.id == "abandoned-cart").definition
    assert cart.goal.within == timedelta(hours=72)
    assert (cart.reentry.policy, cart.reentry.after) == ("after", timedelta(days=7))


def test_version_follows_content():
    first = parse_journey(VALID, Path("a.yaml"))
    same = parse_journey(VALID + "\n# a comment changes nothing\n", Path("a.yaml"))
    changed = parse_journey(VALID.replace("Signed Up", "Registered"), Path("a.yaml"))
    assert first.version == same.version != changed.version


def test_unknown_key_names_file_line_and_key():
    text = VALID.replace("  event: Signed Up", '  event: Signed Up\n  conditon: "true"')
    assert errors_of(text) == ["journeys/demo.yaml:4: trigger.conditon: unknown key"]


def test_bad_duration():
    text = VALID.replace("steps:\n", "steps:\n  - wait: 1 hour\n")
    [error] = errors_of(text)
    assert error.startswith("journeys/demo.yaml:5: steps[0].wait: '1 hour' is not a duration")


def test_a_duration_past_ten_years_is_refused_not_overflowed():
    text = VALID.replace("steps:\n", "steps:\n  - wait: 1000000000d\n")
    [error] = errors_of(text)
    assert error.startswith("journeys/demo.yaml:5: steps[0].wait: '1000000000d' is too long: a duration is at most")


def test_unknown_channel_in_a_nested_branch():
    text = VALID + '  - if: "customer.vip"\n    then:\n      - send: {channel: fax, template: x}\n'
    [error] = errors_of(text)
    assert error.startswith(
        "journeys/demo.yaml:10: steps[1].then[0].send.channel: Input should be 'email', 'sms' or 'whatsapp'"
    )


def test_step_without_an_action():
    [error] = errors_of(VALID + "  - snd: {}\n")
    assert error == "journeys/demo.yaml:8: steps[1]: a step needs exactly one of: wait, wait_for, if, send, exit"


def test_expression_syntax_error():
    [error] = errors_of(VALID.replace("  event: Signed Up", '  event: Signed Up\n  condition: "event.total >"'))
    assert error.startswith("journeys/demo.yaml:4: trigger.condition: invalid expression")


def test_missing_required_key():
    [error] = errors_of("id: demo\nsteps:\n  - wait: 1h\n")
    assert error == "journeys/demo.yaml:1: trigger: Field required"


def test_duplicate_step_ids():
    text = VALID.replace("  - send:", "  - id: hello\n    wait: 1h\n  - id: hello\n    send:")
    [error] = errors_of(text)
    assert error.startswith("journeys/demo.yaml:7: steps[1].id: step id 'hello' is used twice")


def test_reentry_after_needs_a_duration():
    [error] = errors_of(VALID + "reentry:\n  policy: after\n")
    assert error.startswith("journeys/demo.yaml:9: reentry: Value error") or "needs a duration" in error


def test_invalid_yaml_names_the_line():
    [error] = errors_of("id: demo\ntrigger: [unclosed\nsteps: []\n")
    assert error.startswith("journeys/demo.yaml:3: not valid YAML")


def test_one_bad_file_does_not_hide_the_others(tmp_path):
    (tmp_path / "good.yaml").write_text(VALID.replace("id: demo", "id: good"))
    (tmp_path / "bad.yaml").write_text(VALID.replace("channel: email", "channel: pigeon"))
    report = load_directory(tmp_path)
    assert [j.definition.id for j in report.loaded] == ["good"]
    assert [e.file for e in report.errors] == [str(tmp_path / "bad.yaml")]
    assert report.errors[0].line == 6


def test_id_defaults_to_the_file_name():
    loaded = parse_journey(VALID.replace("id: demo\n", ""), Path("journeys/spring-sale.yaml"))
    assert loaded.definition.id == "spring-sale"
