"""Segment files: file:line errors, duplicate ids, the shipped examples, the JSON Schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import PROJECT_ROOT
from orchestrator.declared import FileLoadError
from orchestrator.segments.loader import load_segments, parse_segment
from orchestrator.tooling.schema import SEGMENT_MODELINE, schema_text

SEGMENTS = PROJECT_ROOT / "segments"

INVALID = """\
name: Broken
where:
  all:
    - locale: {prefix: fr}
    - event:
        name: Order Completed
        within: 3 days
    - trait: {name: plan}
    - colour: blue
    - event: {name: Order Completed, sum: {property: "revenue']", compare: {at_least: 1}}}
"""


def test_every_problem_names_its_file_line_and_key():
    with pytest.raises(FileLoadError) as failure:
        parse_segment(INVALID, Path("segments/broken.yaml"))
    shown = [str(e) for e in failure.value.errors]
    assert shown == [
        "segments/broken.yaml:7: where.all[1].event.within: '3 days' is not a duration: write it like 30m, 1h, 3d or 1h30m",
        "segments/broken.yaml:8: where.all[2].trait: a trait condition needs exactly one of: equals, in, exists, compare",
        "segments/broken.yaml:9: where.all[3]: a condition needs exactly one of: all, any, not, trait, consent, event, "
        "last_seen, locale, timezone, journey, converted",
        "segments/broken.yaml:10: where.all[4].event.sum.property: String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'",
    ]


def test_the_shipped_segments_load_and_name_the_schema():
    catalog = load_segments(SEGMENTS)
    assert catalog.errors == []
    assert {"french-opted-in-buyers-this-year", "repeat-buyers-90d", "lapsed-customers"} <= set(catalog.segments)
    for segment in catalog.segments.values():
        assert segment.path.read_text(encoding="utf-8").splitlines()[0] == SEGMENT_MODELINE, segment.path


def test_the_committed_schema_is_current():
    committed = (SEGMENTS / "segment.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text("segment"), (
        "run: .venv/bin/orchestrator schema --kind segment -o segments/segment.schema.json"
    )


def test_a_duplicate_id_is_reported_and_the_first_file_kept(tmp_path):
    (tmp_path / "a.yaml").write_text("id: vip\nwhere: {trait: {name: plan, equals: vip}}\n")
    (tmp_path / "b.yaml").write_text("id: vip\nwhere: {trait: {name: plan, equals: gold}}\n")
    catalog = load_segments(tmp_path)
    assert list(catalog.segments) == ["vip"] and catalog.segments["vip"].path.name == "a.yaml"
    assert [e.key for e in catalog.errors] == ["id"] and "also used by" in catalog.errors[0].message


def test_a_journey_names_a_segment_to_start_on_and_to_exit_on():
    from orchestrator.journeys.loader import parse_journey

    journey = parse_journey(
        "trigger: {segment_entered: vip}\nexit_on: [Unsubscribed, {segment_left: vip}]\nsteps: [{exit: true}]\n",
        Path("journeys/vip.yaml"),
    )
    assert journey.definition.trigger.event == "Segment Entered: vip"
    assert journey.definition.exit_on == ["Unsubscribed", "Segment Left: vip"]
    with pytest.raises(FileLoadError) as failure:
        parse_journey("trigger: {event: A, segment_entered: vip}\nsteps: [{exit: true}]\n", Path("journeys/x.yaml"))
    assert "give event or segment_entered, not both" in str(failure.value)
    with pytest.raises(FileLoadError) as failure:
        parse_journey(
            "trigger: {event: A}\nexit_on: [{segment: vip}]\nsteps: [{exit: true}]\n", Path("journeys/x.yaml")
        )
    assert "journeys/x.yaml:2: exit_on[0]: an exit rule is an event name, or {segment_left: <segment id>}" in str(
        failure.value
    )
