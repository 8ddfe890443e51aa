"""The demo a new user runs: the launch journeys end to end, and a KPI table at the end."""

from __future__ import annotations

import pytest

from orchestrator.cli.demo import run_demo
from orchestrator.cli.main import build_parser

# The demo runs the whole service on a SQLite database of its own, without the database fixtures.
pytestmark = pytest.mark.integration


def test_demo_plays_every_launch_journey_and_prints_kpis(capsys):
    table = run_demo(customers=150, seed=3)
    rows = {
        tuple(line.split()[:2]) for line in table.splitlines()[1:] if line.strip() and not line.startswith("Customers")
    }
    assert {("welcome", "email"), ("abandoned-cart", "sms"), ("nps-survey", "sms")} <= rows
    assert any(channel in ("whatsapp", "email") for journey, channel in rows if journey == "post-purchase")
    cart = next(line for line in table.splitlines() if line.startswith("abandoned-cart"))
    assert int(cart.split()[2]) > 0  # reminders went out
    assert "NPS" in table and "CLV" in table

    output = capsys.readouterr().out
    lines = output.splitlines()
    assert len(lines) < 60 and "HTTP Request" not in output  # quiet: no request logs
    assert "[####################] 8/8" in output  # the progress bar filled
    header = lines[next(i for i, line in enumerate(lines) if line.startswith("journey "))].split()
    assert header[-2:] == ["cost", "CPA"]
    # The fake delivers every SMS and WhatsApp message; every callback arrives.
    for line in output.splitlines():
        if line.split()[:1] in (["abandoned-cart"], ["nps-survey"], ["post-purchase"]) and line.split()[1] in (
            "sms",
            "whatsapp",
        ):
            assert line.split()[3] == "100.0%", line
    customers = next(line for line in lines if line.startswith("Customers:"))
    assert "retention -" not in customers and "retention 100.0%" in customers
    assert "Holdout lift" in output and "sent: reached the provider" in output  # lift and legend
    assert lines[-1].startswith("Database: sqlite:///") and lines[-1].endswith("http://127.0.0.1:8000/docs")
    assert "console at http://127.0.0.1:8000/ " in lines[-1]


def test_demo_takes_a_port():
    args = build_parser().parse_args(["demo", "--port", "8123", "--customers", "10"])
    assert (args.port, args.customers, args.verbose) == (8123, 10, False)
