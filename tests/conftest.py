"""Shared test fixtures: a migrated SQLite database, a running replyd, a real SMTP sink."""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from service.identity.addresses import ReplyTarget
from service.runtime.components import Components
from service.runtime.daemon import ReplydServer
from service.runtime.settings import Settings, load_settings
from service.store.engine import make_engine
from service.store.models import Person, Post
from service.store.schema import upgrade

DOMAIN = "replies.example.org"
SECRET = "test-secret-0123456789abcdef"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "emails"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Name the random order's seed at the end too (-q hides the header that shows it), so
    that a failure seen in one order can be run again in that order."""
    seed = getattr(config.option, "randomly_seed", None)
    if config.pluginmanager.has_plugin("randomly") and isinstance(seed, int):
        terminalreporter.write_line(
            f"random order: pytest --randomly-seed={seed} runs the tests in this order again"
        )


def free_port() -> int:
    """A port nothing listens on right now (aiosmtpd cannot bind port 0 itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until predicate() is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class SinkHandler:
    """Captures what replyd sends; `answers` makes the next RCPTs fail with a given reply."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    peers: list[object] = field(default_factory=list)  # the client end of each message's session

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.answers:
            return self.answers.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        self.peers.append(session.peer)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        """Messages delivered to one recipient."""
        return [m for _, rcpts, m in self.messages if address in rcpts]


@pytest.fixture
def sink() -> Iterator[tuple[SinkHandler, int]]:
    """A real aiosmtpd server standing in for the outbound relay."""
    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per run; each test copies it (migrating costs ~0.5 s)."""
    path = tmp_path_factory.mktemp("template") / "replyd.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def make_settings(var_dir: Path, **overrides: str) -> Settings:
    """Settings for a test: a private var dir and database, a fixed secret and domain."""
    env = {
        "REPLYD_VAR_DIR": str(var_dir),
        "REPLYD_DOMAIN": DOMAIN,
        "REPLYD_SECRET": SECRET,
        "REPLYD_SMTP_PORT": str(free_port()),
        "REPLYD_HTTP_PORT": "0",  # any free port: tests never collide on 8025
        # In-process daemons run their workers inline; tests of worker processes ask for them.
        "REPLYD_WORKER_PROCESSES": "0",
        "REPLYD_BASE_URL": "https://blog.example.org",
        "REPLYD_SITE_NAME": "Example Blog",
        **overrides,
    }
    return load_settings(env)


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """Extra REPLYD_* settings; a test class overrides this fixture to change them."""
    return {}


@pytest.fixture
def settings(
    tmp_path: Path,
    migrated_template: Path,
    sink: tuple[SinkHandler, int],
    settings_overrides: dict[str, str],
) -> Settings:
    """Settings with a migrated database and outbound mail going to the sink."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    shutil.copy(migrated_template, var_dir / "replyd.db")
    overrides = {"REPLYD_OUTBOUND": f"smtp://127.0.0.1:{sink[1]}", **settings_overrides}
    return make_settings(var_dir, **overrides)


def postgres_settings(
    tmp_path: Path, postgres_url: str, sink: tuple[SinkHandler, int], overrides: dict[str, str]
) -> Settings:
    """Settings like the `settings` fixture's, on the run's (emptied) PostgreSQL database: what a
    module whose tests all run on PostgreSQL returns from its own `settings` fixture."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    return make_settings(
        var_dir,
        REPLYD_DATABASE_URL=postgres_url,
        REPLYD_OUTBOUND=f"smtp://127.0.0.1:{sink[1]}",
        **overrides,
    )


@pytest.fixture
def parts(settings: Settings) -> Iterator[Components]:
    """Engine, sessions, address book and keyring for the test's database."""
    components = Components.build(settings)
    yield components
    components.engine.dispose()


class RunningServer:
    """A ReplydServer running on its own event loop in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = ReplydServer(settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> RunningServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def port(self) -> int:
        return self.settings.smtp_port


@pytest.fixture
def server(settings: Settings) -> Iterator[RunningServer]:
    """replyd's listener and workers, running against the test database."""
    running = RunningServer(settings).start()
    yield running
    running.stop()


@dataclass
class Blog:
    """Posts and people seeded into the test database, with helpers to address them."""

    parts: Components
    parts_notifier: Any = None

    def person(self, email: str, name: str = "") -> int:
        with self.parts.session_factory.begin() as session:
            person = session.scalar(select(Person).where(Person.email == email))
            if person is None:
                person = Person(email=email, display_name=name)
                session.add(person)
                session.flush()
            return person.id

    def post(
        self, slug: str = "hello", author: str = "author@example.org", closed: bool = False
    ) -> int:
        author_id = self.person(author, "Ann Author")
        with self.parts.session_factory.begin() as session:
            post = Post(
                slug=slug,
                title=f"Post {slug}",
                url=f"https://blog.example.org/{slug}",
                author_id=author_id,
                closed=closed,
            )
            session.add(post)
            session.flush()
            return post.id

    def address(self, post_id: int, email: str, comment_id: int | None = None) -> str:
        target = ReplyTarget(post_id, comment_id, self.person(email))
        return self.parts.book.reply_address(target, self.parts.keyring)


@pytest.fixture
def blog(parts: Components) -> Blog:
    """Seeding helpers for the test database."""
    return Blog(parts)


def reply_message(
    sender: str,
    to: str,
    body: str,
    *,
    subject: str = "Re: Post hello",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A plain-text reply as a mail client would send it."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id or f"<{time.monotonic_ns()}@client.example.net>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes()


def send(port: int, sender: str, recipients: list[str], raw: bytes) -> dict[str, tuple[int, bytes]]:
    """Send over real SMTP to 127.0.0.1:port; returns refused recipients like smtplib does."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail(sender, recipients, raw)


# --- PostgreSQL (issue 6): used when REPLYD_TEST_POSTGRES_URL names a server -----------------


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database of this test run's own, dropped at the end."""
    import os
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = os.environ.get("REPLYD_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("REPLYD_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against")
    name = f"replyd_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """The run's PostgreSQL database, emptied (ids restarted) for this test."""
    from sqlalchemy import text

    from service.store.models import Base

    engine = make_engine(postgres_database)
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return postgres_database
