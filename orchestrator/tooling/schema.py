"""The JSON Schemas of declared files, generated from their pydantic models.

`journeys/journey.schema.json`, `segments/segment.schema.json` and
`journeys/scenarios/scenario.schema.json` (every scenario of `orchestrator test`: a journey's,
a segment's or a broadcast's) are committed so editors find them through the modeline every
file starts with; tests and `orchestrator schema --check` keep them from drifting.
"""

from __future__ import annotations

import json
from pathlib import Path

MODELINE = "# yaml-language-server: $schema=./journey.schema.json"
SEGMENT_MODELINE = "# yaml-language-server: $schema=./segment.schema.json"
KINDS = ("journey", "segment", "scenario")


def _model(kind: str):
    if kind == "scenario":
        from pydantic import RootModel

        from orchestrator.tooling.audience_scenarios import AudienceScenarioFile
        from orchestrator.tooling.scenarios import ScenarioFile

        return RootModel[ScenarioFile | AudienceScenarioFile]
    if kind == "segment":
        from orchestrator.segments.format import SegmentFile

        return SegmentFile
    from orchestrator.journeys.format import JourneyFile

    return JourneyFile


def schema_text(kind: str = "journey") -> str:
    schema = _model(kind).model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"orchestrator {kind}"
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def journey_schema_text() -> str:
    return schema_text("journey")


def schema_is_current(path: Path, kind: str = "journey") -> bool:
    return path.is_file() and path.read_text(encoding="utf-8") == schema_text(kind)
