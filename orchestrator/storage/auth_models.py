"""API keys: who may call the `/v1` API, and with which role.

Only a SHA-256 hash of each key is stored, never the key itself. Keys are revoked, never
deleted, so the table also answers "has anyone ever created a key?": once one has, the
API stays closed even after every key is revoked (see `orchestrator/api/auth.py`).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from orchestrator.storage.models import _timestamp


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (
        # A name is free again once its key is revoked, so `keys revoke NAME` is unambiguous.
        sa.Index(
            "uq_api_keys_active_name",
            "name",
            unique=True,
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    role: str = Field(max_length=16)  # admin | marketer | ops | ingest
    # hex SHA-256 of the whole key: every request looks its key up by this column.
    key_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    key_prefix: str = Field(max_length=16)  # the first characters, so people can tell keys apart
    created_at: datetime = _timestamp()
    revoked_at: datetime | None = _timestamp(nullable=True)


class ServiceSecret(SQLModel, table=True):
    """Secrets the service generates for itself on first start (see `orchestrator/auth/secrets.py`).

    In the database, so that every API and worker process of one deployment, on any
    machine, signs and verifies with the same values. The first process to start writes
    them (INSERT … ON CONFLICT DO NOTHING); every process reads back what is stored.
    """

    __tablename__ = "service_secrets"

    name: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    value: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_at: datetime = _timestamp()
