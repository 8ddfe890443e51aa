"""Helpers for the tooling tests: run the real CLI in-process and capture what it prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.config import PROJECT_ROOT, get_settings

CORPUS = Path(__file__).parent / "corpus"
JOURNEYS = PROJECT_ROOT / "journeys"
TEMPLATES = PROJECT_ROOT / "templates"


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    def run(*args: str) -> Run:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit:  # argparse usage errors and --help
            code = exit.code
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def caps_file(tmp_path, monkeypatch):
    """The configured frequency caps file, somewhere a test can write it."""
    path = tmp_path / "frequency.yaml"
    monkeypatch.setenv("ORCHESTRATOR_FREQUENCY_CAPS_FILE", str(path))
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()
