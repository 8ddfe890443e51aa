"""`python -m orchestrator.cli`: the same as the `orchestrator` command."""

import sys

from orchestrator.cli.main import main

if __name__ == "__main__":  # not when a tool merely imports every module (tests/storage/test_migrations.py)
    sys.exit(main())
