"""Digests from a watermark per subscription: every comment reaches every digest taker once,
whatever the downtime; `replyd digest send` sends what is new (issue 17, finding 9)."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text

from service.outbound.digest import MAX_COMMENTS_PER_DIGEST, Digests, latest_slot
from service.runtime.components import Components
from service.runtime.settings import Settings
from service.store.engine import make_engine
from service.store.models import Comment, OutboundEmail, Subscription, utcnow
from service.store.schema import alembic_config, upgrade
from service.store.subscriptions import set_following
from tests.conftest import (
    DOMAIN,
    SECRET,
    Blog,
    RunningServer,
    SinkHandler,
    make_settings,
    reply_message,
    send,
    wait_for,
)
from tests.test_reply_flow import comments, delivered

READER = "reader@example.org"
FAN = "fan@example.org"
SQL_TIME = "%Y-%m-%d %H:%M:%S.%f"


def cli(settings: Settings, *args: str) -> str:
    """Run `replyd` as an operator does, on the test's database; its output."""
    env = {
        **os.environ,
        "REPLYD_VAR_DIR": str(settings.var_dir),
        "REPLYD_DATABASE_URL": settings.database_url,
        "REPLYD_DOMAIN": DOMAIN,
        "REPLYD_SECRET": SECRET,
    }
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def takes_daily_digest(blog: Blog, post: int, email: str = FAN) -> None:
    """Someone chooses a daily digest of the post, as the CLI and the API record it."""
    with blog.parts.session_factory.begin() as session:
        set_following(session, post, blog.person(email), active=True, digest="daily")


def reply(server: RunningServer, blog: Blog, address: str, body: str) -> None:
    """A reply through the real listener, waited for until it is a comment."""
    before = len(comments(blog))
    send(server.port, READER, [address], reply_message(READER, address, body))
    wait_for(lambda: len(comments(blog)) == before + 1, what=f"the comment {body!r}")


def at(when: datetime) -> str:
    """A time as replyd's SQLite columns hold it."""
    return when.strftime(SQL_TIME)


def digest_text(mail: EmailMessage) -> str:
    return mail.get_body(("plain",)).get_content()


