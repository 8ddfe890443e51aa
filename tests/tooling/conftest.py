"""Helpers for the tooling tests: run the real CLI in-process and capture what it prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.config import PROJECT_ROOT

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
