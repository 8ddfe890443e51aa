"""Alembic revisions, oldest first by number. Create the next with `orchestrator makemigration "message"`."""
