"""Retention by default: old raw mail and notice records go, delivered mail is not kept."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from service.runtime.components import Components
from service.runtime.settings import Settings
from service.store.models import (
    InboundEmail,
    InboundStatus,
    OutboundEmail,
    OutboundStatus,
    RejectionNotice,
    utcnow,
)
from tests.conftest import (
    Blog,
    RunningServer,
    SinkHandler,
    make_settings,
    reply_message,
    send,
    wait_for,
)
from tests.test_cli import cli_env, run
from tests.test_reply_flow import outbound, requeued

READER = "reader@example.org"


def finished_mail(parts: Components, status: str, days_ago: float) -> int:
    """A stored inbound message that reached `status` that many days ago."""
    raw = reply_message(READER, "reply@x.example", f"{status} {days_ago}")
    when = utcnow() - timedelta(days=days_ago)
    with parts.session_factory.begin() as session:
        row = InboundEmail(
            raw=raw,
            sha256=hashlib.sha256(raw).hexdigest(),
            sender=READER,
            recipient="reply@x.example",
            status=status,
            received_at=when,
            finished_at=when,
        )
        session.add(row)
        session.flush()
        return row.id


def raw_kept(parts: Components, row_id: int) -> bool:
    with parts.session_factory() as session:
        row = session.get(InboundEmail, row_id)
        assert row is not None
        return row.raw != b"" and row.raw_purged_at is None


class TestDefaults:
    def test_raw_mail_is_kept_thirty_days_unless_set(self, tmp_path: Path) -> None:
        """REPLYD_RETENTION_DAYS is 30 when unset; 0 still means keep it."""
        assert make_settings(tmp_path).retention_days == 30
        assert make_settings(tmp_path, REPLYD_RETENTION_DAYS="0").retention_days == 0

    def test_serve_deletes_old_finished_mail_and_notices_by_default(
        self, settings: Settings, parts: Components
    ) -> None:
        """Without any setting, serve deletes the source of mail finished over 30 days ago
        and the record of old refusal notices; failed mail and recent mail keep theirs."""
        old = finished_mail(parts, InboundStatus.PROCESSED, 31)
        recent = finished_mail(parts, InboundStatus.REJECTED, 29)
        failed = finished_mail(parts, InboundStatus.FAILED, 31)
        with parts.session_factory.begin() as session:
            for days in (31, 0):
                day = (utcnow() - timedelta(days=days)).date()
                session.add(
                    RejectionNotice(
                        sender=READER, reason_code="closed", day=day, inbound_email_id=recent
                    )
                )
        running = RunningServer(settings).start()
        try:
            wait_for(lambda: not raw_kept(parts, old), what="retention to delete old raw mail")
        finally:
            running.stop()
        assert raw_kept(parts, recent) and raw_kept(parts, failed)
        with parts.session_factory() as session:
            days = session.scalars(select(RejectionNotice.day)).all()
        assert days == [utcnow().date()]

    def test_purge_gives_up_on_failed_mail_only_when_asked(
        self, settings: Settings, parts: Components
    ) -> None:
        """`replyd inbound purge` keeps failed mail's source; with --failed it goes too."""
        failed = finished_mail(parts, InboundStatus.FAILED, 3)
        env = cli_env(settings)
        run(env, "inbound", "purge", "--older-than", "1")
        assert raw_kept(parts, failed)
        result = run(env, "inbound", "purge", "--older-than", "1", "--failed")
        assert "1 message(s) failed or finished" in result.stdout
        assert not raw_kept(parts, failed)


class TestOutboundBodies:
    def test_a_message_is_kept_while_queued_and_dropped_once_delivered(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A refusal notice the relay put off keeps its message for the next try; once
        delivered, only the row's metadata stays."""
        closed = blog.post("shut", closed=True)
        address = blog.address(closed, READER)
        sink[0].answers.append("451 4.3.0 Try again later")
        send(server.port, READER, [address], reply_message(READER, address, "Too late?"))
        row = requeued(blog)
        assert row.kind == "rejection" and row.raw
        with blog.parts.session_factory.begin() as session:
            session.execute(
                update(OutboundEmail)
                .where(OutboundEmail.id == row.id)
                .values(next_attempt_at=utcnow() - timedelta(seconds=1))
            )
        server.server._outbound_wakeup.set()
        wait_for(lambda: sink[0].to(READER), what="the notice to be delivered")
        sent = wait_for(
            lambda: [o for o in outbound(blog) if o.status == OutboundStatus.SENT],
            what="the row to be recorded as sent",
        )
        assert sent[0].id == row.id and sent[0].raw is None and sent[0].recipient == READER

    def test_a_message_that_failed_for_good_is_not_kept(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A permanent refusal by the relay ends the attempts, and the message goes."""
        closed = blog.post("shut", closed=True)
        address = blog.address(closed, READER)
        sink[0].answers.append("550 5.1.1 No such user")
        send(server.port, READER, [address], reply_message(READER, address, "Too late?"))
        failed = wait_for(
            lambda: [o for o in outbound(blog) if o.status == OutboundStatus.FAILED],
            what="the notice to fail",
        )
        assert failed[0].raw is None and "550" in (failed[0].last_error or "")
