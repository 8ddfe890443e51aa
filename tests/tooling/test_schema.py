"""The committed JSON Schema of journey files is the generated one, and journeys point to it."""

from __future__ import annotations

import json

from orchestrator.config import PROJECT_ROOT
from orchestrator.tooling.schema import MODELINE, journey_schema_text
from tests.tooling.conftest import JOURNEYS


def test_the_committed_schema_is_current():
    committed = (JOURNEYS / "journey.schema.json").read_text(encoding="utf-8")
    assert committed == journey_schema_text(), "run: .venv/bin/orchestrator schema -o journeys/journey.schema.json"


def test_every_journey_file_names_the_schema():
    files = sorted(JOURNEYS.glob("*.yaml"))
    assert files
    for path in files:
        assert path.read_text(encoding="utf-8").splitlines()[0] == MODELINE, path
    assert (JOURNEYS / MODELINE.split("$schema=")[1]).resolve() == (JOURNEYS / "journey.schema.json").resolve()


def test_schema_check_command(cli, tmp_path):
    assert cli("schema", "--check", JOURNEYS / "journey.schema.json").code == 0
    stale = tmp_path / "old.schema.json"
    stale.write_text("{}\n")
    run = cli("schema", "--check", stale)
    assert run.code == 1 and "is not the current schema" in run.err
    assert cli("schema", "-o", stale).code == 0 and cli("schema", "--check", stale).code == 0


def test_every_command_has_help(cli):
    for command in ("validate", "simulate", "test", "preview", "schema", "serve", "worker"):
        run = cli(command, "--help")
        assert run.code == 0 and run.out.startswith(f"usage: orchestrator {command}"), command


SCENARIO_SCHEMA = JOURNEYS / "scenarios" / "scenario.schema.json"


def test_the_committed_scenario_schema_is_current_and_every_scenario_names_it(cli):
    assert cli("schema", "--kind", "scenario", "--check", SCENARIO_SCHEMA).code == 0, (
        "run: .venv/bin/orchestrator schema --kind scenario -o journeys/scenarios/scenario.schema.json"
    )
    folders = [
        JOURNEYS / "scenarios",
        PROJECT_ROOT / "segments" / "scenarios",
        PROJECT_ROOT / "broadcasts" / "scenarios",
    ]
    files = sorted(path for folder in folders for path in folder.glob("*.yaml"))
    assert len({path.parent for path in files}) == 3
    for path in files:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        assert (path.parent / first.split("$schema=")[1]).resolve() == SCENARIO_SCHEMA.resolve(), path


def test_the_scenario_schema_knows_both_kinds_of_scenario():
    schema = json.loads(SCENARIO_SCHEMA.read_text(encoding="utf-8"))
    kinds = [option["$ref"].rsplit("/", 1)[1] for option in schema["anyOf"]]
    assert kinds == ["ScenarioFile", "AudienceScenarioFile"]
    assert set(schema["$defs"]["AudienceScenarioFile"]["properties"]) >= {"segment", "broadcast", "customers", "expect"}
