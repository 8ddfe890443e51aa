"""`orchestrator test` on scenarios of segments and broadcasts: the shipped ones cover what the
Black Friday example promises, a wrong expectation fails with a diff, a bad file names its
line, and the run never touches the service's database."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from orchestrator.config import PROJECT_ROOT, get_settings
from tests.tooling.conftest import JOURNEYS, TEMPLATES

pytestmark = pytest.mark.integration  # each scenario runs the service on a scratch SQLite file

SEGMENT_SCENARIOS = PROJECT_ROOT / "segments" / "scenarios"
BROADCAST_SCENARIOS = PROJECT_ROOT / "broadcasts" / "scenarios"


def _expectations(folder, key):
    for path in folder.glob("*.yaml"):
        yield from yaml.safe_load(path.read_text())["expect"].get(key, [])


def test_the_shipped_scenarios_pass(cli):
    run = cli("test", SEGMENT_SCENARIOS, BROADCAST_SCENARIOS, "--journeys", JOURNEYS, "--templates", TEMPLATES)
    count = len(list(SEGMENT_SCENARIOS.glob("*.yaml"))) + len(list(BROADCAST_SCENARIOS.glob("*.yaml")))
    assert run.code == 0, run.out
    assert run.out.splitlines()[-1] == f"{count} passed, 0 failed"


def test_the_shipped_scenarios_cover_the_black_friday_promises():
    """The example's promises, each expected by some scenario: sent at 10:00 local time with
    the code, skipped for an opt-out, the holdout and the frequency cap (both ways), and a
    last-year-only buyer kept out of the segment."""
    broadcast_sends = [
        s for s in _expectations(BROADCAST_SCENARIOS, "sends") if s.get("journey", "").startswith("broadcast:")
    ]
    assert any(s.get("local_time") == "10:00" and "BF15" in s.get("body_contains", []) for s in broadcast_sends)
    reasons = {s.get("reason") or s.get("reason_contains") for s in _expectations(BROADCAST_SCENARIOS, "skips")}
    assert {"sms opted out", "holdout group", "no sms address"} <= reasons
    assert any(r.startswith("frequency_cap: sms per_day 1 (reached") for r in reasons)
    assert any(r.startswith("frequency_cap: sms per_day 1 (yields to") for r in reasons)
    scenario = yaml.safe_load((SEGMENT_SCENARIOS / "french-buyers-this-year.yaml").read_text())
    ordered_last_year = {e["user"] for e in scenario["events"] if str(e["at"]).startswith("2026")}
    assert ordered_last_year == {"manon"}
    assert all("manon" not in check.get("members", []) for check in scenario["expect"]["segment"])


WRONG = """\
broadcast: black-friday-sms
description: deliberately wrong
start: 2027-11-25T12:00:00Z
customers:
  - userId: lea
    traits: {phone: "+33612345601", locale: fr-FR, sms_opt_in: true}
  - userId: chloe
    traits: {phone: "+33612345603", locale: fr-FR}
events:
  - {at: 2027-03-14T10:00:00Z, user: lea, event: Order Completed}
  - {at: 2027-04-01T10:00:00Z, user: chloe, event: Order Completed}
expect:
  segment:
    - {at: 1h, members: [chloe, lea]}
  recipients: [chloe, lea]
  sends:
    - {user: lea, at: 2027-11-26T10:00:00Z, local_time: "11:00", body_contains: BF20}
