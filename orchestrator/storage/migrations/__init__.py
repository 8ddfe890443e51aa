"""The schema's history as Alembic revisions (`versions/`), configured in code.

There is no alembic.ini: the configuration is built here, so migrations run the same from a
checkout and from an installed package. `env.py` never opens a database of its own; it
runs on the connection it is handed (see `orchestrator/storage/migrate.py`), which lets
the caller hold locks and choose the transaction.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import orchestrator.storage.database  # noqa: F401  (imports every model module: the tables are in the metadata)

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSIONS_DIR = MIGRATIONS_DIR / "versions"


def alembic_config(
    connection: sa.Connection | None = None,
    *,
    target_metadata: sa.MetaData | None = None,
    extra_version_dirs: tuple[Path, ...] = (),
) -> Config:
    """`extra_version_dirs` and `target_metadata` let tests migrate toward models of their own."""
    config = Config()
    # ConfigParser interpolates `%`: file names and paths must be escaped.
    config.set_main_option("script_location", _escape(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.set_main_option("path_separator", "os")
    config.set_main_option(
        "version_locations", os.pathsep.join(_escape(d) for d in (VERSIONS_DIR, *extra_version_dirs))
    )
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = target_metadata if target_metadata is not None else SQLModel.metadata
    return config


def migration_options(dialect_name: str) -> dict[str, Any]:
    """How migrations are run and compared; the drift test uses the very same options."""
    return {
        # SQLite cannot ALTER most things: Alembic then copies the table ("batch" mode).
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
        "render_item": _render_item,
    }


def _render_item(kind: str, item: Any, context: Any) -> str | bool:
    if kind != "type":
        return False
    # SQLModel's AutoString is a plain VARCHAR: keep revisions free of sqlmodel internals.
    if isinstance(item, AutoString):
        return f"sa.String(length={item.length})" if item.length else "sa.String()"
    # Rendered against SQLite, a JSONB variant would come out as `JSONB(astext_type=Text())`,
    # an undefined name in the revision.
    if isinstance(item, JSONB):
        context.imports.add("from sqlalchemy.dialects import postgresql")
        return "postgresql.JSONB()"
    return False


def _escape(path: Path) -> str:
    return str(path).replace("%", "%%")
