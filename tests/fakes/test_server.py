"""Serving a fake as a process of its own."""

from __future__ import annotations

import gc

from orchestrator.fakes import server
from orchestrator.fakes.twilio import create_fake_twilio_app


def test_a_standalone_fake_keeps_what_it_was_built_with_out_of_the_collectors_passes(monkeypatch, collector_restored):
    served = []
    monkeypatch.setattr(server.uvicorn, "run", lambda app, **options: served.append((app, options)))
    app = create_fake_twilio_app()
    assert gc.get_freeze_count() == 0

    server.run_standalone(app, "127.0.0.1", 8025, log_level="warning")

    assert served == [(app, {"host": "127.0.0.1", "port": 8025, "log_level": "warning"})]
    assert gc.get_freeze_count() > 0  # the modules and the app: never garbage
    assert gc.get_threshold()[2] == 100  # full passes a tenth as often as the default 10
