"""Engine, sessions and the migrated-schema check (SQLite with WAL by default, PostgreSQL too)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Executable, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from service.files import create_private_file, private_dir

# Execution option for a transaction that only reads: on SQLite it leaves the write lock free.
# Pass it to Session.connection() before the first statement.
READ_ONLY = "replyd_read_only"
BUSY_TIMEOUT_SECONDS = 30.0
# Waits between tries for SQLite's write lock: short, because writers hold it for milliseconds.
_LOCK_RETRY_SECONDS = (0.0001, 0.0002, 0.0005, 0.001)
# How long a background writer stands back while the SMTP edge waits, at most: the edge goes
# first, but a steady stream of mail must not starve the workers.
YIELD_SECONDS = 0.05
POSTGRES_EXTRA = "pip install 'replyd[postgres]'"


class DriverMissing(RuntimeError):
    """REPLYD_DATABASE_URL names a database driver that is not installed; the message says
    what to install."""


def _driver_missing(url: URL, exc: ImportError | NoSuchModuleError) -> DriverMissing:
    """The sentence for a URL whose driver cannot be loaded, naming what to install."""
    backend, driver = url.get_backend_name(), url.drivername
    postgres = f"for PostgreSQL, run {POSTGRES_EXTRA} and write postgresql+psycopg://user@host/db"
    if isinstance(exc, NoSuchModuleError):
        return DriverMissing(
            f"REPLYD_DATABASE_URL names the driver {driver!r}, which SQLAlchemy does not know; "
            f"use sqlite:///path/replyd.db, or {postgres}."
        )
    module = exc.name or str(exc)
    if backend == "postgresql" and module == "psycopg":
        return DriverMissing(
            f"REPLYD_DATABASE_URL needs psycopg, which is not installed: run {POSTGRES_EXTRA}."
        )
    return DriverMissing(
        f"REPLYD_DATABASE_URL's driver {driver!r} needs the Python module {module!r}, which is "
        f"not installed (or cannot be loaded); {postgres}, or install that driver yourself."
    )


def make_engine(url: str, *, durable: bool = True, urgent: bool = False) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and write-locking transactions.

    `durable=False` is for worker processes only: their commits skip the flush to disk. That
    is safe because the log is sequential: the edge's next durable commit (before any 250)
    and the outbox's claim (before any mail leaves) flush everything written before them, and
    a power cut that drops a worker's commit leaves the message claimed, to be done again.

    `urgent=True` is for the SMTP edge, whose senders wait for the commit: on SQLite (one
    writer at a time) other writers let it take the write lock first.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = _create_engine(parsed, pool_pre_ping=True)
        if not durable and parsed.get_backend_name() == "postgresql":

            @event.listens_for(engine, "connect")
            def _asynchronous_commit(dbapi_connection: Any, _record: Any) -> None:
                with dbapi_connection.cursor() as cursor:
                    cursor.execute("SET synchronous_commit = off")
                dbapi_connection.commit()

        return engine
    gate = _gate(url)
    if gate is not None:
        # A new database file is made here, private, before SQLite would make it with the
        # process's umask (its -wal and -shm files take the database file's mode).
        private_dir(gate.parent)
        create_private_file(gate.parent / gate.name.removesuffix("-urgent"))
    engine = _create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so they can BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit that let us answer 250 must survive a power cut, not only a crash.
        cursor.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        # SQLite leaves deleted rows' bytes in free pages and cells until something overwrites
        # them: a forgotten person's address or a purged raw message could be read back from
        # the file. secure_delete zeroes them as they are freed, on every connection, since
        # any connection may free a page that held them (retention, delivery, erasure).
        cursor.execute("PRAGMA secure_delete=ON")
        if urgent:
            # A checkpoint (copying the log into the database, with its fsyncs) runs in the
            # connection whose commit crossed the threshold; let the workers' commits do it,
            # not the edge's, which senders are waiting for.
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            # A snapshot to read from, without the write lock (WAL lets readers be).
            connection.connection.driver_connection.execute("BEGIN")
            return
        # Take the write lock up front: a deferred transaction that reads and then writes
        # fails at once with "database is locked" instead of waiting for the busy timeout.
        begin_immediate(connection.connection.driver_connection, gate, urgent=urgent)

    return engine


def _create_engine(url: URL, **options: Any) -> Engine:
    """create_engine, with a DriverMissing sentence instead of an import traceback."""
    try:
        return create_engine(url, **options)
    except (ImportError, NoSuchModuleError) as exc:
        raise _driver_missing(url, exc) from None


def _gate(url: str) -> Path | None:
    """The file urgent writers announce themselves on, for a SQLite database file."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(f"{parsed.database}-urgent")


