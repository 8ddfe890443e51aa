"""All configuration in one pydantic-settings class; every field has a working default.

With no environment at all the service runs on SQLite with the local providers, so a new
user sees it work in one command. Variables are prefixed `ORCHESTRATOR_`, except
`DATABASE_URL`, which keeps the name every platform already sets.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{PROJECT_ROOT / 'var' / 'orchestrator.db'}",
        validation_alias=AliasChoices("DATABASE_URL", "ORCHESTRATOR_DATABASE_URL"),
    )
    journeys_dir: Path = PROJECT_ROOT / "journeys"
    templates_dir: Path = PROJECT_ROOT / "templates"
    default_locale: str = "en"

    host: str = "127.0.0.1"
    port: int = 8000
    # The address providers use to reach our webhooks; signatures are computed over it.
    public_base_url: str = "http://127.0.0.1:8000"

    # Simulated time: off by default. When on, the clock only moves through the admin API.
    simulated_clock: bool = False
    simulated_clock_start: str | None = None  # ISO-8601; defaults to the real time at start

    worker_poll_seconds: float = 1.0
    worker_batch_size: int = 200
    max_batch_events: int = 1000
    max_request_bytes: int = 4 * 1024 * 1024


@lru_cache
def get_settings() -> Settings:
    return Settings()
