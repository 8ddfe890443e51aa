"""The frequency caps file and the pure rule: periods in the customer's zone, who yields."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from orchestrator.config import PROJECT_ROOT
from orchestrator.declared import FileLoadError
from orchestrator.policies.frequency import (
    Cap,
    Contender,
    Period,
    load_frequency_policy,
    period_start,
    refusal,
)

TOKYO, LOS_ANGELES = "Asia/Tokyo", "America/Los_Angeles"


def test_the_shipped_file_caps_every_channel():
    policy = load_frequency_policy(PROJECT_ROOT / "policies" / "frequency.yaml")
    assert [str(cap) for cap in policy.for_channel("sms")] == ["sms per_day 1", "sms per_week 3"]
    assert policy.for_channel("email") and policy.for_channel("whatsapp")


def test_no_file_means_no_caps(tmp_path: Path):
    policy = load_frequency_policy(tmp_path / "frequency.yaml")
    assert not policy.enabled and policy.for_channel("sms") == ()


@pytest.mark.parametrize(
    "text, error",
    [
        (
            "caps:\n  sms: {per_day: 1}\n  pigeon: {per_day: 1}\n",
            "frequency.yaml:3: caps.pigeon.[key]: Input should be 'email', 'sms' or 'whatsapp'",
        ),
        (
            "caps:\n  sms:\n    per_day: -1\n",
            "frequency.yaml:3: caps.sms.per_day: Input should be greater than or equal to 0",
        ),
        (
            "caps:\n  sms:\n    per_day: 2\n    per_week: 1\n",
            "frequency.yaml:2: caps.sms: per_week (1) is below per_day (2)",
        ),
        ("caps:\n  email: {}\n", "frequency.yaml:2: caps.email: give per_day, per_week or both"),
        ("caps:\n  sms: {per_month: 3}\n", "frequency.yaml:2: caps.sms.per_month: unknown key"),
        ("caps: [1, 2\n", "frequency.yaml:2: not valid YAML"),
    ],
)
def test_mistakes_are_reported_with_file_line_and_key(tmp_path: Path, text: str, error: str):
    path = tmp_path / "frequency.yaml"
    path.write_text(text)
    with pytest.raises(FileLoadError) as raised:
        load_frequency_policy(path)
    assert str(raised.value).startswith(f"{tmp_path}/{error}"), str(raised.value)


def test_a_day_is_the_customers_own_calendar_day():
    moment = datetime(2026, 3, 2, 17, 0, tzinfo=timezone.utc)  # Monday 09:00 in LA, Tuesday 02:00 in Tokyo
    assert period_start(Period.day, moment, LOS_ANGELES) == date(2026, 3, 2)
    assert period_start(Period.day, moment, TOKYO) == date(2026, 3, 3)
    assert period_start(Period.day, moment, None) == date(2026, 3, 2)  # unknown: UTC
    assert period_start(Period.day, moment, "Not/AZone") == date(2026, 3, 2)


def test_a_week_runs_monday_to_sunday_in_the_customers_zone():
    moment = datetime(2026, 3, 8, 16, 0, tzinfo=timezone.utc)  # Sunday 09:00 in LA, Monday 01:00 in Tokyo
    assert period_start(Period.week, moment, LOS_ANGELES) == date(2026, 3, 2)
    assert period_start(Period.week, moment, TOKYO) == date(2026, 3, 9)


NOW = datetime(2026, 3, 2, 17, 0, tzinfo=timezone.utc)
SMS_DAILY = Cap("sms", Period.day, 1)


def test_a_send_takes_the_slot_nobody_higher_is_waiting_for():
    assert refusal(SMS_DAILY, holders=[], ahead=[]) is None


def test_a_send_yields_to_a_higher_priority_send_still_pending():
    reason = refusal(SMS_DAILY, holders=[], ahead=[Contender(7, 5, NOW)])
    assert reason == "frequency_cap: sms per_day 1 (yields to message 7, priority 5)"


def test_a_full_period_names_the_last_holder():
    assert (
        refusal(SMS_DAILY, holders=[3], ahead=[])
        == "frequency_cap: sms per_day 1 (reached; last slot taken by message 3)"
    )
    assert refusal(Cap("sms", Period.day, 0), holders=[], ahead=[]) == "frequency_cap: sms per_day 0 (reached)"


def test_rank_is_priority_then_due_time_then_id():
    early_low, late_high = Contender(1, 0, NOW), Contender(2, 5, NOW.replace(hour=23))
    assert late_high.rank < early_low.rank
    assert Contender(3, 0, NOW).rank < Contender(4, 0, NOW).rank < Contender(2, 0, NOW.replace(hour=18)).rank
