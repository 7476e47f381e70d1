"""The migrations build exactly the schema the models describe (on both databases)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from portal import db


def test_migrations_match_the_models(db_url: str) -> None:
    db.migrate(db_url)
    db.migrate(db_url)  # idempotent: a second run at head changes nothing
    engine = db.engine_for(db_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), db.Base.metadata)
    engine.dispose()
    assert diff == [], f"a model changed without a migration: {diff}"
