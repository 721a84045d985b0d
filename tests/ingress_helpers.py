"""What the ingress tests share: reading what was stored, taking the store away, running
`replyd ingest` as an MTA's pipe runs it."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import select

from service.runtime.components import Components
from service.runtime.settings import Settings
from service.store.models import Comment, InboundEmail
from tests.conftest import DOMAIN, SECRET

READER = "reader@example.org"
REPLYD = [sys.executable, "-m", "service.cli"]


def inbound_rows(parts: Components) -> list[InboundEmail]:
    """Every stored inbound row, oldest first (detached, with the columns loaded)."""
    with parts.session_factory() as session:
        rows = list(session.scalars(select(InboundEmail).order_by(InboundEmail.id)))
        session.expunge_all()
        return rows


def comments(parts: Components) -> list[Comment]:
    """Every comment, oldest first."""
    with parts.session_factory() as session:
        found = list(session.scalars(select(Comment).order_by(Comment.id)))
        session.expunge_all()
        return found


def database_file(settings: Settings) -> str:
    """The SQLite file of the test's database."""
    return settings.database_url.removeprefix("sqlite:///")


@contextlib.contextmanager
def store_down(settings: Settings) -> Iterator[None]:
    """The inbound table is away meanwhile, so every attempt to store mail fails."""
    with sqlite3.connect(database_file(settings)) as db:
        db.execute("ALTER TABLE inbound_emails RENAME TO inbound_emails_away")
    try:
        yield
    finally:
        with sqlite3.connect(database_file(settings)) as db:
            db.execute("ALTER TABLE inbound_emails_away RENAME TO inbound_emails")


def ingest_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """The environment an MTA's pipe gives `replyd ingest` for the test's deployment."""
    return {
        "REPLYD_VAR_DIR": str(settings.var_dir),
        "REPLYD_DOMAIN": DOMAIN,
        "REPLYD_SECRET": SECRET,
        "REPLYD_WORKER_PROCESSES": "0",
        **overrides,
    }


def run_ingest(
    env: dict[str, str], raw: bytes, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run `replyd ingest ARGS` with the message on standard input, as a pipe transport does."""
    return subprocess.run(
        [*REPLYD, "ingest", *args],
        input=raw,
        env={**os.environ, **env},
        capture_output=True,
        timeout=60,
        cwd=cwd,
    )
