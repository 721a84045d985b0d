"""The schema's version: check it without alembic (fast), migrate it with alembic."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration's revision. Checking it here, instead of asking alembic for its head,
# keeps alembic out of every CLI command that only reads; a test compares the two.
HEAD_REVISION = "0008n"


class SchemaNotReady(RuntimeError):
    """The database is missing tables or migrations; the message says what to run."""


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, None when it has no replyd tables yet."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def check_schema(engine: Engine) -> None:
    """Raise SchemaNotReady unless the database is at the newest migration."""
    current = current_revision(engine)
    if current != HEAD_REVISION:
        state = "has no replyd tables" if current is None else f"is at revision {current}"
        raise SchemaNotReady(
            f"The database {state}, but this replyd needs revision {HEAD_REVISION}. "
            "Run `replyd db upgrade` first."
        )


def alembic_config(engine: Engine) -> Config:
    """Alembic configuration pointing at our migrations and at this engine."""
    from alembic.config import Config  # deferred: only `db upgrade` and tests migrate

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate the database to the newest schema; return the revisions before and after."""
    from alembic import command

    before = current_revision(engine)
    command.upgrade(alembic_config(engine), "head")
    after = current_revision(engine)
    assert after is not None
    return before, after
