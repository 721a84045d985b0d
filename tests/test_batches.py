"""Batches: a worker records many messages in one transaction, the outbox files many at once."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime
from pathlib import Path

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from service.identity.addresses import ReplyTarget
from service.inbound.outcome import Outcome
from service.inbound.queue import ClaimedMail, claim_mail, requeue
from service.outbound.compose import make_templates
from service.outbound.notify import Unrendered
from service.outbound.outbox import CLAIM_LIMIT, Outbox, Parcel, Renderer
from service.runtime.components import Components
from service.runtime.settings import Outbound
from service.runtime.workers import (
    BURST_GRACE_SECONDS,
    InboundLoad,
    inbound_loop,
    outbound_loop,
)
from service.store.engine import _waiting
from service.store.models import (
    Comment,
    InboundEmail,
    InboundStatus,
    OutboundEmail,
    OutboundStatus,
    Person,
    Subscription,
    utcnow,
)
from tests.conftest import Blog, reply_message
from tests.inbound_helpers import record, store_mail


@contextmanager
def counting_commits(components: Components) -> Iterator[list[int]]:
    """Count the commits on the components' engine while the block runs."""
    commits: list[int] = []

    def count(_connection: object) -> None:
        commits.append(1)

    event.listen(components.engine, "commit", count)
    try:
        yield commits
    finally:
        event.remove(components.engine, "commit", count)


@contextmanager
def counting_savepoints(components: Components) -> Iterator[list[str]]:
    """Collect the SAVEPOINT statements sent on the components' engine while the block runs."""
    savepoints: list[str] = []

    def watch(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("SAVEPOINT"):
            savepoints.append(statement)

    event.listen(components.engine, "before_cursor_execute", watch)
    try:
        yield savepoints
    finally:
        event.remove(components.engine, "before_cursor_execute", watch)


def store_replies(
    blog: Blog,
    posts: list[int],
    reader: str = "reader@example.org",
    bodies: list[str] | None = None,
) -> list[int]:
    """One reply from `reader` to each post, stored as the edge stores mail; the row ids."""
    ids = []
    for number, post in enumerate(posts):
        address = blog.address(post, reader)
        body = bodies[number] if bodies else f"Reply number {number}."
        raw = reply_message(reader, address, body)
        ids += store_mail(blog.parts, raw, reader, [address])
    return ids


def claim(parts: Components, count: int) -> list[ClaimedMail]:
    """Claim `count` rows in one claim, as a worker does."""
    batch = claim_mail(parts.session_factory, "batch-worker", count)
    assert len(batch) == count
    return batch


def process(parts: Components, batch: list[ClaimedMail]) -> list[Outcome | None]:
    """Prepare and record a claimed batch as the worker that claimed it."""
    return record(parts.pipeline(), batch, "batch-worker")


@contextmanager
def refusing_mail_about(parts: Components, word: str) -> Iterator[None]:
    """The database fails to queue mail about a comment containing `word`: a fault inside
    the batch's transaction, after the comment itself was written."""
    with parts.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse_mail BEFORE INSERT ON outbound_emails "
            "WHEN EXISTS (SELECT 1 FROM comments WHERE id = NEW.comment_id "
            f"AND body LIKE '%{word}%') "
            # Not RAISE(), which SQLite reports as a constraint, that is a duplicate to us.
            "BEGIN SELECT abs(-9223372036854775807 - 1); END"
        )
    try:
        yield
    finally:
        with parts.engine.begin() as connection:
            connection.exec_driver_sql("DROP TRIGGER refuse_mail")


def maildir_outbox(parts: Components, folder: Path, render: Renderer | None = None) -> Outbox:
    """An outbox delivering into the Maildir `folder`, writing notifications with `render`
    (the deployment's notifier unless given)."""
    return Outbox(
        parts.session_factory,
        Outbound(kind="maildir", path=folder),
        envelope_sender=parts.envelope_sender,
        max_attempts=5,
        render=render or parts.notifier().render_queued,
    )


def written_mail(parts: Components) -> list[bytes]:
    """The messages of all due mail, written as delivery writes them."""
    outbox = parts.outbox()
    ready, _over = outbox.write_messages(outbox.claim_due("reader", limit=1000))
    return [parcel.message for parcel in ready]


