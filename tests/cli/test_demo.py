"""The demo a new user runs: the launch journeys end to end, and a KPI table at the end."""

from __future__ import annotations

import pytest

from orchestrator.cli.demo import run_demo

# The demo runs the whole service on a SQLite database of its own, without the database fixtures.
pytestmark = pytest.mark.integration


def test_demo_plays_every_launch_journey_and_prints_kpis(capsys):
    table = run_demo(customers=150, seed=3)
    rows = {tuple(line.split()[:2]) for line in table.splitlines()[1:] if line.strip() and not line.startswith("Customers")}
    assert {("welcome", "email"), ("abandoned-cart", "sms"), ("nps-survey", "sms")} <= rows
    assert any(channel in ("whatsapp", "email") for journey, channel in rows if journey == "post-purchase")
    cart = next(line for line in table.splitlines() if line.startswith("abandoned-cart"))
    assert int(cart.split()[2]) > 0  # reminders went out
    assert "NPS" in table and "CLV" in table
