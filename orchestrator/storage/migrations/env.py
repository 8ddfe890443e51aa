"""Alembic's entry point. Runs on the connection `orchestrator.storage.migrate` hands over."""

from alembic import context

from orchestrator.storage.migrations import migration_options

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations with `orchestrator migrate` (this env.py needs a connection; offline mode is not supported)"
    )

context.configure(
    connection=connection,
    target_metadata=config.attributes["target_metadata"],
    **migration_options(connection.dialect.name),
)
with context.begin_transaction():
    context.run_migrations()