class TestOneTransactionPerBatch:
    def test_a_batch_is_recorded_in_one_commit(self, parts: Components, blog: Blog) -> None:
        """Three replies, three comments, their notifications: one commit records them all,
        and no savepoint is spent while nothing fails."""
        store_replies(blog, [blog.post(f"post-{n}") for n in range(3)])
        batch = claim(parts, 3)
        with counting_commits(parts) as commits, counting_savepoints(parts) as savepoints:
            outcomes = process(parts, batch)
        assert [o.status if o else None for o in outcomes] == [InboundStatus.PROCESSED] * 3
        assert len(commits) == 1
        assert savepoints == []
        with parts.session_factory() as session:
            assert session.scalar(select(func.count()).select_from(Comment)) == 3
            assert session.scalar(select(func.count()).select_from(OutboundEmail)) == 3

    def test_one_failing_message_does_not_undo_the_others(
        self, parts: Components, blog: Blog
    ) -> None:
        """A message whose notification cannot be queued fails alone, in the same commit.

        The database refuses one reply's mail after its comment was written. The batch is
        recorded again with a savepoint per message: that reply is undone to its savepoint
        and failed with the reason, while the replies before and after it are published, in
        one commit.
        """
        posts = [blog.post(f"post-{n}") for n in range(3)]
        ids = store_replies(blog, posts, bodies=["Fine.", "This one goes boom.", "Fine too."])
        batch = claim(parts, 3)
        with (
            refusing_mail_about(parts, "boom"),
            counting_commits(parts) as commits,
            counting_savepoints(parts) as savepoints,
        ):
            outcomes = process(parts, batch)
        assert [o.status if o else None for o in outcomes] == [
            InboundStatus.PROCESSED,
            InboundStatus.FAILED,
            InboundStatus.PROCESSED,
        ]
        assert len(commits) == 1
        assert len(savepoints) == 3
        with parts.session_factory() as session:
            failed = session.get(InboundEmail, ids[1])
            assert failed is not None and failed.status == InboundStatus.FAILED
            assert "integer overflow" in (failed.reason or "")
            commented = set(session.scalars(select(Comment.post_id)))
            assert commented == {posts[0], posts[2]}  # nothing left of the failed one
            assert session.scalar(select(func.count()).select_from(OutboundEmail)) == 2

    def test_a_follower_whose_address_cannot_be_written_is_skipped(
        self, parts: Components, blog: Blog
    ) -> None:
        """A stored address with a line break (or non-ASCII) gets no mail; the reply is still
        published and the thread's other followers are told."""
        post = blog.post("hello", author="evil@example.org\r\nBcc: victim@example.org")
        with parts.session_factory.begin() as session:
            for email in ("follower@example.org", "jürgen@example.org"):
                session.add(Subscription(post_id=post, person_id=blog.person(email)))
        store_replies(blog, [post])
        [outcome] = process(parts, claim(parts, 1))
        assert outcome is not None and outcome.status == InboundStatus.PROCESSED
        with parts.session_factory() as session:
            rows = list(session.scalars(select(OutboundEmail)))
        assert [row.recipient for row in rows] == ["follower@example.org"]
        [raw] = written_mail(parts)
        assert b"victim@example.org" not in raw


