"""The JSON Schema of journey files, generated from the pydantic models (journeys.format).

`journeys/journey.schema.json` is committed so editors find it through the modeline every
journey file starts with; a test and `orchestrator schema --check` keep it from drifting.
"""

from __future__ import annotations

import json
from pathlib import Path

MODELINE = "# yaml-language-server: $schema=./journey.schema.json"


def journey_schema_text() -> str:
    from orchestrator.journeys.format import JourneyFile

    schema = JourneyFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "orchestrator journey"
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def schema_is_current(path: Path) -> bool:
    return path.is_file() and path.read_text(encoding="utf-8") == journey_schema_text()
