"""The SMTP edge over a real connection: refusal codes, and 250 only once the mail is stored."""

from __future__ import annotations

import asyncio
import contextlib
import random
import smtplib
import socket
import sqlite3
import threading
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP
from alembic import command
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session

from service.identity.addresses import ReplyTarget
from service.inbound.protocol import ReplyProtocol
from service.inbound.queue import GroupCommit
from service.inbound.syntax import PLAIN_PATH
from service.runtime.components import Components
from service.store.engine import make_engine
from service.store.models import InboundEmail, utcnow
from service.store.schema import alembic_config
from tests.conftest import Blog, RunningServer, reply_message, send, wait_for

READER = "reader@example.org"


def inbound_count(blog: Blog) -> int:
    with blog.parts.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(InboundEmail)) or 0)


def database_file(server: RunningServer) -> str:
    return server.settings.database_url.removeprefix("sqlite:///")


def inbound_count_unlocked(server: RunningServer) -> int:
    """Stored inbound rows, read without waiting for a write lock someone holds."""
    uri = f"file:{database_file(server)}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM inbound_emails").fetchone()[0])


class TestRecipients:
    def test_valid_reply_address_is_accepted_and_stored_before_250(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """A valid reply gets 250 only once its raw bytes are committed: while the database's
        write lock is held elsewhere, no answer comes; once it is free, the 250 does, and the
        row is there."""
        address = blog.address(blog.post(), READER)
        other = blog.address(blog.post("other"), "other@example.org")
        raw = reply_message(READER, address, "Nice post")
        answers: list[object] = []

        def deliver() -> None:
            try:
                answers.append(send(server.port, READER, [address], raw))
            except smtplib.SMTPException as exc:
                answers.append(exc)

        lock = sqlite3.connect(database_file(server), isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")  # no one else can commit until it is released
            client = threading.Thread(target=deliver)
            client.start()
            # The message has been read and handed to the store (or answered, were the answer
            # sent before the commit): either way its DATA is over.
            wait_for(
                lambda: answers or server.server.handler.storing == 1,
                what="the end of DATA",
            )
            # Another session's whole transaction is served meanwhile, so the edge had every
            # chance to answer the first one, had it not been waiting for the commit.
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as probe:
                probe.ehlo()
                assert probe.mail("other@example.org")[0] == 250
                assert probe.rcpt(other)[0] == 250
                probe.rset()
            assert answers == [], "250 was answered before the message was committed"
            assert inbound_count_unlocked(server) == 0
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        client.join(30)
        assert answers == [{}]
        with blog.parts.session_factory() as session:
            row = session.scalars(select(InboundEmail)).one()
            assert row.raw == raw
            assert row.recipient == address
            assert row.sender == READER

    def test_foreign_domain_refused_at_rcpt(self, server: RunningServer) -> None:
        """An address outside our domain is refused with 550 5.1.1 before DATA."""
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.ehlo()
            client.mail(READER)
            code, text = client.rcpt("someone@elsewhere.org")
        assert code == 550
        assert text.startswith(b"5.1.1 ")
        assert b"only accepts replies" in text

    def test_tampered_token_refused_at_rcpt(self, server: RunningServer, blog: Blog) -> None:
        """A reply address with one character changed is refused with 550 5.1.1."""
        address = blog.address(blog.post(), READER)
        local, domain = address.split("@")
        tampered = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send(server.port, READER, [tampered], reply_message(READER, tampered, "hi"))
        code, text = refused.value.recipients[tampered]
        assert (code, text[:6]) == (550, b"5.1.1 ")
        assert b"not valid" in text
        assert inbound_count(blog) == 0

    def test_too_many_recipients(self, server: RunningServer, blog: Blog) -> None:
        """Recipients past the limit get 452 4.5.3; the ones before it are accepted."""
        post = blog.post()
        addresses = [
            blog.address(post, f"r{i}@example.org")
            for i in range(server.settings.max_recipients + 1)
        ]
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.ehlo()
            client.mail(READER)
            codes = [client.rcpt(a) for a in addresses]
        assert [c for c, _ in codes[:-1]] == [250] * server.settings.max_recipients
        assert codes[-1][0] == 452
        assert codes[-1][1].startswith(b"4.5.3")


class TestData:
    def test_store_failure_answers_451_and_recovers(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """When the store fails the sender gets 451 4.3.0, then 250 once it is back."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(READER, address, "Nice post")
        with sqlite3.connect(database_file(server)) as db:
            db.execute("ALTER TABLE inbound_emails RENAME TO inbound_emails_away")
        with pytest.raises(smtplib.SMTPDataError) as failed:
            send(server.port, READER, [address], raw)
        assert failed.value.smtp_code == 451
        assert failed.value.smtp_error.startswith(b"4.3.0 ")
        assert (
            b"Error" not in failed.value.smtp_error
            and b"sqlite" not in failed.value.smtp_error.lower()
        )
        with sqlite3.connect(database_file(server)) as db:
            db.execute("ALTER TABLE inbound_emails_away RENAME TO inbound_emails")
        assert send(server.port, READER, [address], raw) == {}
        assert inbound_count(blog) == 1

    def test_draining_server_refuses_new_mail_with_4xx(self, settings, blog: Blog) -> None:  # type: ignore[no-untyped-def]
        """While stop() drains (here: it waits for a commit held up by the write lock), a
        session that was already open gets 421 4.3.2 for a new transaction, so the sender
        retries elsewhere; the message being committed still gets its 250."""
        running = RunningServer(settings).start()
        address = blog.address(blog.post(), READER)
        outcome: dict[str, object] = {}

        def deliver() -> None:
            try:
                outcome["refused"] = send(
                    running.port, READER, [address], reply_message(READER, address, "Hi")
                )
            except smtplib.SMTPException as exc:
                outcome["error"] = exc

        lock = sqlite3.connect(database_file(running), isolation_level=None)
        stopper = threading.Thread(target=running.stop)
        client = threading.Thread(target=deliver)
        try:
            with smtplib.SMTP("127.0.0.1", running.port, timeout=10) as open_session:
                open_session.ehlo()
                lock.execute("BEGIN IMMEDIATE")  # the edge's commit now waits for this lock
                client.start()
                wait_for(lambda: running.server.handler.storing == 1, what="a commit to wait")
                stopper.start()
                # stop() has begun once the listener is closed (asked of the server, not by
                # connecting: a connection accepted as it closes would be left open).
                listener = running.server._server
                assert listener is not None
                wait_for(lambda: not listener.is_serving(), what="the listener to close")
                code, text = open_session.mail("late@example.org")
                assert (code, text[:6]) == (421, b"4.3.2 "), (code, text)
        finally:
            if lock.in_transaction:
                lock.execute("COMMIT")
            lock.close()
            client.join(30)
            if stopper.ident is None:
                running.stop()
            stopper.join(30)
        assert outcome == {"refused": {}}
        assert inbound_count(blog) == 1


class TestSizeLimit:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """A 2 KB limit, so a small test message is over it."""
        return {"REPLYD_MAX_MESSAGE_BYTES": "2048"}

    def test_oversized_message_refused_at_data(self, server: RunningServer, blog: Blog) -> None:
        """A message over REPLYD_MAX_MESSAGE_BYTES gets 552 5.3.4 and is not stored."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(READER, address, "x" * 5000)
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.ehlo()
            client.mail(READER)
            client.rcpt(address)
            code, text = client.data(raw)
        assert (code, text[:6]) == (552, b"5.3.4 ")
        assert inbound_count(blog) == 0

    def test_oversized_message_refused_at_mail_from_size(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """A client that announces SIZE= over the limit is refused before sending anything."""
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.ehlo()
            code, text = client.mail(READER, ["SIZE=999999"])
        assert (code, text[:6]) == (552, b"5.3.4 ")


class TestLmtp:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """LMTP, as behind Postfix, and a 4 KiB size limit."""
        return {"REPLYD_PROTOCOL": "lmtp", "REPLYD_MAX_MESSAGE_BYTES": "4096"}

    def test_lmtp_answers_once_per_recipient(self, server: RunningServer, blog: Blog) -> None:
        """Over LMTP each accepted recipient gets its own 250 after DATA (RFC 2033)."""
        post = blog.post()
        first, second = blog.address(post, READER), blog.address(post, "other@example.org")
        with smtplib.LMTP("127.0.0.1", server.port, timeout=10) as client:
            client.ehlo()  # LHLO on an LMTP client
            client.mail(READER)
            client.rcpt(first)
            client.rcpt(second)
            # smtplib reads only the first DATA reply; LMTP sends one more per recipient.
            replies = [client.data(reply_message(READER, first, "Hi"))[0], client.getreply()[0]]
            assert client.noop()[0] == 250  # and no third reply: the next one is the NOOP's
        assert replies == [250, 250]
        assert inbound_count(blog) == 2

    def test_store_failure_answers_451_once_per_recipient(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """When storing fails, each of three recipients gets its own 451 4.3.0, so an MTA in
        front need not wait for the missing ones and send the message again."""
        post = blog.post()
        addresses = [blog.address(post, f"r{n}@example.org") for n in range(3)]
        with sqlite3.connect(database_file(server)) as db:
            db.execute("ALTER TABLE inbound_emails RENAME TO inbound_emails_away")
        with smtplib.LMTP("127.0.0.1", server.port, timeout=10) as client:
            client.ehlo()
            client.mail(READER)
            for address in addresses:
                client.rcpt(address)
            replies = [client.data(reply_message(READER, addresses[0], "Hi"))]
            replies += [client.getreply() for _ in addresses[1:]]
            assert client.noop()[0] == 250
        assert [(code, text[:6]) for code, text in replies] == [(451, b"4.3.0 ")] * 3

    def test_too_big_answers_552_once_per_recipient_and_hangs_up(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """A message over the size limit gets 552 5.3.4 once per recipient, then the server
        closes the connection (it reads no more of it)."""
        post = blog.post()
        addresses = [blog.address(post, f"r{n}@example.org") for n in range(2)]
        with smtplib.LMTP("127.0.0.1", server.port, timeout=10) as client:
            client.ehlo()
            client.mail(READER)
            for address in addresses:
                client.rcpt(address)
            replies = [client.data(reply_message(READER, addresses[0], "x" * 8000))]
            replies.append(client.getreply())
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.noop()
        assert [(code, text[:6]) for code, text in replies] == [(552, b"5.3.4 ")] * 2
        assert inbound_count(blog) == 0

    def test_a_repeated_recipient_is_answered_twice_and_stored_once(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """RCPT of one address twice (its case changed): two 250s after DATA, one stored row."""
        address = blog.address(blog.post(), READER)
        with smtplib.LMTP("127.0.0.1", server.port, timeout=10) as client:
            client.ehlo()
            client.mail(READER)
            client.rcpt(address)
            client.rcpt(address.upper())
            replies = [client.data(reply_message(READER, address, "Hi"))[0], client.getreply()[0]]
            assert client.noop()[0] == 250
        assert replies == [250, 250]
        assert inbound_count(blog) == 1

    def test_an_smtp_client_on_the_lmtp_listener_gets_smtp(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """EHLO on the LMTP listener (whose greeting says LMTP): one reply after DATA for two
        recipients, as SMTP has it."""
        post = blog.post()
        first, second = blog.address(post, READER), blog.address(post, "other@example.org")
        with smtplib.SMTP(timeout=10) as client:
            assert client.connect("127.0.0.1", server.port) == (
                220,
                b"replies.example.org LMTP replyd",
            )
            client.ehlo()
            client.mail(READER)
            client.rcpt(first)
            client.rcpt(second)
            assert client.data(reply_message(READER, first, "Hi"))[0] == 250
            assert client.noop() == (250, b"OK")
        assert inbound_count(blog) == 2


class TestOnePort:
    def test_greetings_choose_the_protocol(self, server: RunningServer, blog: Blog) -> None:
        """On the SMTP listener (REPLYD_PROTOCOL=smtp) a client saying LHLO gets LMTP: one
        reply per recipient after DATA; one saying EHLO gets SMTP."""
        post = blog.post()
        first, second = blog.address(post, READER), blog.address(post, "other@example.org")
        with smtplib.LMTP("127.0.0.1", server.port, timeout=10) as client:
            code, _ = client.ehlo()
            assert code == 250
            client.mail(READER)
            client.rcpt(first)
            client.rcpt(second)
            replies = [client.data(reply_message(READER, first, "Hi"))[0], client.getreply()[0]]
            assert client.noop() == (250, b"OK")
        assert replies == [250, 250]
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.ehlo()
            client.mail(READER)
            client.rcpt(first)
            client.rcpt(second)
            assert client.data(reply_message(READER, first, "Hi again"))[0] == 250
            assert client.noop() == (250, b"OK")

    def test_the_greeting_names_the_protocol_set(self, server: RunningServer) -> None:
        """The 220 greeting says ESMTP on an SMTP listener."""
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            greeting = sock.makefile("rb").readline()
        assert greeting.startswith(b"220 replies.example.org ESMTP"), greeting


class TestReplyTexts:
    def test_the_250_says_what_happens_to_the_message(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """A DSN to a bounce address is answered "bounce recorded", mail to an unsubscribe
        address "no more mail about this post", a reply "appear as a comment"."""
        post = blog.post()
        book, keyring = blog.parts.book, blog.parts.keyring
        target = ReplyTarget(post, None, blog.person(READER))
        cases = {
            book.bounce_address(1, target.person_id, keyring): b"bounce recorded",
            book.unsubscribe_address(target, keyring): b"no more mail about this post",
            book.reply_address(target, keyring): b"will appear as a comment shortly",
        }
        for address, meaning in cases.items():
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
                client.ehlo()
                client.mail("" if address.startswith("bounces") else READER)
                assert client.rcpt(address)[0] == 250
                code, text = client.data(reply_message(READER, address, "Whatever"))
            assert code == 250 and text.startswith(b"2.0.0 ") and meaning in text, text


def database_bytes(server: RunningServer) -> int:
    """The size of the SQLite database, its write-ahead log folded in first."""
    with sqlite3.connect(database_file(server)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        return int(pages * db.execute("PRAGMA page_size").fetchone()[0])


class TestOneCopy:
    def test_a_message_is_stored_once_whatever_its_recipients(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """A 1 MiB message to one reply address given ten times adds about 1 MiB to the
        database (one row); to ten different reply addresses, ten rows and again about 1 MiB."""
        post = blog.post()
        body = "\n".join(
            f"Line {n} of a long reply, to make the message weigh 1 MiB." for n in range(17_200)
        )
        same = [blog.address(post, READER)] * 10
        others = [blog.address(post, f"r{n}@example.org") for n in range(10)]
        for recipients in (same, others):
            raw = reply_message(READER, recipients[0], body)
            assert 1024 * 1024 <= len(raw) < 1.1 * 1024 * 1024
            before = database_bytes(server)
            assert send(server.port, READER, recipients, raw) == {}
            grown = database_bytes(server) - before
            assert grown < 1.3 * len(raw), f"{grown} bytes for a message of {len(raw)}"
        with blog.parts.session_factory() as session:
            rows = list(session.scalars(select(InboundEmail).order_by(InboundEmail.id)))
        assert [row.recipient for row in rows] == [same[0].lower()] + [a.lower() for a in others]
        assert (
            len({row.source_id for row in rows[1:]}) == 1 and rows[0].source_id != rows[1].source_id
        )
        assert all(row.raw.startswith(b"From: ") for row in rows)


class TestOneCopyMigration:
    """Migration 0005c moves raw bytes into inbound_sources: mail stored before keeps them,
    new mail gets fresh ids, and the downgrade gives every row its own copy again."""

    def test_on_sqlite(self, tmp_path: Path) -> None:
        """On a fresh SQLite file taken to 0004 first."""
        engine = make_engine(f"sqlite:///{tmp_path / 'replyd.db'}")
        command.upgrade(alembic_config(engine), "0004")
        move_and_back(engine)

    def test_on_postgresql(self, postgres_url: str) -> None:
        """On PostgreSQL (where the id sequence must go on after the ids carried over)."""
        engine = make_engine(postgres_url)
        command.downgrade(alembic_config(engine), "0004")
        move_and_back(engine)


def move_and_back(engine: Engine) -> None:
    """Store two rows at 0004, upgrade, store a message to two recipients, downgrade, upgrade."""
    config = alembic_config(engine)
    try:
        with engine.begin() as connection:
            for raw in (b"first", b"second"):
                connection.execute(
                    text(
                        "INSERT INTO inbound_emails (received_at, raw, sha256, sender, "
                        "recipient, status, attempts, updated_at) VALUES (:now, :raw, 'x', "
                        "'s@example.org', 'r@example.org', 'processed', 0, :now)"
                    ),
                    {"raw": raw, "now": utcnow()},
                )
            first, second = connection.execute(
                text("SELECT id FROM inbound_emails ORDER BY id")
            ).scalars()
        command.upgrade(config, "head")
        new = asyncio.run(GroupCommit(engine)(b"new", "s@example.org", ["a@x.org", "b@x.org"]))
        with Session(engine) as session:
            raws = {row.id: row.raw for row in session.scalars(select(InboundEmail))}
        assert raws == {first: b"first", second: b"second", new[0]: b"new", new[1]: b"new"}
        command.downgrade(config, "0004")
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, raw FROM inbound_emails ORDER BY id"))
            assert {row.id: bytes(row.raw) for row in rows} == raws
    finally:
        command.upgrade(config, "head")
        engine.dispose()


class TestDrain:
    def test_stop_waits_for_a_commit_in_progress(self, settings, blog: Blog) -> None:  # type: ignore[no-untyped-def]
        """A message being stored when shutdown starts still gets its 250, and is kept."""
        running = RunningServer(settings).start()
        address = blog.address(blog.post(), READER)
        lock = sqlite3.connect(
            settings.database_url.removeprefix("sqlite:///"), isolation_level=None
        )
        lock.execute("BEGIN IMMEDIATE")  # the edge's commit now waits for this lock
        outcome: dict[str, object] = {}

        def deliver() -> None:
            try:
                outcome["refused"] = send(
                    running.port, READER, [address], reply_message(READER, address, "Hi")
                )
            except smtplib.SMTPException as exc:
                outcome["error"] = exc

        client = threading.Thread(target=deliver)
        client.start()
        wait_for(lambda: running.server.handler.storing == 1, what="the DATA commit to start")
        stopper = threading.Thread(target=running.stop)
        stopper.start()
        # stop() has begun once the listener is closed; had it not waited for the commit, it
        # would close the event loop under it, and the sender would get no 250.
        listener = running.server._server
        assert listener is not None
        wait_for(lambda: not listener.is_serving(), what="the listener to close")
        lock.execute("COMMIT")
        lock.close()
        client.join(30)
        stopper.join(30)
        assert outcome == {"refused": {}}
        assert inbound_count(blog) == 1


class TestGroupCommit:
    def test_senders_waiting_together_share_a_commit(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """Eight sessions whose DATA ends while the database is busy each get their 250 once
        stored, from at most two commits (the first one's, then one for the seven behind it)."""
        commits: list[object] = []
        event.listen(server.server._edge_engine, "commit", commits.append)
        post = blog.post()
        readers = [f"reader{n}@example.org" for n in range(8)]
        addresses = {reader: blog.address(post, reader) for reader in readers}
        answers: dict[str, object] = {}

        def deliver(reader: str) -> None:
            address = addresses[reader]
            try:
                answers[reader] = send(
                    server.port, reader, [address], reply_message(reader, address, "Hi")
                )
            except smtplib.SMTPException as exc:
                answers[reader] = exc

        lock = sqlite3.connect(database_file(server), isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the edge's commits wait for this lock
        clients = [threading.Thread(target=deliver, args=(reader,)) for reader in readers]
        for client in clients:
            client.start()
        wait_for(lambda: server.server.handler.storing == 8, what="all eight DATA commits")
        assert not answers  # no 250 before the commit
        lock.execute("COMMIT")
        lock.close()
        for client in clients:
            client.join(30)
        assert answers == {reader: {} for reader in readers}
        assert inbound_count(blog) == 8
        assert 1 <= len(commits) <= 2

    def test_a_refused_message_costs_the_others_in_its_commit_nothing(
        self, parts: Components
    ) -> None:
        """Three messages share a commit and the database refuses one: the other two are
        stored one by one, and only the refused one's sender hears of an error."""
        with parts.engine.begin() as connection:
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse_bad BEFORE INSERT ON inbound_emails "
                "WHEN NEW.sender = 'bad@example.org' "
                "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
            )
        commit = GroupCommit(parts.engine)
        senders = ["good@example.org", "bad@example.org", "fine@example.org"]

        async def store_all() -> list[object]:
            calls = [commit(b"Subject: hi\r\n\r\nhi\r\n", s, ["r@x.example"]) for s in senders]
            return await asyncio.gather(*calls, return_exceptions=True)

        good, bad, fine = asyncio.run(store_all())
        assert isinstance(good, list) and isinstance(fine, list)
        assert isinstance(bad, Exception) and "refused for the test" in str(bad)
        with parts.session_factory() as session:
            stored = session.scalars(select(InboundEmail.sender).order_by(InboundEmail.id))
            assert list(stored) == ["good@example.org", "fine@example.org"]

    def test_each_caller_gets_the_ids_of_its_own_rows(self, parts: Components) -> None:
        """Twenty messages of one to three recipients committed together: the ids each
        caller gets name rows with its own sender, recipients and bytes."""
        commit = GroupCommit(parts.engine)
        letters = [
            (f"Subject: {n}\r\n\r\nReply {n}\r\n".encode(), f"s{n}@example.org", n % 3 + 1)
            for n in range(20)
        ]

        async def store_all() -> list[list[int]]:
            return await asyncio.gather(
                *(
                    commit(raw, sender, [f"r{k}.{sender}" for k in range(count)])
                    for raw, sender, count in letters
                )
            )

        stored = asyncio.run(store_all())
        with parts.session_factory() as session:
            for (raw, sender, count), ids in zip(letters, stored, strict=True):
                rows = [session.get(InboundEmail, row_id) for row_id in ids]
                assert [(r.sender, r.recipient, r.raw) for r in rows if r] == [
                    (sender, f"r{k}.{sender}", raw) for k in range(count)
                ]


class TestPaths:
    """MAIL and RCPT paths: the usual <local@domain> is read by a regular expression, and
    whatever it reads must be what aiosmtpd's full RFC 5322 parser reads."""

    # Characters of plain paths, and ones that make a path odd: quotes, comments, controls.
    PIECES = (*"aB.+-_\"'( )\\[]~{1\t=;,:@<>", "é", "\x0b", "\r", "\n", "\x00", "\xa0")

    def paths(self, seed: int, count: int) -> list[str]:
        """Paths near the plain form, each with a few random characters in it."""
        chance = random.Random(seed)

        def piece(longest: int) -> str:
            return "".join(chance.choice(self.PIECES) for _ in range(chance.randint(0, longest)))

        made = []
        for _ in range(count):
            local = chance.choice(["ab.c", "r+t0k3n", "x", piece(4)])
            domain = chance.choice(["replies.example.org", "a-b.c", "x", piece(4)])
            made.append(f"{chance.choice(['<', '', ' <'])}{local}@{domain}>{piece(6)}")
        return made

    @staticmethod
    def read(server: SMTP, path: str) -> object:
        """What the server's path parser gives, or the kind of error it raises."""
        try:
            return server._getaddr(path)
        except Exception as error:  # aiosmtpd's parser trips on some odd paths
            return type(error)

    @pytest.mark.parametrize("limit", [0, 5])
    def test_read_as_aiosmtpd_reads_them(self, limit: int) -> None:
        """Every path, plain or odd, gives the same address and parameters as aiosmtpd's
        own parser, with and without a local-part limit; and the plain ones take the fast way."""
        # A loop of the test's own, closed below: without one aiosmtpd makes one and leaves it
        # open for garbage collection to warn about in whichever test runs then.
        loop = asyncio.new_event_loop()
        try:
            self.compare(loop, limit)
        finally:
            loop.close()

    def compare(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        """The comparison of test_read_as_aiosmtpd_reads_them, on protocols bound to `loop`."""
        ours = ReplyProtocol(object(), hostname="x", loop=loop)
        theirs = SMTP(object(), hostname="x", loop=loop)
        ours.local_part_limit = theirs.local_part_limit = limit
        fixed = [
            "<reader@example.org>",
            "<reader@example.org> SIZE=1000 BODY=8BITMIME",
            "<r+tok.en_1/x=y@replies.example.org> NOTIFY=NEVER",
            "<reader@example.org>\n",
            "<reader@example.org> \t SIZE=1",
            "<reader@example.org> (comment) SIZE=1",
            '<"quoted local"@example.org>',
            "<reader@[192.0.2.1]>",
            "<@relay.example:reader@example.org>",
            "<>",
            "reader@example.org",
            "< reader@example.org >",
            "<a..b@example.org>",
            "<reader@example.org.>",
        ]
        plain = 0
        for path in fixed + self.paths(seed=limit, count=20000):
            plain += PLAIN_PATH.match(path) is not None
            assert self.read(ours, path) == self.read(theirs, path), repr(path)
        assert plain > 300  # the fast way is taken: without it this test would prove nothing
        loop.close()

    def test_plain_path_with_parameters_over_smtp(self, server: RunningServer) -> None:
        """A real client's MAIL with parameters reaches the parameter checks: SIZE is read."""
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.ehlo()
            assert client.mail(READER, ["SIZE=1000"])[0] == 250
            client.rset()
            assert client.mail(READER, ["NOSUCHPARAM=1"])[0] == 555
            client.rset()
            code, text = client.docmd("MAIL", "FROM:<reader@example..org>")  # the full parser
            assert (code, text[:6]) == (553, b"5.1.3 ")
