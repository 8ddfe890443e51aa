"""Which part of a time range the rollups answer, and which is counted from raw rows."""

from __future__ import annotations

from datetime import datetime, timezone

from orchestrator.kpis.scope import split_by_whole_days, split_by_whole_hours


def at(day: int, hour: int = 0, microsecond: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, microsecond=microsecond, tzinfo=timezone.utc)


def test_whole_days_only():
    assert split_by_whole_days(at(2), at(4)) == ((at(2), at(4)), [])
    assert split_by_whole_days(None, None) == ((None, None), [])


def test_parts_of_days_at_either_end():
    assert split_by_whole_days(at(2, 8), at(5, 10)) == ((at(3), at(5)), [(at(2, 8), at(3)), (at(5), at(5, 10))])
    assert split_by_whole_days(None, at(5, 10)) == ((None, at(5)), [(at(5), at(5, 10))])
    assert split_by_whole_days(at(2, microsecond=1), None) == ((at(3), None), [(at(2, microsecond=1), at(3))])


def test_less_than_a_whole_day_is_counted_from_raw_rows():
    assert split_by_whole_days(at(2, 8), at(3, 10)) == (None, [(at(2, 8), at(3, 10))])
    assert split_by_whole_days(at(2, 8), at(2, 9)) == (None, [(at(2, 8), at(2, 9))])


def test_a_part_day_splits_into_whole_hours_and_the_minutes_at_either_end():
    def t(hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 3, 2, hour, minute, tzinfo=timezone.utc)

    assert split_by_whole_hours(t(5, 17), t(9, 43)) == ((t(6), t(9)), [(t(5, 17), t(6)), (t(9), t(9, 43))])
    assert split_by_whole_hours(t(5), t(9)) == ((t(5), t(9)), [])
    assert split_by_whole_hours(t(5, 17), t(5, 49)) == (None, [(t(5, 17), t(5, 49))])
    assert split_by_whole_hours(t(5, 17), t(6, 1)) == (None, [(t(5, 17), t(6, 1))])
