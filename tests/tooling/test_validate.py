"""`orchestrator validate` on a corpus of broken files: every message, with its file and line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from orchestrator.config import PROJECT_ROOT
from tests.tooling.conftest import CORPUS, JOURNEYS, TEMPLATES

J = "tests/tooling/corpus/journeys/"
T = "tests/tooling/corpus/templates/"

# (severity, file, line, key, start of the message)
EXPECTED = [
    ("error", J + "duplicate-b.yaml", 1, "id", "journey id 'same-id' is also used by " + J + "duplicate-a.yaml"),
    ("error", J + "not-yaml.yaml", 3, "", "not valid YAML: expected ',' or ']'"),
    ("error", J + "schema-errors.yaml", 5, "trigger.conditon", "unknown key"),
    ("error", J + "schema-errors.yaml", 7, "steps[0].wait", "'1 hour' is not a duration"),
    ("error", J + "schema-errors.yaml", 9, "steps[1].send.channel", "Input should be 'email', 'sms' or 'whatsapp'"),
    (
        "error",
        J + "templates-and-vars.yaml",
        6,
        "steps[0].send.template",
        "template 'nope' does not exist: no folder " + T + "nope",
    ),
    (
        "error",
        J + "templates-and-vars.yaml",
        10,
        "steps[1].send.template",
        f"template 'greeting' uses 'coupon' ({T}greeting/en.txt:5, {T}greeting/fr.txt:5), which this send never "
        f"provides: templates see customer, event and the send's vars (none)",
    ),
    (
        "error",
        J + "templates-and-vars.yaml",
        22,
        "steps[3].send.vars.broken",
        "template syntax: unexpected end of template",
    ),
    (
        "error",
        J + "templates-and-vars.yaml",
        23,
        "steps[3].send.vars.stranger",
        "'cart' is not defined: vars strings see only customer and event",
    ),
    (
        "warning",
        J + "templates-and-vars.yaml",
        25,
        "steps[4].send.template",
        "template 'plain-note' has no subject in en",
    ),
    ("warning", J + "unreachable.yaml", 6, "steps[0].if", "the condition is always false: the then branch never runs"),
    (
        "error",
        J + "unreachable.yaml",
        16,
        "steps[1].else[2]",
        "step 'after-exit' can never run: step '2.else.2' before it always ends the enrollment",
    ),
    (
        "error",
        J + "unreachable.yaml",
        18,
        "steps[2]",
        "step 'never-reached' can never run (nor the 1 step after it): step 'either-way-out' before it always ends",
    ),
    ("warning", J + "unreachable.yaml", 20, "steps[3].wait", "nothing follows this wait"),
    (
        "error",
        J + "waits-and-conditions.yaml",
        4,
        "trigger.condition",
        "'has_event' is not defined: the trigger condition sees only customer and event; evaluating it would fail "
        "the API request",
    ),
    (
        "error",
        J + "waits-and-conditions.yaml",
        10,
        "steps[0].wait_for.event",
        "waits for 'Order Completed', which is in exit_on: that event ends the enrollment instead, so on_event never runs",
    ),
    (
        "warning",
        J + "waits-and-conditions.yaml",
        15,
        "steps[1].if",
        "has_event('Order Completed') is always false here: 'Order Completed' is in exit_on",
    ),
    ("error", J + "waits-and-conditions.yaml", 19, "steps[2].if", "'cart' is not defined: conditions see "),
    (
        "error",
        J + "waits-and-conditions.yaml",
        19,
        "steps[2].if",
        "consented('fax'): not a channel (email, sms, whatsapp); an unknown channel reads as consented",
    ),
    ("warning", J + "waits-and-conditions.yaml", 23, "steps[3].wait", "nothing follows this wait"),
    ("warning", T + "broken-syntax", None, "", "no 'fr' variant (fr.txt), which other templates have"),
    ("error", T + "broken-syntax/en.txt", 1, "", "template syntax: unexpected '}'"),
    ("error", T + "no-default", None, "", "no 'en' variant (en.txt): the default locale ends every fallback"),
    (
        "warning",
        T + "plain-note",
        None,
        "",
        "no 'fr' variant (fr.txt), which other templates have: customers in fr get 'en'",
    ),
]


@pytest.fixture(autouse=True)
def in_project(monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)  # paths in the findings are as given on the command line


def corpus_findings(cli) -> list[dict]:
    run = cli("validate", J, T, "--format", "json")
    assert run.code == 1, run.err
    return json.loads(run.out)


def test_every_broken_file_is_reported_with_file_line_and_key(cli):
    findings = corpus_findings(cli)
    assert len(findings) == len(EXPECTED), "\n".join(str(f) for f in findings)
    for finding, (severity, file, line, key, message) in zip(findings, EXPECTED):
        assert (finding["severity"], finding["file"], finding["line"], finding["key"]) == (severity, file, line, key)
        assert finding["message"].startswith(message), finding["message"]


def test_json_output_is_a_list_of_findings(cli):
    findings = corpus_findings(cli)
    assert isinstance(findings, list)
    for finding in findings:
        assert set(finding) == {"severity", "file", "line", "key", "message"}
        assert finding["severity"] in ("error", "warning")
        assert isinstance(finding["line"], (int, type(None))) and isinstance(finding["message"], str)


def test_human_output_names_file_line_severity_and_key(cli):
    run = cli("validate", J, T)
    assert run.code == 1
    lines = run.out.splitlines()
    assert f"{J}schema-errors.yaml:5: error: trigger.conditon: unknown key" in lines
    assert f"{T}broken-syntax/en.txt:1: error: template syntax: unexpected '}}'" in lines
    assert lines[-1] == "17 errors, 7 warnings (7 journey files, 5 templates)"


def test_the_launch_journeys_and_templates_are_clean(cli):
    run = cli("validate", "--format", "json")  # the configured directories
    assert (run.code, json.loads(run.out)) == (0, [])
    run = cli("validate", JOURNEYS, TEMPLATES)
    assert run.code == 0 and run.out.startswith("0 errors, 0 warnings (")


def test_warnings_alone_exit_zero(cli, tmp_path):
    (tmp_path / "slow.yaml").write_text(
        "id: slow\ntrigger: {event: Signed Up}\nsteps:\n"
        "  - send: {channel: email, template: welcome-email}\n  - wait: 1d\n"
    )
    run = cli("validate", tmp_path / "slow.yaml", "--templates", TEMPLATES, "--format", "json")
    assert run.code == 0
    [finding] = json.loads(run.out)
    assert (finding["severity"], finding["line"], finding["key"]) == ("warning", 5, "steps[1].wait")


def test_a_single_file_is_checked_against_the_configured_templates(cli):
    run = cli(
        "validate", CORPUS / "journeys" / "unreachable.yaml", "--templates", CORPUS / "templates", "--format", "json"
    )
    files = {f["file"] for f in json.loads(run.out)}
    assert str(CORPUS / "journeys" / "unreachable.yaml") in files
    assert str(CORPUS / "journeys" / "schema-errors.yaml") not in files


def test_a_missing_path_is_an_error(cli, tmp_path):
    run = cli("validate", tmp_path / "nope.yaml", "--templates", TEMPLATES)
    assert run.code == 2 and f"{tmp_path / 'nope.yaml'}: error: no such file or directory" in run.out


def test_exit_codes_are_the_documented_ones(cli):
    # README: 1 problems found, 2 unusable input (a file that cannot be read or parsed).
    assert cli("validate", CORPUS / "journeys" / "schema-errors.yaml", "--templates", CORPUS / "templates").code == 1
    assert cli("validate", CORPUS / "journeys" / "not-yaml.yaml", "--templates", CORPUS / "templates").code == 2


def test_the_real_command_line():
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "validate", J, T, "--format", "json"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert len(json.loads(result.stdout)) == len(EXPECTED)


def test_loops_that_can_outrun_the_render_budget_are_warned_about(cli, tmp_path):
    (tmp_path / "spin").mkdir()
    (tmp_path / "spin" / "en.txt").write_text(
        "---\nsubject: Hi\n---\nHello\n{% for i in range(100000) %}\n"
        "{% for j in range(10) %}{{ j }}{% endfor %}{% endfor %}\n"
        "{% for item in event.items %}{{ item }}{% endfor %}{% for n in range(3) %}{{ n }}{% endfor %}\n"
    )
    run = cli("validate", tmp_path / "none.yaml", "--templates", tmp_path, "--format", "json")
    findings = [(f["severity"], f["line"], f["message"]) for f in json.loads(run.out) if f["file"].endswith("en.txt")]
    assert findings == [
        (
            "warning",
            5,
            "loop over range(100,000): loops this long run into the render budget, and the message "
            "fails; loop over the data itself",
        ),
        (
            "warning",
            6,
            "loop inside the loop of line 5: nested loops multiply, can run into the render budget, "
            "and the message fails",
        ),
    ]


def test_the_frequency_caps_file_is_checked_too(cli, caps_file):
    caps_file.write_text("caps:\n  sms:\n    per_day: 2\n    per_weak: 5\n")
    run = cli("validate", "--format", "json")
    assert run.code == 1
    assert [(f["file"], f["line"], f["key"], f["message"]) for f in json.loads(run.out)] == [
        (str(caps_file), 4, "caps.sms.per_weak", "unknown key")
    ]
    caps_file.write_text("caps:\n  sms: {per_day: 1, per_week: 3}\n")
    assert cli("validate").code == 0
