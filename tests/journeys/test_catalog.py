"""The catalog: current versions, older versions still running, and the events they react to."""

from __future__ import annotations

import yaml

from orchestrator.journeys.catalog import JourneyCatalog
from orchestrator.journeys.format import JourneyFile

VERSION_1 = """
id: winback
trigger: {event: Subscription Cancelled}
exit_on: [Subscription Renewed]
goal: {event: Order Completed, within: 7d}
steps:
  - wait_for:
      event: Survey Answered
      timeout: 2d
      on_timeout:
        - exit: no answer
  - send: {channel: email, template: welcome-email}
"""
VERSION_2 = """
id: winback
trigger: {event: Plan Downgraded}
steps:
  - send: {channel: email, template: welcome-email}
"""


def test_reacting_events_cover_every_rule_of_every_version_still_known():
    catalog = JourneyCatalog()
    catalog.add_version("winback", "v1", yaml.safe_load(VERSION_1))
    assert catalog.reacting_events == {
        "Subscription Cancelled",
        "Subscription Renewed",
        "Order Completed",
        "Survey Answered",
    }
    catalog.add_version("winback", "v2", JourneyFile.model_validate(yaml.safe_load(VERSION_2)).model_dump())
    catalog.set_current("winback", "v2")
    # v1 enrollments may still be waiting for a survey answer: its events still count.
    assert catalog.reacting_events == {
        "Subscription Cancelled",
        "Subscription Renewed",
        "Order Completed",
        "Survey Answered",
        "Plan Downgraded",
    }
    assert "Product Viewed" not in catalog.reacting_events
