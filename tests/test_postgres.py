"""The reply flows and the claim machinery on a real PostgreSQL (REPLYD_TEST_POSTGRES_URL)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import func, select, text, update

from service.inbound.queue import claim_mail, requeue
from service.outbound.outbox import Outbox
from service.runtime.components import Components
from service.runtime.settings import Settings
from service.store.models import (
    Comment,
    InboundEmail,
    InboundStatus,
    OutboundEmail,
    OutboundStatus,
    utcnow,
)
from tests import test_reply_flow as flow
from tests.conftest import (
    Blog,
    RunningServer,
    SinkHandler,
    postgres_settings,
    reply_message,
    send,
)
from tests.inbound_helpers import record, store_mail
from tests.test_outbound_mail import news_for_daily_digests

READER = flow.READER
T = TypeVar("T")


@pytest.fixture
def settings(
    tmp_path: Path,
    postgres_url: str,
    sink: tuple[SinkHandler, int],
    settings_overrides: dict[str, str],
) -> Settings:
    """Settings whose database is the run's (emptied) PostgreSQL database."""
    return postgres_settings(tmp_path, postgres_url, sink, settings_overrides)


def all_at_once(count: int, work: Callable[[int], T]) -> list[T]:
    """Run work(0..count-1) in threads released together, so they really contend."""
    start = threading.Barrier(count)
    results: list[T | None] = [None] * count
    errors: list[BaseException] = []

    def run(number: int) -> None:
        start.wait()
        try:
            results[number] = work(number)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return [result for result in results if result is not None]


class TestPublishingOnPostgres(flow.TestPublishing):
    """Every publishing flow of test_reply_flow, with PostgreSQL as the store."""

    def test_restart_resumes_stored_and_abandoned_rows(self, settings, blog: Blog) -> None:  # type: ignore[no-untyped-def]
        """Rows stored while no worker ran, or claimed by a dead node, are finished on start."""
        address = blog.address(blog.post(), READER)
        factory = blog.parts.session_factory
        waiting = store_mail(
            blog.parts, reply_message(READER, address, "stored"), READER, [address]
        )
        abandoned = store_mail(
            blog.parts, reply_message(READER, address, "abandoned"), READER, [address]
        )
        with factory.begin() as session:
            session.execute(
                update(InboundEmail)
                .where(InboundEmail.id == abandoned[0])
                .values(
                    status=InboundStatus.PROCESSING,
                    claimed_by="dead-node",
                    lease_until=utcnow() - timedelta(minutes=1),
                )
            )
        running = RunningServer(settings).start()
        try:
            assert flow.final_row(blog, waiting[0]).status == InboundStatus.PROCESSED
            assert flow.final_row(blog, abandoned[0]).status == InboundStatus.PROCESSED
            assert sorted(c.body for c in flow.comments(blog)) == ["abandoned", "stored"]
        finally:
            running.stop()


class TestRefusalsOnPostgres(flow.TestRefusals):
    """Every refusal flow of test_reply_flow, with PostgreSQL as the store."""


class TestDeliveryOnPostgres(flow.TestDelivery):
    """Relay failures and retries, with PostgreSQL as the store."""


class TestFailureAndReplayOnPostgres:
    def test_failure_is_kept_and_replayable(self, server: RunningServer, blog: Blog) -> None:
        """A message whose processing crashes is failed with the error; retry publishes it."""
        address = blog.address(blog.post(), READER)
        engine = blog.parts.engine
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE comments RENAME TO comments_away"))
        try:
            send(server.port, READER, [address], reply_message(READER, address, "Worth keeping"))
            row = flow.final_row(blog)
        finally:
            with engine.begin() as connection:
                connection.execute(text("ALTER TABLE comments_away RENAME TO comments"))
        assert row.status == InboundStatus.FAILED
        assert "comments" in (row.reason or "")
        with blog.parts.session_factory.begin() as session:
            assert requeue(session, [row.id]) == 1
        assert flow.final_row(blog, row.id).status == InboundStatus.PROCESSED
        assert [c.body for c in flow.comments(blog)] == ["Worth keeping"]


