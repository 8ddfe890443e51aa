"""`orchestrator validate` checks `reports/*.yaml` as the service loads them, with file:line: key."""

from __future__ import annotations

from orchestrator.config import PROJECT_ROOT
from orchestrator.tooling.validate import validate
from tests.tooling.conftest import JOURNEYS, TEMPLATES

BROKEN = """name: Daily SMS
recipients: [crm@example.com, not-an-address]
schedule:
  every: week
  at: "25:00"
  timezone: Europe/Pariss
scope: {journey: abandoned-cart, chanel: sms}
kpis: [sent, happiness]
"""
LOST = """recipients: [crm@example.com]
schedule: {every: day}
scope:
  journey: abandonned-cart
"""


def _reports(tmp_path, **files: str):
    folder = tmp_path / "reports"
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder


def test_a_broken_report_is_reported_with_file_line_and_key(cli, tmp_path):
    folder = _reports(tmp_path, broken=BROKEN)
    run = cli("validate", folder)
    assert run.code == 1
    broken = folder / "broken.yaml"
    assert run.out.splitlines() == [
        f"{broken}:2: error: recipients: 'not-an-address' is not an e-mail address: An email address must have "
        f"an @-sign.",
        f"{broken}:5: error: schedule.at: a time of day as HH:MM, e.g. 08:00",
        f"{broken}:6: error: schedule.timezone: unknown time zone 'Europe/Pariss' (an IANA name such as Europe/Paris)",
        f"{broken}:7: error: scope.chanel: unknown key",
        f"{broken}:8: error: kpis[1]: Input should be 'messages', 'sent', 'delivered', 'delivery_rate', 'failed', "
        "'skipped', 'recipients', 'open_rate', 'click_rate', 'bounce_rate', 'reply_rate', 'opt_out_rate', "
        "'conversions', 'conversion_rate', 'revenue', 'average_order_value', 'cost', 'cost_per_acquisition', "
        "'return_on_spend', 'customer_lifetime_value', 'retention_rate' or 'nps'",
        "5 errors, 0 warnings (0 journey files, 16 templates, 1 report file)",
    ]


def test_a_report_on_a_journey_that_does_not_exist_and_a_file_that_is_not_yaml(tmp_path):
    folder = _reports(tmp_path, lost=LOST, garbled="recipients: [a@example.com\n")
    report = validate([], JOURNEYS, TEMPLATES, reports_dir=folder)  # no paths: the configured directories
    assert [(f.file, f.line, f.key, f.message) for f in report.findings] == [
        (str(folder / "garbled.yaml"), 2, "", "not valid YAML: expected ',' or ']', but got '<stream end>'"),
        (
            str(folder / "lost.yaml"),
            4,
            "scope.journey",
            "no journey 'abandonned-cart' (there are: abandoned-cart, nps-survey, post-purchase, welcome): "
            "the report would always be empty",
        ),
    ]
    assert (
        report.summary == "4 journey files, 16 templates, 2 report files, 4 segment files"
    )  # segments beside the journeys
    # Named alone, the reports are checked against the configured journeys.
    report = validate([folder / "lost.yaml"], JOURNEYS, TEMPLATES)
    assert [(f.line, f.key) for f in report.findings] == [(4, "scope.journey")]


def test_the_launch_reports_are_clean_and_counted(cli):
    run = cli("validate", PROJECT_ROOT / "reports")
    assert (run.code, run.out) == (0, "0 errors, 0 warnings (0 journey files, 16 templates, 2 report files)\n")
    assert validate([], JOURNEYS, TEMPLATES).reports == 2  # the reports beside the journeys by default


def test_a_named_report_file_that_is_not_yaml_is_unusable_input(cli, tmp_path):
    folder = _reports(tmp_path, garbled="recipients: [a@example.com\n", broken=BROKEN)
    assert cli("validate", folder / "garbled.yaml").code == 2  # as for a journey file: input it cannot use
    assert cli("validate", folder / "broken.yaml").code == 1  # a report file, with problems
    assert cli("validate", folder).code == 1  # found in a directory: one of its problems
