"""`orchestrator segments list|preview` and `orchestrator validate` on segment files."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from orchestrator.config import PROJECT_ROOT, get_settings
from orchestrator.storage.database import create_engine, session_factory
from orchestrator.storage.feedback_models import Consent
from orchestrator.storage.migrate import upgrade_to_head
from orchestrator.storage.models import Customer, Event

NOW = datetime.now(timezone.utc)  # the CLI previews on the real clock


@pytest.fixture
def database(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("ORCHESTRATOR_SEGMENTS_DIR", str(PROJECT_ROOT / "segments"))
    get_settings.cache_clear()

    async def seed() -> None:
        engine = create_engine(url)
        await upgrade_to_head(engine)
        async with session_factory(engine)() as session, session.begin():
            for user_id, locale in (("amelie", "fr-FR"), ("bruno", "fr-BE"), ("carl", "en-GB")):
                customer = Customer(user_id=user_id, locale=locale, created_at=NOW, updated_at=NOW)
                session.add(customer)
                await session.flush()
                session.add(
                    Event(
                        message_id=f"o-{user_id}",
                        customer_id=customer.id,
                        type="track",
                        name="Order Completed",
                        properties={"revenue": 10},
                        timestamp=NOW,
                        received_at=NOW,
                    )
                )
                if user_id != "bruno":
                    session.add(
                        Consent(
                            customer_id=customer.id, channel="sms", status="opted_in", source="api", recorded_at=NOW
                        )
                    )
        await engine.dispose()

    asyncio.run(seed())
    yield
    get_settings.cache_clear()


def test_preview_counts_and_samples(cli, database):
    run = cli("segments", "preview", "french-opted-in-buyers-this-year")
    assert run.code == 0, run.err
    assert run.out.splitlines()[0] == "french-opted-in-buyers-this-year: 1 customer match now"
    assert "amelie" in run.out and "bruno" not in run.out and "carl" not in run.out
    json_run = cli("segments", "preview", "repeat-buyers-90d", "--format", "json")
    assert '"count": 0' in json_run.out
    assert cli("segments", "preview", "no-such-segment").code == 2


def test_list_shows_every_segment(cli, database):
    run = cli("segments", "list")
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].split() == ["SEGMENT", "MEMBERS", "NAME"]
    assert any(line.startswith("french-opted-in-buyers-this-year") for line in lines)


def test_validate_reports_segment_errors_with_file_and_line(cli, tmp_path):
    segments = tmp_path / "segments"
    segments.mkdir()
    (segments / "bad.yaml").write_text("where:\n  last_seen: {within: 7d, not_within: 30d}\n")
    run = cli("validate", segments)
    assert run.code == 1
    assert f"{segments / 'bad.yaml'}:2: error: where.last_seen: give exactly one of: within, not_within" in run.out
    assert cli("validate", PROJECT_ROOT / "segments").code == 0


JOURNEY = """\
id: repeat-buyer-thanks
trigger: {segment_entered: repeat-buyers-90d}
exit_on: [{segment_left: repeat-buyers-90d}]
steps:
  - wait: 2d
  - send: {channel: email, template: welcome-email}
"""
SCENARIO = """\
journey: repeat-buyer-thanks
description: {description}
customer:
  userId: ann
  traits: {{email: ann@example.com}}
events:
  - {{at: 0s, segment_entered: repeat-buyers-90d}}
  - {{at: {left_at}, segment_left: repeat-buyers-90d}}
expect:
  sends: {sends}
  status: {status}
"""


def test_scenarios_enter_and_leave_segments(cli, tmp_path):
    journeys = tmp_path / "journeys"
    (journeys / "scenarios").mkdir(parents=True)
    (journeys / "repeat-buyer-thanks.yaml").write_text(JOURNEY)
    (journeys / "scenarios" / "stays.yaml").write_text(
        SCENARIO.format(
            description="still a member after two days, thanked",
            left_at="3d",
            sends="[{step: '2', channel: email, at: 2d}]",
            status="completed",
        )
    )
    (journeys / "scenarios" / "leaves.yaml").write_text(
        SCENARIO.format(description="left the segment first, not thanked", left_at="1d", sends="[]", status="exited")
    )
    run = cli("test", "--journeys", journeys, journeys / "scenarios")
    assert run.code == 0, run.out + run.err
    assert run.out.count("PASS") == 2


def test_validate_warns_about_a_journey_naming_an_unknown_segment(cli, tmp_path):
    journeys, segments = tmp_path / "journeys", tmp_path / "segments"
    journeys.mkdir()
    segments.mkdir()
    (segments / "vip.yaml").write_text("where: {trait: {name: plan, equals: vip}}\n")
    (journeys / "j.yaml").write_text(
        "trigger: {segment_entered: vip}\nexit_on:\n  - Unsubscribed\n  - segment_left: gone\nsteps: [{exit: true}]\n"
    )
    run = cli("validate", journeys, segments)
    assert run.code == 0, run.out
    warnings = [line for line in run.out.splitlines() if ": warning: " in line]
    assert warnings == [
        f"{journeys / 'j.yaml'}:4: warning: exit_on[1]: no segment 'gone' among the segments checked: this never fires"
    ]
