"""`orchestrator test`: the shipped scenarios pass, and a failing one says exactly what differs."""

from __future__ import annotations

import json

import yaml

from orchestrator.config import PROJECT_ROOT
from orchestrator.journeys.compiler import compile_journey
from orchestrator.journeys.loader import load_directory
from tests.tooling.conftest import JOURNEYS, TEMPLATES

SCENARIOS = JOURNEYS / "scenarios"
# Scenarios of segments and broadcasts (tests/tooling/test_audience_scenarios.py) run with them.
ALL_SCENARIOS = (SCENARIOS, PROJECT_ROOT / "segments" / "scenarios", PROJECT_ROOT / "broadcasts" / "scenarios")


def test_every_shipped_scenario_passes(cli):
    run = cli("test", "--journeys", JOURNEYS, "--templates", TEMPLATES)
    count = sum(len(list(folder.glob("*.yaml"))) for folder in ALL_SCENARIOS)
    assert run.code == 0, run.out
    assert run.out.splitlines()[-1] == f"{count} passed, 0 failed"
    assert all(line.startswith("PASS ") for line in run.out.splitlines()[:-1])


LAUNCH_JOURNEYS = {"welcome", "abandoned-cart", "post-purchase"}


def test_the_scenarios_cover_every_send_and_exit_of_the_launch_journeys():
    expected_steps, exit_reasons, journeys_seen = set(), set(), set()
    for path in SCENARIOS.glob("*.yaml"):
        scenario = yaml.safe_load(path.read_text())
        journeys_seen.add(scenario["journey"])
        expect = scenario["expect"]
        expected_steps |= {
            (scenario["journey"], item["step"]) for key in ("sends", "skips") for item in expect.get(key, [])
        }
        exit_reasons.add((scenario["journey"], expect.get("exit_reason")))
    launch = [j for j in load_directory(JOURNEYS).loaded if j.definition.id in LAUNCH_JOURNEYS]
    assert len(launch) == len(LAUNCH_JOURNEYS)
    for loaded in launch:
        nodes = compile_journey(loaded.definition).nodes.values()
        assert loaded.definition.id in journeys_seen
        for node in nodes:
            if node.kind == "send":
                assert (loaded.definition.id, node.id) in expected_steps, f"no scenario sends {node.id}"
            if node.kind == "exit":
                assert (loaded.definition.id, node.exit_reason) in exit_reasons, f"no scenario exits at {node.id}"


WRONG = """\
journey: abandoned-cart
description: deliberately wrong
customer:
  userId: sam
  traits: {phone: "+14155550100"}
events:
  - {at: 0s, event: Cart Abandoned}
expect:
  sends:
    - {step: discount-sms, channel: sms, at: 60m, body_contains: CART15-SAM}
  status: exited
"""


def test_a_failing_scenario_prints_a_diff_and_exits_non_zero(cli, tmp_path):
    (tmp_path / "wrong.yaml").write_text(WRONG)
    run = cli("test", tmp_path / "wrong.yaml", "--journeys", JOURNEYS, "--templates", TEMPLATES)
    assert run.code == 1
    assert run.out.splitlines() == [
        "FAIL wrong: deliberately wrong",
        "    --- expected",
        "    +++ actual",
        "    @@ -1,8 +1,8 @@",
        "    -status: exited",
        "    -sends:",
        "    +status: completed",
        "    +sends: []",
        "    +skips:",
        "     - step: discount-sms",
        "       channel: sms",
        "       at: +1h",
        "    -  body_contains: CART15-SAM",
        "    -skips: []",
        "    +  reason: no sms opt-in",
        "     failures: []",
        "0 passed, 1 failed",
    ]


def test_a_wrong_body_shows_the_actual_body(cli, tmp_path):
    text = WRONG.replace('"+14155550100"}', '"+14155550100", sms_opt_in: true}').replace("CART15-SAM", "CART20-SAM")
    (tmp_path / "body.yaml").write_text(text.replace("  status: exited\n", ""))
    run = cli("test", tmp_path / "body.yaml", "--journeys", JOURNEYS, "--templates", TEMPLATES, "--show-timeline")
    assert run.code == 1
    assert "    -  body_contains: CART20-SAM" in run.out.splitlines()
    assert (
        "    +  body: You left something in your cart! Use code CART15-SAM for 15% off in the next 72 hours. "
        "Reply STOP to opt out." in run.out.splitlines()
    )
    assert "discount-sms] sms to +14155550100 (en; GSM-7, 1 segment)" in run.out  # the timeline


def test_an_invalid_scenario_names_file_line_and_key(cli, tmp_path):
    (tmp_path / "bad.yaml").write_text(WRONG.replace("  status: exited", "  staus: exited"))
    run = cli("test", tmp_path, "--journeys", JOURNEYS, "--templates", TEMPLATES, "--format", "json")
    assert run.code == 1
    [result] = json.loads(run.out)
    assert (result["scenario"], result["passed"]) == ("bad", False)
    assert result["error"] == f"{tmp_path / 'bad.yaml'}:11: expect.staus: unknown key"


def test_a_journey_given_by_path_relative_to_the_scenario(cli, tmp_path):
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "hello.yaml").write_text(
        "id: hello\ntrigger: {event: Signed Up}\nsteps:\n  - id: hi\n    send: {channel: email, template: welcome-email}\n"
    )
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "hello.yaml").write_text(
        "journey: ../journeys/hello.yaml\ncustomer: {userId: a, traits: {email: a@example.com}}\n"
        "events: [{at: 0s, event: Signed Up}]\nexpect:\n  sends: [{step: hi, channel: email}]\n  status: completed\n"
    )
    run = cli("test", tmp_path / "scenarios", "--templates", TEMPLATES)
    assert (run.code, run.out) == (0, "PASS hello\n1 passed, 0 failed\n")


def test_links_to_names_where_the_short_links_lead_and_shows_them_when_wrong(cli, tmp_path):
    scenario = (JOURNEYS / "scenarios" / "post-purchase-second-code-sms.yaml").read_text()
    (tmp_path / "links.yaml").write_text(scenario.replace("size=38", "size=39"))
    run = cli("test", tmp_path / "links.yaml", "--journeys", JOURNEYS, "--templates", TEMPLATES)
    assert run.code == 1
    assert "    -  links_to:" in run.out.splitlines()
    assert "    +  links:" in run.out.splitlines()
    assert "    +  - https://shop.example/second-code?code=AGAIN10-INES&size=38" in run.out.splitlines()
