"""Report files load like journeys: each problem named with its file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import PROJECT_ROOT
from orchestrator.reports.loader import load_reports


def test_the_shipped_reports_load():
    catalog = load_reports(PROJECT_ROOT / "reports")
    assert catalog.errors == []
    assert set(catalog.reports) == {"weekly-kpis", "abandoned-cart-sms-daily"}
    daily = catalog.reports["abandoned-cart-sms-daily"].definition
    assert daily.schedule.every == "day" and daily.scope.journey == "abandoned-cart" and daily.locale == "fr"


@pytest.mark.parametrize(
    "text, line, key, message",
    [
        (
            "recipients: [a@example.com]\nschedule: {every: week, timezone: Mars/Olympus}\n",
            2,
            "schedule.timezone",
            "unknown time zone",
        ),
        ("recipients: [a@example.com]\nschedule:\n  every: week\n  day: funday\n", 2, "schedule", "weekday"),
        ("recipients: [not-an-address]\nschedule: {every: day}\n", 1, "recipients", "not an e-mail address"),
        ("recipients: [a@example.com]\nschedule: {every: day, at: '25:00'}\n", 2, "schedule.at", "HH:MM"),
        (
            "recipients: [a@example.com]\nschedule: {every: day}\nkpis: [sent, happiness]\n",
            3,
            "kpis[1]",
            "Input should be",
        ),
        ("recipients: [a@example.com]\nschedule: {every: day}\ncolour: blue\n", 3, "colour", "unknown key"),
        ("recipients: [a@example.com]\nschedule: {every: month, day: 31}\n", 2, "schedule", "1 to 28"),
    ],
)
def test_a_bad_report_names_file_line_and_key(tmp_path: Path, text, line, key, message):
    (tmp_path / "bad.yaml").write_text(text)
    (tmp_path / "good.yaml").write_text("recipients: [b@example.com]\nschedule: {every: day}\n")
    catalog = load_reports(tmp_path)
    assert list(catalog.reports) == ["good"]  # one bad file never hides the others
    [error] = catalog.errors
    assert (error.file, error.line, error.key) == (str(tmp_path / "bad.yaml"), line, key)
    assert message in error.message