class TestClaimsUnderConcurrency:
    def test_each_inbound_row_is_claimed_by_exactly_one_worker(
        self, parts: Components, blog: Blog
    ) -> None:
        """Eight workers claiming at once (FOR UPDATE SKIP LOCKED) share the rows, none twice."""
        address = blog.address(blog.post(), READER)
        stored = [
            store_mail(parts, reply_message(READER, address, f"n{n}"), READER, [address])[0]
            for n in range(60)
        ]

        def drain(number: int) -> list[int]:
            mine = []
            # A few rows per claim, as workers claim them (SKIP LOCKED passes over the
            # rows another worker's claim holds).
            while claimed := claim_mail(parts.session_factory, f"worker-{number}", 3):
                mine += [mail.id for mail in claimed]
            return mine

        claimed = [row_id for mine in all_at_once(8, drain) for row_id in mine]
        assert sorted(claimed) == sorted(stored)  # all claimed, and none by two workers
        with parts.session_factory() as session:
            owners = session.execute(
                select(InboundEmail.claimed_by, func.count()).group_by(InboundEmail.claimed_by)
            ).all()
        assert sum(count for _, count in owners) == len(stored)

    def test_lapsed_lease_passes_to_another_worker_and_the_first_cannot_finish(
        self, parts: Components, blog: Blog
    ) -> None:
        """A worker whose lease lapsed loses the row: the new claimant publishes it, once."""
        address = blog.address(blog.post(), READER)
        [row_id] = store_mail(parts, reply_message(READER, address, "once"), READER, [address])
        [slow] = claim_mail(parts.session_factory, "slow", 1, lease=timedelta(0))
        assert slow.id == row_id
        [fast] = claim_mail(parts.session_factory, "fast", 1)
        assert fast.id == row_id
        pipeline = parts.pipeline()
        assert record(pipeline, [slow], "slow") == [None]  # its claim is gone
        [outcome] = record(pipeline, [fast], "fast")
        assert outcome is not None and outcome.status == InboundStatus.PROCESSED
        with parts.session_factory() as session:
            assert session.scalar(select(func.count()).select_from(Comment)) == 1

    def test_each_outbound_row_is_claimed_by_exactly_one_sender(
        self, parts: Components, blog: Blog
    ) -> None:
        """Six outboxes claiming at once share the due mail, none claimed twice."""
        person = blog.person(READER)
        with parts.session_factory.begin() as session:
            session.add_all(
                OutboundEmail(
                    message_id=f"<n{n}@replies.example.org>",
                    recipient_id=person,
                    recipient=READER,
                    raw=b"Subject: x\r\n\r\nx\r\n",
                )
                for n in range(40)
            )
        outbox = Outbox(
            parts.session_factory,
            parts.settings.outbound,
            envelope_sender=lambda parcel: "",
            max_attempts=3,
            render=parts.notifier().render_queued,
        )

        def drain(number: int) -> list[int]:
            mine = []
            while parcels := outbox.claim_due(f"sender-{number}", limit=3):
                mine.extend(parcel.id for parcel in parcels)
            return mine

        claimed = [row_id for mine in all_at_once(6, drain) for row_id in mine]
        assert sorted(claimed) == list(range(1, 41))
        with parts.session_factory() as session:
            statuses = set(session.scalars(select(OutboundEmail.status)))
        assert statuses == {OutboundStatus.SENDING}

    def test_two_nodes_queue_each_digest_once(self, parts: Components, blog: Blog) -> None:
        """Two nodes running the same digest period at once queue one digest per subscriber."""
        emails = [f"fan{n}@example.org" for n in range(5)]
        news_for_daily_digests(blog, emails)
        fans = [blog.person(email) for email in emails]
        digests = [parts.digests(), parts.digests()]
        queued = all_at_once(2, lambda n: digests[n].send(parts.session_factory, "daily"))
        assert sum(queued) == len(fans)
        with parts.session_factory() as session:
            rows = session.scalars(
                select(OutboundEmail.recipient_id).where(OutboundEmail.kind == "digest")
            ).all()
        assert sorted(rows) == sorted(fans)