def edge_waiting(engine: Engine) -> Callable[[], bool]:
    """A check of whether the SMTP edge waits for SQLite's write lock right now (on
    PostgreSQL, never).

    A long writer calls it between units of work and commits early, so senders waiting for
    their 250 are not kept behind a whole batch.
    """
    gate = _gate(engine.url.render_as_string(hide_password=False))
    return lambda: _someone_waits(gate)


def begin_immediate(
    dbapi_connection: sqlite3.Connection, gate: Path | None = None, *, urgent: bool = False
) -> None:
    """BEGIN IMMEDIATE, retrying every millisecond or less while another writer holds the lock.

    SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries, so a writer that
    arrives just after another one began waits tens of milliseconds for a lock held for two:
    that was most of the SMTP edge's p99 latency. Here the wait stays close to the holder's time.
    An urgent writer announces itself on the `gate` file while it waits; the others, on seeing
    that, stand back for up to YIELD_SECONDS instead of racing it for the lock.
    """
    dbapi_connection.execute("PRAGMA busy_timeout=0")
    try:
        started = time.monotonic()
        tries = 0
        with _waiting(gate) if urgent and gate else contextlib.nullcontext():
            while True:
                polite = not urgent and gate and time.monotonic() - started < YIELD_SECONDS
                if not (polite and _someone_waits(gate)):
                    try:
                        dbapi_connection.execute("BEGIN IMMEDIATE")
                        return
                    except sqlite3.OperationalError as exc:
                        if "locked" not in str(exc):
                            raise
                        if time.monotonic() - started > BUSY_TIMEOUT_SECONDS:
                            raise
                time.sleep(_LOCK_RETRY_SECONDS[min(tries, len(_LOCK_RETRY_SECONDS) - 1)])
                tries += 1
    finally:
        dbapi_connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")


@contextlib.contextmanager
def _waiting(gate: Path) -> Iterator[None]:
    """Hold a shared lock on the gate file while an urgent writer waits for SQLite's lock."""
    # A descriptor of its own: flock locks belong to the open file, so threads sharing one
    # would not see each other.
    try:
        fd = os.open(gate, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield  # no gate (a read-only directory): wait like everyone else
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _someone_waits(gate: Path | None) -> bool:
    """Whether an urgent writer holds the gate (an exclusive try fails while any does)."""
    if gate is None:
        return False
    try:
        fd = os.open(gate, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class Deferred:
    """Rows of statements that can wait until just before the transaction's commit, each
    statement then run once for all its rows (executemany): the follows, names and
    notifications of a batch of comments cost three statements, not three per comment.
    Flush before anything reads those tables in the same transaction."""

    def __init__(self) -> None:
        self._rows: dict[Executable, list[dict[str, Any]]] = {}

    def add(self, statement: Executable, rows: list[dict[str, Any]]) -> None:
        """Queue rows for `statement` (in order, after those queued before)."""
        if rows:
            self._rows.setdefault(statement, []).extend(rows)

    def flush(self, connection: Connection) -> None:
        """Run what was queued, one statement at a time in the order first queued."""
        queued, self._rows = self._rows, {}
        for statement, rows in queued.items():
            connection.execute(statement, rows)


def execute_or_defer(
    session: Session, statement: Executable, rows: list[dict[str, Any]], later: Deferred | None
) -> None:
    """Run `statement` for the rows in the session's transaction now, or queue them in `later`."""
    if later is not None:
        later.add(statement, rows)
    elif rows:
        session.connection().execute(statement, rows)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """One sessionmaker per process; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def read_only_engine(shared: Engine) -> Engine | None:
    """On SQLite, an engine for reads that never takes the write lock; None elsewhere.

    The shared engine opens every transaction with BEGIN IMMEDIATE (see make_engine), which
    would make each page view wait behind, and hold up, the SMTP edge's writes.
    """
    url = shared.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A deferred transaction: a consistent WAL snapshot without blocking writers.
        connection.exec_driver_sql("BEGIN")

    return engine