"""


def test_a_wrong_expectation_fails_with_a_diff_of_what_happened(cli, tmp_path):
    (tmp_path / "wrong.yaml").write_text(WRONG)
    run = cli("test", tmp_path / "wrong.yaml", "--journeys", JOURNEYS, "--templates", TEMPLATES)
    assert run.code == 1
    assert run.out.splitlines() == [
        "FAIL wrong: deliberately wrong",
        "    --- expected",
        "    +++ actual",
        "    @@ -1,15 +1,13 @@",
        "     segment:",
        "     - at: +1h",
        "       members:",
        "    -  - chloe",
        "       - lea",
        "     recipients:",
        "    -- chloe",
        "     - lea",
        "     sends:",
        "     - user: lea",
        "    -  at: '2027-11-26T10:00:00Z'",
        "    -  local_time: '11:00'",
        "    -  body_contains: BF20",
        "    +  at: '2027-11-26T09:00:00Z'",
        "    +  local_time: '10:00'",
        "    +  body: 'Black Friday : -15 % sur tout avec le code BF15, aujourd''hui seulement. STOP pour vous"
        " désabonner.'",
        "     skips: []",
        "     failures: []",
        "0 passed, 1 failed",
    ]


@pytest.mark.parametrize(
    "change, message",
    [
        (("user: chloe, event", "user: zoe, event"), ":11: events[1].user: 'zoe' is not among customers: chloe, lea"),
        (
            ('local_time: "11:00"', 'local_time: "11h"'),
            ":17: expect.sends[0].local_time: time data '11h' does not match format '%H:%M'",
        ),
        (
            ("user: chloe, event: Order Completed}", "user: chloe, erase: true, event: Order Completed}"),
            ":11: events[1].erase: write {at, user, erase: true} and nothing else",
        ),
        (
            ("start: 2027-11-25T12:00:00Z", "start: 2027-11-25T12:00:00Z\njourneys: [nope]"),
            "bad.yaml:4: journeys[0]: …journeys: no journey with id 'nope' here",  # … the journeys directory
        ),
        (
            ("broadcast: black-friday-sms", "broadcast: cyber-monday"),
            "bad.yaml:1: broadcast: no broadcast 'cyber-monday' in",
        ),
        (
            ("- {at: 1h, members", "- {at: 1h, segment: vip, members"),
            ":14: expect.segment[0].segment: no segment 'vip' in",
        ),
    ],
)
def test_a_bad_scenario_names_file_line_and_key(cli, tmp_path, change, message):
    (tmp_path / "bad.yaml").write_text(WRONG.replace(*change))
    run = cli("test", tmp_path / "bad.yaml", "--journeys", JOURNEYS, "--templates", TEMPLATES, "--format", "json")
    assert run.code == 1
    [result] = json.loads(run.out)
    assert result["passed"] is False
    assert all(part in result["error"] for part in message.split("…")), result["error"]


def test_a_scenario_never_opens_the_service_database(cli, tmp_path, monkeypatch):
    service_database = tmp_path / "service.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{service_database}")
    get_settings.cache_clear()
    try:
        run = cli(
            "test", SEGMENT_SCENARIOS / "french-buyers-this-year.yaml", "--journeys", JOURNEYS, "--templates", TEMPLATES
        )
    finally:
        get_settings.cache_clear()
    assert run.code == 0, run.out
    assert not service_database.exists()


def test_the_example_in_the_docs_passes(cli, tmp_path):
    docs = (PROJECT_ROOT / "docs" / "broadcasts.md").read_text()
    section = docs[docs.index("## Scenarios") :]
    example = section[section.index("```yaml\n") + 8 :]
    (tmp_path / "example.yaml").write_text(example[: example.index("```")])
    run = cli("test", tmp_path / "example.yaml", "--journeys", JOURNEYS, "--templates", TEMPLATES)
    assert (run.code, run.out.splitlines()[-1]) == (0, "1 passed, 0 failed"), run.out


def test_a_scenario_that_crashes_is_reported_and_the_others_still_run(cli, tmp_path, monkeypatch, caplog):
    from orchestrator.tooling import audience_playback

    played = []
    real_play = audience_playback.Playback.play

    async def crash_the_first(self):
        played.append(self)
        if len(played) == 1:
            raise RuntimeError("the playback broke")
        return await real_play(self)

    monkeypatch.setattr(audience_playback.Playback, "play", crash_the_first)
    for name in ("a-crashes", "b-passes"):
        shutil.copy(SEGMENT_SCENARIOS / "french-buyers-this-year.yaml", tmp_path / f"{name}.yaml")

    run = cli("test", tmp_path, "--journeys", JOURNEYS, "--templates", TEMPLATES)

    assert run.code == 1
    lines = run.out.splitlines()
    assert lines[0].startswith("FAIL a-crashes")
    assert lines[1:3] == [
        "    could not run: RuntimeError: the playback broke",
        "    (a fault in orchestrator, not in your file: please report it with this scenario)",
    ]
    assert lines[3].startswith("PASS b-passes") and lines[-1] == "1 passed, 1 failed"
    [logged] = [r for r in caplog.records if r.name == "orchestrator.scenarios"]  # with its traceback, for the report
    assert logged.levelname == "ERROR" and str(logged.exc_info[1]) == "the playback broke"


def test_show_timeline_tells_a_failing_scenarios_story(cli, tmp_path):
    (tmp_path / "wrong.yaml").write_text(WRONG)
    run = cli("test", tmp_path / "wrong.yaml", "--journeys", JOURNEYS, "--templates", TEMPLATES, "--show-timeline")
    assert run.code == 1
    timeline = run.out[run.out.index("     failures: []\n") :].splitlines()[1:-1]
    assert timeline == [
        "    2027-03-14 10:00 UTC  track     lea Order Completed",
        "    2027-04-01 10:00 UTC  track     chloe Order Completed",
        '    2027-11-25 12:00 UTC  identify  lea {"phone": "+33612345601", "locale": "fr-FR", "sms_opt_in": true}',
        '    2027-11-25 12:00 UTC  identify  chloe {"phone": "+33612345603", "locale": "fr-FR"}',
        "    2027-11-25 12:00 UTC  segment   lea entered french-opted-in-buyers-this-year",
        "    2027-11-25 12:00 UTC  broadcast black-friday-sms draft",
        "    2027-11-25 12:00 UTC  broadcast black-friday-sms scheduled",
        "    2027-11-25 20:00 UTC  broadcast black-friday-sms sending, 1 in the snapshot",
        "    2027-11-26 09:00 UTC  message   lea sms (broadcast:black-friday-sms) at 10:00 local: sent",
        "    2027-11-28 13:00 UTC  broadcast black-friday-sms done",
    ]

    as_json = cli(
        "test",
        tmp_path / "wrong.yaml",
        "--journeys",
        JOURNEYS,
        "--templates",
        TEMPLATES,
        "--show-timeline",
        "--format",
        "json",
    )
    [result] = json.loads(as_json.out)
    assert result["timeline"][0] == {
        "at": "2027-03-14T10:00:00+00:00",
        "kind": "track",
        "detail": "lea Order Completed",
    }
