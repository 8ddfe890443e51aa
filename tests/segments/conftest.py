from tests.tooling.conftest import cli  # noqa: F401  (the CLI fixture, for test_cli.py)
