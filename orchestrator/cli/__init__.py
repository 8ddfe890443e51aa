"""The `orchestrator` command line: run the service, manage keys, play the demo, and the
marketers' tools (validate, preview, simulate, test)."""

from orchestrator.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
