"""`orchestrator broadcasts …` on a real database: files become drafts, moves follow the
lifecycle, a move the state forbids exits 1 naming the state."""

from __future__ import annotations

import pytest

from orchestrator.cli.main import main
from orchestrator.config import get_settings

FILE = """\
id: spring-sale
audience: {user_ids: [nobody-yet]}
channel: sms
template: black-friday-sms
vars: {discount_code: SPRING}
schedule: {at: "2027-03-21T09:00:00Z"}
"""


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "broadcasts"
    folder.mkdir()
    (folder / "spring-sale.yaml").write_text(FILE)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("ORCHESTRATOR_BROADCASTS_DIR", str(folder))
    monkeypatch.setenv("ORCHESTRATOR_AUTO_MIGRATE", "true")
    get_settings.cache_clear()

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["broadcasts", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run
    get_settings.cache_clear()


def test_the_lifecycle_from_the_command_line(cli):
    code, out, _ = cli("list")
    assert code == 0 and "spring-sale" in out and "draft" in out
    code, _, err = cli("pause", "spring-sale")
    assert code == 1 and "it is draft" in err
    assert cli("schedule", "spring-sale")[:2] == (0, "broadcast 'spring-sale' is scheduled\n")
    assert cli("pause", "spring-sale")[1] == "broadcast 'spring-sale' is paused\n"
    assert cli("resume", "spring-sale")[1] == "broadcast 'spring-sale' is scheduled\n"
    code, out, _ = cli("preview", "spring-sale")
    assert code == 0 and "audience now:   0" in out
    assert cli("cancel", "spring-sale")[1] == "broadcast 'spring-sale' is cancelled\n"
    assert cli("preview", "nothing")[0] == 1