class TestDowntime:
    def test_the_next_digest_after_days_of_downtime_has_all_of_it(
        self, settings: Settings, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Replies on three days, the daemon down over three digest hours: the first digest
        after it is back holds all three; `replyd digest send` later sends only what came
        after, and repeating it sends nothing."""
        post = blog.post()
        takes_daily_digest(blog, post)
        address = blog.address(post, READER)
        running = RunningServer(settings).start()
        try:
            for day in (3, 2, 1):
                reply(running, blog, address, f"Written {day} days ago")
        finally:
            running.stop()
        # The daemon stayed down for those days: the replies were written then, and the last
        # digest went out the day before the first of them.
        database = settings.database_url.removeprefix("sqlite:///")
        now = utcnow()
        with sqlite3.connect(database) as db:
            for number, day in enumerate((3, 2, 1), start=1):
                when = (now - timedelta(days=day)).strftime(SQL_TIME)
                db.execute("UPDATE comments SET created_at = ? WHERE id = ?", (when, number))
            sent = (now - timedelta(days=4)).strftime(SQL_TIME)
            db.execute("UPDATE subscriptions SET digest_sent_at = ?", (sent,))
        assert sink[0].to(FAN) == []
        due_every_hour = dataclasses.replace(settings, digest_hour=0)
        running = RunningServer(due_every_hour).start()
        try:
            [first] = delivered(sink, FAN)
            assert str(first["Subject"]).startswith("Example Blog: 3 new comments (")
            for day in (3, 2, 1):
                assert digest_text(first).count(f"Written {day} days ago") == 1
            # Today's digest went out: a reply now waits for the next one, or for the command.
            reply(running, blog, address, "Written today")
            output = cli(settings, "digest", "send", "--period", "daily")
            assert "queued 1 daily digest(s)" in output
            second = delivered(sink, FAN, 2)[1]
            assert "Written today" in digest_text(second)
            assert "days ago" not in digest_text(second)
            assert "queued 0 daily" in cli(settings, "digest", "send", "--period", "daily")
        finally:
            running.stop()
        assert len(sink[0].to(FAN)) == 2

    def test_digest_send_right_after_a_day_of_comments_sends_them(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Today's replies go out at once with `replyd digest send --period daily`."""
        post = blog.post()
        takes_daily_digest(blog, post)
        address = blog.address(post, READER)
        for number in range(2):
            reply(server, blog, address, f"Today, number {number}")
        output = cli(server.settings, "digest", "send", "--period", "daily")
        assert "queued 1 daily digest(s)" in output
        [digest] = delivered(sink, FAN)
        assert "Today, number 0" in digest_text(digest) and "Today, number 1" in digest_text(digest)


class TestWatermarks:
    def test_a_new_digest_taker_starts_after_the_thread_so_far(self, blog: Blog) -> None:
        """Choosing a digest sets the watermark at the post's newest comment; choosing it
        again keeps the watermark, so nothing pending is lost."""
        post = blog.post()
        writer = blog.person(READER)
        with blog.parts.session_factory.begin() as session:
            session.add(Comment(post_id=post, author_id=writer, body="before"))
        takes_daily_digest(blog, post)
        with blog.parts.session_factory.begin() as session:
            session.add(Comment(post_id=post, author_id=writer, body="after"))
        takes_daily_digest(blog, post)  # again: keeps the watermark
        digests = blog.parts.digests()
        assert digests.send(blog.parts.session_factory, "daily") == 1
        with blog.parts.session_factory() as session:
            [raw] = session.scalars(select(OutboundEmail.raw)).all()
        assert b"after" in raw and b"before" not in raw

    def test_a_long_backlog_goes_out_in_parts_each_comment_once(self, blog: Blog) -> None:
        """More new comments than one digest holds: several messages, each comment in one."""
        post = blog.post()
        takes_daily_digest(blog, post)
        writer = blog.person(READER)
        count = MAX_COMMENTS_PER_DIGEST + 5
        with blog.parts.session_factory.begin() as session:
            session.add_all(
                Comment(post_id=post, author_id=writer, body=f"note {n:04d} end")
                for n in range(count)
            )
        assert blog.parts.digests().send(blog.parts.session_factory, "daily") == 2
        with blog.parts.session_factory() as session:
            raws = session.scalars(select(OutboundEmail.raw).order_by(OutboundEmail.id)).all()
        seen = [n for n in range(count) for raw in raws if f"note {n:04d} end".encode() in raw]
        assert seen == list(range(count))

    def test_one_persons_failing_digest_holds_up_nobody_else(self, blog: Blog) -> None:
        """A digest that cannot be written (here a template that fails on one post) is not
        queued and its watermark stays; the others' digests are queued."""
        from jinja2 import DictLoader, Environment, StrictUndefined

        templates = Environment(
            loader=DictLoader(
                {
                    "digest.subject": "{{ count }} new",
                    "digest.txt": "{% for s in sections %}{% if s.title == 'Post broken' %}"
                    "{{ no_such_value }}{% endif %}{{ s.title }}{% endfor %} {{ unsubscribe_url }}",
                }
            ),
            undefined=StrictUndefined,
        )
        broken, fine = blog.post(slug="broken"), blog.post(slug="fine")
        takes_daily_digest(blog, broken, "first@example.org")
        takes_daily_digest(blog, fine, "second@example.org")
        writer = blog.person(READER)
        with blog.parts.session_factory.begin() as session:
            session.add_all(Comment(post_id=p, author_id=writer, body="x") for p in (broken, fine))
        parts = blog.parts
        digests = Digests(
            parts.book,
            parts.keyring,
            parts.notifier(),
            from_address=parts.settings.from_address,
            site_name="Blog",
            templates=templates,
        )
        assert digests.send(parts.session_factory, "daily") == 1
        with parts.session_factory() as session:
            assert session.scalars(select(OutboundEmail.recipient)).all() == ["second@example.org"]
            marks = dict(
                session.execute(select(Subscription.post_id, Subscription.digest_through)).all()
            )
        assert marks == {broken: 0, fine: 2}

    def test_the_scheduler_waits_for_the_digest_hour(self) -> None:
        """Daily digests fall due at the hour each day, weekly ones at the hour on Mondays."""
        wednesday = datetime(2026, 3, 4, 6, 30, tzinfo=UTC)
        assert latest_slot("daily", wednesday, 7) == datetime(2026, 3, 3, 7, tzinfo=UTC)
        assert latest_slot("daily", wednesday, 6) == datetime(2026, 3, 4, 6, tzinfo=UTC)
        assert latest_slot("weekly", wednesday, 7) == datetime(2026, 3, 2, 7, tzinfo=UTC)
        monday_early = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
        assert latest_slot("weekly", monday_early, 7) == datetime(2026, 2, 23, 7, tzinfo=UTC)


class TestUpgrade:
    def test_digests_of_the_older_code_are_not_sent_again_and_missed_days_are(
        self, tmp_path: Path
    ) -> None:
        """Migrating from per-period digests: the watermark goes after the last period the
        person got a digest for, so that period is not repeated and the days after it (which
        the older code would have lost) come in the next digest."""
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        command.upgrade(alembic_config(engine), "0004")
        midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        sent_day = midnight - timedelta(days=3)
        long_ago = at(sent_day - timedelta(days=9))
        rows = [
            (
                "INSERT INTO people (id, email, display_name, created_at) VALUES "
                "(1, 'author@example.org', '', :t), (2, 'fan@example.org', '', :t)",
                {"t": long_ago},
            ),
            (
                "INSERT INTO posts (id, slug, title, url, author_id, closed, created_at) "
                "VALUES (1, 'p', 'P', 'https://b.example/p', 1, 0, :t)",
                {"t": long_ago},
            ),
            (
                "INSERT INTO subscriptions (post_id, person_id, active, digest, created_at) "
                "VALUES (1, 2, 1, 'daily', :t)",
                {"t": long_ago},
            ),
        ]
        rows += [
            (
                "INSERT INTO comments (id, post_id, author_id, body, elided, source, created_at) "
                "VALUES (:id, 1, 1, :body, '', 'web', :t)",
                {
                    "id": number,
                    "body": f"day -{day}",
                    "t": at(midnight - timedelta(days=day) + timedelta(hours=12)),
                },
            )
            for number, day in enumerate((4, 3, 2, 1), start=1)
        ]
        # The older code's digest for three days ago, queued the next morning.
        rows.append(
            ("INSERT INTO outbound_emails (created_at, kind, message_id, recipient_id, recipient, "
             "raw, status, attempts, next_attempt_at) VALUES (:q, 'digest', :mid, 2, "
             "'fan@example.org', X'', 'sent', 1, :q)",
             {"q": at(sent_day + timedelta(days=1, hours=7)),
              "mid": f"<digest-daily-{sent_day:%Y%m%d}.to-2@{DOMAIN}>"})
        )  # fmt: skip
        with engine.begin() as connection:
            for statement, values in rows:
                connection.execute(text(statement), values)
        upgrade(engine)
        engine.dispose()
        settings = make_settings(tmp_path, REPLYD_DATABASE_URL=f"sqlite:///{tmp_path / 'old.db'}")
        parts = Components.build(settings)
        try:
            with parts.session_factory() as session:
                [subscription] = session.scalars(select(Subscription)).all()
            assert subscription.digest_through == 2
            assert subscription.digest_sent_at == sent_day + timedelta(days=1, hours=7)
            assert parts.digests().send(parts.session_factory, "daily") == 1
            with parts.session_factory() as session:
                raw = session.scalars(select(OutboundEmail.raw).where(OutboundEmail.id > 1)).one()
            assert b"day -2" in raw and b"day -1" in raw
            assert b"day -3" not in raw and b"day -4" not in raw
        finally:
            parts.engine.dispose()


class TestOnPostgres:
    @pytest.fixture
    def settings(self, tmp_path: Path, postgres_url: str) -> Settings:
        """Settings whose database is the run's (emptied) PostgreSQL database."""
        var_dir = tmp_path / "var"
        var_dir.mkdir()
        return make_settings(var_dir, REPLYD_DATABASE_URL=postgres_url)

    def test_a_comment_committed_after_a_newer_one_is_not_skipped(
        self, parts: Components, blog: Blog
    ) -> None:
        """Comment 1 is still being written when comment 2 commits: the digest run waits for
        it, instead of moving the watermark past it for good."""
        post = blog.post()
        takes_daily_digest(blog, post)
        writer = blog.person(READER)
        slow = parts.engine.connect()
        slow_transaction = slow.begin()
        slow.execute(
            Comment.__table__.insert().values(
                post_id=post, author_id=writer, body="slow one", elided="", source="web",
                created_at=utcnow(),
            )
        )  # fmt: skip
        with parts.session_factory.begin() as session:
            session.add(Comment(post_id=post, author_id=writer, body="quick one"))
        queued: list[int] = []
        run = threading.Thread(
            target=lambda: queued.append(parts.digests().send(parts.session_factory, "daily"))
        )
        run.start()
        try:

            def digest_waits() -> bool:
                with parts.engine.connect() as watcher:
                    return bool(
                        watcher.execute(
                            text(
                                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type "
                                "= 'Lock' AND query LIKE 'LOCK TABLE comments%'"
                            )
                        ).scalar()
                    )

            wait_for(digest_waits, what="the digest run to wait for the comment being written")
        finally:
            slow_transaction.commit()
            slow.close()
        run.join(30)
        assert queued == [1]
        with parts.session_factory() as session:
            [raw] = session.scalars(select(OutboundEmail.raw)).all()
        assert b"slow one" in raw and b"quick one" in raw