class TestWhoHearsWithinABatch:
    """Who follows a post is read once per batch and kept up to date as the batch publishes."""

    @staticmethod
    def recipients(parts: Components) -> list[tuple[str, str]]:
        with parts.session_factory() as session:
            rows = session.execute(
                select(Comment.body, OutboundEmail.recipient)
                .join(Comment, Comment.id == OutboundEmail.comment_id)
                .order_by(OutboundEmail.id)
            )
            return [(body, recipient) for body, recipient in rows]

    def test_who_follows_is_read_once_for_the_whole_batch(
        self, parts: Components, blog: Blog
    ) -> None:
        """Three replies to three posts: one query for the posts' subscriptions, not three."""
        store_replies(blog, [blog.post(f"post-{n}") for n in range(3)])
        batch = claim(parts, 3)
        reads: list[str] = []

        def watch(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            if statement.startswith("SELECT") and "subscriptions" in statement:
                reads.append(statement)

        event.listen(parts.engine, "before_cursor_execute", watch)
        try:
            outcomes = process(parts, batch)
        finally:
            event.remove(parts.engine, "before_cursor_execute", watch)
        assert [o.status if o else None for o in outcomes] == [InboundStatus.PROCESSED] * 3
        assert len(reads) == 1

    def test_a_reply_later_in_the_batch_is_mailed_to_who_replied_earlier_in_it(
        self, parts: Components, blog: Blog
    ) -> None:
        """The first replier follows the thread at once, so the second reply reaches them."""
        post = blog.post()
        store_replies(blog, [post], reader="first@example.org", bodies=["First."])
        store_replies(blog, [post], reader="second@example.org", bodies=["Second."])
        process(parts, claim(parts, 2))
        assert self.recipients(parts) == [
            ("First.", "author@example.org"),
            ("Second.", "author@example.org"),
            ("Second.", "first@example.org"),
        ]
        repliers = [blog.person("first@example.org"), blog.person("second@example.org")]
        with parts.session_factory() as session:
            followers = session.scalars(select(Subscription.person_id).order_by(Subscription.id))
            assert list(followers) == repliers  # each follows the thread once

    def test_an_unsubscribe_earlier_in_the_batch_holds_for_the_replies_after_it(
        self, parts: Components, blog: Blog
    ) -> None:
        """A follower's unsubscribe mail, then a reply to the same post, in one batch: the
        follower does not get that reply."""
        post = blog.post()
        fan = "fan@example.org"
        with parts.session_factory.begin() as session:
            session.add(Subscription(post_id=post, person_id=blog.person(fan)))
        mailto = parts.book.unsubscribe_address(
            ReplyTarget(post, None, blog.person(fan)), parts.keyring
        )
        raw = reply_message(fan, mailto, "unsubscribe", subject="unsubscribe")
        store_mail(parts, raw, fan, [mailto])
        store_replies(blog, [post], bodies=["After the unsubscribe."])
        outcomes = process(parts, claim(parts, 2))
        assert [o.status if o else None for o in outcomes] == [
            InboundStatus.IGNORED,
            InboundStatus.PROCESSED,
        ]
        assert self.recipients(parts) == [("After the unsubscribe.", "author@example.org")]

    def test_a_reply_that_failed_leaves_its_writer_out_of_the_thread(
        self, parts: Components, blog: Blog
    ) -> None:
        """A reply undone to its savepoint made no follower: the next one in the batch is
        mailed to the author only."""
        post = blog.post()
        store_replies(blog, [post], reader="first@example.org", bodies=["This goes boom."])
        store_replies(blog, [post], reader="second@example.org", bodies=["Fine."])
        with refusing_mail_about(parts, "boom"):
            outcomes = process(parts, claim(parts, 2))
        assert [o.status if o else None for o in outcomes] == [
            InboundStatus.FAILED,
            InboundStatus.PROCESSED,
        ]
        assert self.recipients(parts) == [("Fine.", "author@example.org")]


class TestWritesThatWaitForTheCommit:
    def test_follows_names_and_notifications_of_a_batch_take_one_statement_each(
        self, parts: Components, blog: Blog
    ) -> None:
        """Four first replies from four readers to four posts: one INSERT of follows, one
        UPDATE of names and one INSERT of notifications for all four, not four of each."""
        for number in range(4):
            reader = f"reader{number}@example.org"
            address = blog.address(blog.post(f"post-{number}"), reader)
            raw = reply_message(f"Reader {number} <{reader}>", address, f"Reply {number}.")
            store_mail(parts, raw, reader, [address])
        writes: list[str] = []

        def watch(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            for kind in ("INSERT INTO subscriptions", "UPDATE people", "INSERT INTO outbound"):
                if statement.startswith(kind):
                    writes.append(kind)

        event.listen(parts.engine, "before_cursor_execute", watch)
        try:
            outcomes = process(parts, claim(parts, 4))
        finally:
            event.remove(parts.engine, "before_cursor_execute", watch)
        assert [o.status if o else None for o in outcomes] == [InboundStatus.PROCESSED] * 4
        assert sorted(writes) == [
            "INSERT INTO outbound",
            "INSERT INTO subscriptions",
            "UPDATE people",
        ]
        with parts.session_factory() as session:
            names = session.scalars(select(Person.display_name).where(Person.email.like("reader%")))
            assert sorted(names) == [f"Reader {number}" for number in range(4)]
            assert session.scalar(select(func.count()).select_from(Subscription)) == 4
            assert session.scalar(select(func.count()).select_from(OutboundEmail)) == 4

    def test_an_unsubscribe_after_a_reply_in_the_batch_switches_the_thread_off(
        self, parts: Components, blog: Blog
    ) -> None:
        """A reader replies (and so follows the thread), then unsubscribes from it, in one
        batch: the follow is written before the unsubscribe reads it, so the thread ends
        switched off for them, without the batch having to be done again message by message."""
        post = blog.post()
        fan = "fan@example.org"
        store_replies(blog, [post], reader=fan, bodies=["First a reply."])
        mailto = parts.book.unsubscribe_address(
            ReplyTarget(post, None, blog.person(fan)), parts.keyring
        )
        raw = reply_message(fan, mailto, "unsubscribe", subject="unsubscribe")
        store_mail(parts, raw, fan, [mailto])
        with counting_savepoints(parts) as savepoints:
            outcomes = process(parts, claim(parts, 2))
        assert [o.status if o else None for o in outcomes] == [
            InboundStatus.PROCESSED,
            InboundStatus.IGNORED,
        ]
        assert savepoints == []
        with parts.session_factory() as session:
            following = session.scalars(
                select(Subscription.active).where(Subscription.person_id == blog.person(fan))
            )
            assert list(following) == [False]


class TestYieldingToTheEdge:
    def test_the_worker_commits_after_each_message_while_the_edge_waits(
        self, parts: Components, blog: Blog
    ) -> None:
        """While the SMTP edge waits for SQLite's write lock, a batch commits message by message."""
        store_replies(blog, [blog.post(f"post-{n}") for n in range(3)])
        database = parts.engine.url.database
        assert database is not None
        batch = claim(parts, 3)
        with _waiting(Path(f"{database}-urgent")), counting_commits(parts) as commits:
            outcomes = process(parts, batch)
        assert [o.status if o else None for o in outcomes] == [InboundStatus.PROCESSED] * 3
        assert len(commits) == 3

    def test_the_commits_of_one_batch_read_posts_and_followers_once(
        self, parts: Components, blog: Blog
    ) -> None:
        """Split into three commits for the edge, the batch still reads what it shares once,
        and what an earlier commit published still reaches the later replies' followers."""
        post = blog.post()
        store_replies(blog, [post], reader="first@example.org", bodies=["First."])
        store_replies(blog, [post], reader="second@example.org", bodies=["Second."])
        store_replies(blog, [post], reader="third@example.org", bodies=["Third."])
        database = parts.engine.url.database
        assert database is not None
        batch = claim(parts, 3)
        reads: list[str] = []

        def watch(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            if statement.startswith("SELECT") and (
                "FROM posts" in statement or "FROM subscriptions" in statement
            ):
                reads.append(statement)

        event.listen(parts.engine, "before_cursor_execute", watch)
        try:
            with _waiting(Path(f"{database}-urgent")), counting_commits(parts) as commits:
                outcomes = process(parts, batch)
        finally:
            event.remove(parts.engine, "before_cursor_execute", watch)
        assert [o.status if o else None for o in outcomes] == [InboundStatus.PROCESSED] * 3
        assert len(commits) == 3
        assert len(reads) == 2  # the posts once, their subscriptions once
        assert TestWhoHearsWithinABatch.recipients(parts) == [
            ("First.", "author@example.org"),
            ("Second.", "author@example.org"),
            ("Second.", "first@example.org"),
            ("Third.", "author@example.org"),
            ("Third.", "first@example.org"),
            ("Third.", "second@example.org"),
        ]
        with parts.session_factory() as session:
            assert session.scalar(select(func.count()).select_from(Comment)) == 3


class TestMaildirBatches:
    def test_a_batch_waits_while_the_maildir_cannot_be_written_then_goes_out(
        self, parts: Components, blog: Blog, tmp_path: Path
    ) -> None:
        """Filing a batch into an unwritable Maildir keeps every message queued, with the
        reason; once the folder can be made, the next attempt files them all, once each."""
        store_replies(blog, [blog.post(f"post-{n}") for n in range(3)])
        process(parts, claim(parts, 3))
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("a file where the outbox's parent folder should be")
        outbox = maildir_outbox(parts, blocker / "outbox")
        assert asyncio.run(outbox.run_once("sender")) == 3
        with parts.session_factory() as session:
            rows = list(session.scalars(select(OutboundEmail)))
            assert {row.status for row in rows} == {OutboundStatus.QUEUED}
            assert all("cannot write to the outbox Maildir" in (r.last_error or "") for r in rows)
            assert all(row.next_attempt_at > utcnow() for row in rows)  # backing off
        blocker.unlink()
        with parts.session_factory.begin() as session:
            session.execute(update(OutboundEmail).values(next_attempt_at=utcnow()))
        assert asyncio.run(outbox.run_once("sender")) == 3
        with parts.session_factory() as session:
            rows = list(session.scalars(select(OutboundEmail)))
            assert {row.status for row in rows} == {OutboundStatus.SENT}
            assert {row.attempts for row in rows} == {2}
        filed = sorted((blocker / "outbox" / "new").iterdir())
        assert len(filed) == 3
        ids = {message_from_bytes(path.read_bytes())["Message-ID"] for path in filed}
        assert ids == {row.message_id for row in rows}


class TestBrokenBatch:
    def test_when_the_batch_transaction_breaks_each_message_is_failed_with_the_reason(
        self, parts: Components, blog: Blog
    ) -> None:
        """A database fault that breaks the whole batch (here: the comments table is gone)
        still leaves every message in a terminal state with the error, replayable later."""
        ids = store_replies(blog, [blog.post(f"post-{n}") for n in range(2)])
        database = parts.engine.url.database
        assert database is not None
        parts.engine.dispose()  # no pooled connection keeps the old schema cached
        with sqlite3.connect(database) as db:
            db.execute("ALTER TABLE comments RENAME TO comments_away")
        outcomes = process(parts, claim(parts, 2))
        assert [o.status if o else None for o in outcomes] == [InboundStatus.FAILED] * 2
        assert all("comments" in (o.reason or "") for o in outcomes if o)
        parts.engine.dispose()
        with sqlite3.connect(database) as db:
            db.execute("ALTER TABLE comments_away RENAME TO comments")
        with parts.session_factory.begin() as session:
            assert requeue(session, ids) == 2
        outcomes = process(parts, claim(parts, 2))
        assert [o.status if o else None for o in outcomes] == [InboundStatus.PROCESSED] * 2


class LookingOutbox(Outbox):
    """A Maildir outbox that notes how many rows each of its claims took."""

    def __init__(self, parts: Components, folder: Path) -> None:
        super().__init__(
            parts.session_factory,
            Outbound(kind="maildir", path=folder),
            envelope_sender=parts.envelope_sender,
            max_attempts=5,
            render=parts.notifier().render_queued,
        )
        self.looks: list[int] = []

    def claim_due(
        self, worker: str, limit: int = CLAIM_LIMIT, *, held_back: timedelta = timedelta(0)
    ) -> list[Parcel]:
        """Claim as the outbox does, and note how many rows were taken."""
        claimed = super().claim_due(worker, limit, held_back=held_back)
        self.looks.append(len(claimed))
        return claimed


class TestDeliveryStandsBackForABurst:
    """While the worker publishes replies, fresh notifications wait (5 seconds at most)."""

    @staticmethod
    def filed(folder: Path) -> int:
        return len(list((folder / "new").iterdir())) if (folder / "new").exists() else 0

    @classmethod
    async def filed_within(cls, folder: Path, count: int, seconds: float = 5) -> int:
        """How many messages are in the Maildir once `count` are, or `seconds` have passed."""
        deadline = asyncio.get_running_loop().time() + seconds
        while cls.filed(folder) < count and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        return cls.filed(folder)

    @staticmethod
    def start_delivery(
        outbox: Outbox, load: InboundLoad
    ) -> tuple[asyncio.Task[None], asyncio.Event, asyncio.Event]:
        """The outbound loop, delivering through `outbox` beside `load`: (task, stopping,
        wakeup)."""
        stopping, wakeup = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            outbound_loop(outbox, "sender", wakeup=wakeup, stopping=stopping, inbound=load)
        )
        return task, stopping, wakeup

    def test_fresh_mail_waits_while_a_batch_is_in_hand_and_leaves_when_the_burst_ends(
        self, parts: Components, blog: Blog, tmp_path: Path
    ) -> None:
        store_replies(blog, [blog.post(f"post-{n}") for n in range(3)])
        process(parts, claim(parts, 3))
        folder = tmp_path / "outbox"
        load = InboundLoad()
        outbox = LookingOutbox(parts, folder)

        async def scenario() -> tuple[int, int]:
            with load.batch():  # the inbound loop works through a burst
                loop, stopping, wakeup = self.start_delivery(outbox, load)
                wakeup.set()
                # Three looks at the queue while the burst lasts: the mail was there to take.
                while len(outbox.looks) < 3 and not loop.done():
                    await asyncio.sleep(0.02)
                during = self.filed(folder)
            after = await self.filed_within(folder, 3)
            stopping.set()
            await loop
            return during, after

        during, after = asyncio.run(scenario())
        assert during == 0
        assert outbox.looks[:3] == [0, 0, 0]
        assert after == 3
        with parts.session_factory() as session:
            statuses = set(session.scalars(select(OutboundEmail.status)))
        assert statuses == {OutboundStatus.SENT}

    def test_mail_held_back_as_long_as_the_hold_leaves_even_during_a_burst(
        self, parts: Components, blog: Blog, tmp_path: Path
    ) -> None:
        """A steady stream of replies cannot starve delivery: mail due for the promised 5 s
        (and a second more) goes out while the worker is still busy; fresher mail keeps
        waiting, though the outbox looks at the queue again and again."""
        store_replies(blog, [blog.post(f"post-{n}") for n in range(3)])
        process(parts, claim(parts, 3))
        with parts.session_factory.begin() as session:
            old = list(session.scalars(select(OutboundEmail.id).order_by(OutboundEmail.id)))[:2]
            session.execute(
                update(OutboundEmail)
                .where(OutboundEmail.id.in_(old))
                .values(next_attempt_at=utcnow() - timedelta(seconds=5 + 1))
            )
        folder = tmp_path / "outbox"
        load = InboundLoad()
        outbox = LookingOutbox(parts, folder)

        async def scenario() -> tuple[int, int]:
            with load.batch():
                loop, stopping, _wakeup = self.start_delivery(outbox, load)
                # Sent within a few polls of the loop, not after the hold has run out.
                filed = await self.filed_within(folder, 2, seconds=3)
                # Two more looks at the queue after those: the third was there to be taken.
                looks = len(outbox.looks)
                while len(outbox.looks) < looks + 2 and not loop.done():
                    await asyncio.sleep(0.02)
                seen = self.filed(folder)
                stopping.set()
                await loop
            return filed, seen

        filed, seen = asyncio.run(scenario())
        assert (filed, seen) == (2, 2)
        assert outbox.looks[-1] == 0  # the last look found nothing due to take
        with parts.session_factory() as session:
            rows = dict(session.execute(select(OutboundEmail.id, OutboundEmail.status)).all())
        assert {rows[i] for i in old} == {OutboundStatus.SENT}
        assert [s for i, s in rows.items() if i not in old] == [OutboundStatus.QUEUED]

    def test_a_burst_lasts_while_batches_follow_each_other_closely(self) -> None:
        load = InboundLoad()
        assert not load.busy()
        with load.batch():
            assert load.busy()
        assert load.busy()  # the next batch is likely a moment away
        time.sleep(BURST_GRACE_SECONDS + 0.05)
        assert not load.busy()

    def test_the_inbound_loop_marks_its_batches(self, parts: Components, blog: Blog) -> None:
        store_replies(blog, [blog.post(f"post-{n}") for n in range(2)])
        load = InboundLoad()
        seen: list[bool] = []

        async def scenario() -> None:
            stopping = asyncio.Event()

            def published() -> None:
                seen.append(load.busy())  # right after the batch: still the same burst
                stopping.set()

            await inbound_loop(
                parts.pipeline(),
                parts.session_factory,
                "batch-worker",
                lease=timedelta(minutes=5),
                wakeup=asyncio.Event(),
                stopping=stopping,
                published=published,
                load=load,
            )

        asyncio.run(asyncio.wait_for(scenario(), 30))
        assert seen == [True]


class TestDisplayNames:
    def test_a_first_reply_names_its_writer_and_later_ones_keep_that_name(
        self, parts: Components, blog: Blog
    ) -> None:
        """The From name of someone's first reply becomes their name, in the database and in
        the notifications of that same batch; a later reply's different name changes nothing."""
        post = blog.post()
        address = blog.address(post, "joerg@example.org")
        for name, body in (("Jörg Müller", "First."), ("Somebody Else", "Second.")):
            raw = reply_message(f"{name} <joerg@example.org>", address, body)
            store_mail(parts, raw, "joerg@example.org", [address])
        process(parts, claim(parts, 2))
        with parts.session_factory() as session:
            person = session.scalar(select(Person).where(Person.email == "joerg@example.org"))
            assert person is not None
            assert person.display_name == "Jörg Müller"
        raws = written_mail(parts)
        senders = [str(message_from_bytes(raw, policy=policy.default)["From"]) for raw in raws]
        assert len(senders) == 2
        assert all(sender.startswith("Jörg Müller via ") for sender in senders)


class TestWrittenAtDelivery:
    """A notification is queued without its message, which delivery writes for each attempt."""

    def test_each_attempt_writes_the_same_message_from_the_stored_comment(
        self, parts: Components, blog: Blog, tmp_path: Path
    ) -> None:
        store_replies(blog, [blog.post()])
        process(parts, claim(parts, 1))
        notifier = parts.notifier()
        writes: list[int] = []

        def render(session: Session, queued: list[Unrendered]) -> dict[int, bytes | str]:
            writes.append(len(queued))
            return notifier.render_queued(session, queued)

        folder = tmp_path / "outbox"
        outbox = maildir_outbox(parts, folder, render)
        assert asyncio.run(outbox.run_once("sender")) == 1
        [first] = [path.read_bytes() for path in (folder / "new").iterdir()]
        mail = message_from_bytes(first, policy=policy.default)
        assert mail["To"].addresses[0].addr_spec == "author@example.org"
        assert "Reply number 0." in first.decode()
        with parts.session_factory.begin() as session:  # as if the relay lost it: again
            session.execute(
                update(OutboundEmail).values(status=OutboundStatus.QUEUED, next_attempt_at=utcnow())
            )
        assert asyncio.run(outbox.run_once("sender")) == 1
        files = [path.read_bytes() for path in (folder / "new").iterdir()]
        assert len(files) == 2 and first in files
        second = files[1] if files[0] == first else files[0]
        again = message_from_bytes(second, policy=policy.default)
        for field in ("Message-ID", "From", "To", "Subject", "Date", "Reply-To", "References"):
            assert again[field] == mail[field]
        for kind in ("plain", "html"):
            assert again.get_body((kind,)).get_content() == mail.get_body((kind,)).get_content()  # type: ignore[union-attr]
        assert writes == [1, 1]
        with parts.session_factory() as session:  # nothing rendered is stored
            assert list(session.scalars(select(OutboundEmail.raw))) == [None]

    def test_every_attempt_carries_the_same_date_a_stored_one(
        self, parts: Components, blog: Blog, tmp_path: Path
    ) -> None:
        """The Date of a notification is a stored time, not the time of the attempt: two
        attempts, even a day after the comment, carry the same Date."""
        store_replies(blog, [blog.post()])
        process(parts, claim(parts, 1))
        commented = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        queued = datetime(2026, 1, 2, 3, 4, 9, tzinfo=UTC)
        with parts.session_factory.begin() as session:
            session.execute(update(Comment).values(created_at=commented))
            session.execute(update(OutboundEmail).values(created_at=queued))
        folder = tmp_path / "outbox"
        outbox = maildir_outbox(parts, folder)
        dates = []
        for _attempt in range(2):
            with parts.session_factory.begin() as session:  # due (again: the relay lost it)
                session.execute(
                    update(OutboundEmail).values(
                        status=OutboundStatus.QUEUED, next_attempt_at=utcnow()
                    )
                )
            assert asyncio.run(outbox.run_once("sender")) == 1
            for path in (folder / "new").iterdir():
                dates.append(message_from_bytes(path.read_bytes())["Date"])
                path.unlink()
        assert len(dates) == 2 and dates[0] == dates[1]
        assert parsedate_to_datetime(dates[0]) in (commented, queued)

    def test_a_template_mistake_fails_the_notification_not_the_reply(
        self, parts: Components, blog: Blog, tmp_path: Path
    ) -> None:
        """The operator's template breaks for some comments: those replies are published all
        the same, and only their mail fails, with the reason; the rest goes out."""
        (tmp_path / "notification.txt").write_text(
            "{{ body }}\n{% if 'boom' in body %}{{ no_such_variable }}{% endif %}\n"
        )
        posts = [blog.post(f"post-{n}") for n in range(2)]
        store_replies(blog, posts, bodies=["This one goes boom.", "Fine."])
        outcomes = process(parts, claim(parts, 2))
        assert [o.status if o else None for o in outcomes] == [InboundStatus.PROCESSED] * 2
        notifier = parts.notifier()
        notifier.templates = make_templates(tmp_path)
        folder = tmp_path / "outbox"
        assert (
            asyncio.run(maildir_outbox(parts, folder, notifier.render_queued).run_once("sender"))
            == 2
        )
        with parts.session_factory() as session:
            rows = {row.post_id: row for row in session.scalars(select(OutboundEmail))}
        assert rows[posts[0]].status == OutboundStatus.FAILED
        assert "no_such_variable" in (rows[posts[0]].last_error or "")
        assert rows[posts[0]].raw is None
        assert rows[posts[1]].status == OutboundStatus.SENT
        assert len(list((folder / "new").iterdir())) == 1

    def test_mail_about_a_comment_removed_meanwhile_is_failed_not_sent(
        self, parts: Components, blog: Blog, tmp_path: Path
    ) -> None:
        store_replies(blog, [blog.post()])
        process(parts, claim(parts, 1))
        raw = parts.engine.raw_connection()  # an operator's hand in the database
        try:
            raw.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            raw.driver_connection.execute("DELETE FROM comments")  # type: ignore[union-attr]
            raw.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
        finally:
            raw.close()
        folder = tmp_path / "outbox"
        outbox = maildir_outbox(parts, folder)
        assert asyncio.run(outbox.run_once("sender")) == 1
        with parts.session_factory() as session:
            [row] = session.scalars(select(OutboundEmail))
        assert row.status == OutboundStatus.FAILED
        assert row.last_error == "the comment was deleted before its mail left"
        assert not (folder / "new").exists() or not list((folder / "new").iterdir())

    def test_writing_messages_leaves_the_write_lock_to_others(
        self, parts: Components, blog: Blog
    ) -> None:
        """While another writer (the SMTP edge, the worker) holds SQLite's write lock, the
        outbox still writes its messages: it only reads."""
        store_replies(blog, [blog.post()])
        process(parts, claim(parts, 1))
        outbox = parts.outbox()
        claimed = outbox.claim_due("sender")
        database = parts.engine.url.database
        assert database is not None
        holder = sqlite3.connect(database, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with ThreadPoolExecutor(1) as pool:
                writing = pool.submit(outbox.write_messages, claimed)
                try:
                    # A writer would wait for the lock (up to the 30 s busy timeout): it gets
                    # 2 s, then the lock is released so that it can end.
                    ready, over = writing.result(timeout=2)
                finally:
                    holder.execute("ROLLBACK")
        finally:
            holder.close()
        assert over == [] and len(ready) == 1 and b"Reply number 0." in ready[0].message
