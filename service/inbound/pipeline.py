"""Records prepared inbound mail in batches: each message to exactly one terminal state."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.identity.addresses import AddressKind
from service.inbound.decide import Decider
from service.inbound.outcome import Outcome, failure, ignored
from service.inbound.prepare import Prepared, Preparer
from service.inbound.queue import ClaimedMail, finish_many, held_mail
from service.moderation.blocks import Blocklist
from service.moderation.intake import Intake
from service.outbound.audience import Audience
from service.outbound.notices import RejectionNotices
from service.outbound.notify import PEOPLE_BY_ID, POSTS_BY_ID, Notifier
from service.store.engine import Deferred
from service.store.models import Comment, InboundEmail, InboundStatus, Person, Post, ReasonCode

log = logging.getLogger(__name__)


class _Careful(Exception):
    """A message failed in a transaction without savepoints: record the batch again with them."""


@dataclass
class _Batch:
    """What the messages of a batch share, read once even when they take several commits."""

    published: dict[str, int]  # dedupe key -> comment, for the batch's keys and new comments
    audience: Audience  # who follows the posts replied to
    # Kept referenced: the session's identity map only holds objects someone else does.
    posts: list[Post]
    people: list[Person]
    blocks: Blocklist  # the blocked senders among the batch's
    # Follows, names and notifications of the current commit, written just before it.
    later: Deferred = field(default_factory=Deferred)


# Statements run for every batch, built once with bound parameters (building and hashing a
# statement costs more than SQLite takes to run it).
_HELD = (
    select(InboundEmail.id)
    .where(
        InboundEmail.id.in_(bindparam("ids", expanding=True)),
        InboundEmail.status == InboundStatus.PROCESSING,
        InboundEmail.claimed_by == bindparam("worker"),
    )
    # Locked (PostgreSQL): a worker whose lease lapsed cannot finish a row while the worker
    # that took it over does; SQLite's write lock already serialises them.
    .with_for_update()
)
_PUBLISHED = select(Comment.dedupe_key, Comment.id).where(
    Comment.dedupe_key.in_(bindparam("keys", expanding=True))
)


class Pipeline:
    """parse → classify → extract (its Preparer) → route → store comment and notifications."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        preparer: Preparer,
        notifier: Notifier,
        notices: RejectionNotices,
        *,
        trust_authserv_id: str | None = None,
        yield_now: Callable[[], bool] = lambda: False,
        intake: Intake | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.preparer = preparer
        # Without an intake of its own, every reply is published at once (no moderation).
        self.decider = Decider(intake or Intake(notifier), trust_authserv_id=trust_authserv_id)
        self.notices = notices
        # Asked between messages: should the transaction end now, because someone whose
        # commit senders wait for (the SMTP edge on SQLite) wants the write lock?
        self.yield_now = yield_now

    def record_batch(self, prepared: list[Prepared], worker: str) -> list[Outcome | None]:
        """Record prepared messages; the outcome of each, None for a claim lost meanwhile.

        The outcomes are recorded in one commit (more when the SMTP edge waits for SQLite's
        lock, see `yield_now`). Should a message fail, or lose a race for its dedupe key, the
        transaction is done again with a savepoint per message, so that message is recorded
        as failed (or duplicate) without undoing the others; savepoints cost two statements
        per message, so they are only taken then.
        """
        outcomes: list[Outcome | None] = []  # of the messages already committed
        try:
            # One session for all the batch's commits: after letting the edge in, the next
            # transaction goes on with what the first one read (posts, people, followers)
            # instead of reading it again. Between them the edge only stores inbound mail; a
            # change from elsewhere (the web API, the CLI) shows from the next batch on, as
            # it does on PostgreSQL, where a batch is one transaction.
            with self.session_factory() as session:
                batch: _Batch | None = None
                while len(outcomes) < len(prepared):
                    todo = prepared[len(outcomes) :]
                    try:
                        with session.begin():
                            batch = batch or self._start(session, todo)
                            outcomes += self._record(session, todo, worker, batch, careful=False)
                    except _Careful:
                        # A message failed: again from the top, each in a savepoint of its
                        # own; what the batch had learnt in the undone transaction is read again.
                        with session.begin():
                            batch = self._start(session, todo)
                            outcomes += self._record(session, todo, worker, batch, careful=True)
            return outcomes
        except Exception as exc:
            rest = prepared[len(outcomes) :]
            if len(rest) == 1:
                log.exception("recording inbound #%s failed", rest[0].mail.id)
                return [*outcomes, self._fail_alone(rest[0].mail, worker, failure(exc))]
            # Something broke the batch's transaction: give each message left its own.
            log.warning("a batch of %s messages failed; recording them one by one", len(rest))
            return outcomes + [o for item in rest for o in self.record_batch([item], worker)]

    def _start(self, session: Session, prepared: list[Prepared]) -> _Batch:
        """Read what the batch's messages share: posts, people, followers, earlier copies."""
        posts, people = self._preload(session, prepared)
        published = self._already_published(session, prepared)
        senders = [item.mail.sender for item in prepared]
        senders += [item.message.from_address for item in prepared if item.message is not None]
        blocks = Blocklist.read(session, senders)
        return _Batch(published, Audience(session, posts), posts, people, blocks)

    def _record(
        self,
        session: Session,
        prepared: list[Prepared],
        worker: str,
        batch: _Batch,
        *,
        careful: bool,
    ) -> list[Outcome | None]:
        """Decide and store prepared messages in the caller's transaction, in order; it may
        stop early to let a waiting writer in, and returns the outcomes of those it did.
        `careful`: each message in a savepoint; otherwise the first failure raises _Careful."""
        ids = [item.mail.id for item in prepared]
        held = set(session.connection().execute(_HELD, {"ids": ids, "worker": worker}).scalars())
        outcomes: list[Outcome | None] = []
        for item in prepared:
            if outcomes and self.yield_now():
                break
            if item.mail.id not in held:
                outcomes.append(None)
                continue
            outcome = item.failed or self._record_one(session, item, batch, careful)
            outcomes.append(outcome)
        if not careful:
            try:
                batch.later.flush(session.connection())
            except Exception as exc:
                raise _Careful from exc
        finish_many(
            session,
            [
                (item.mail.id, outcome.status, outcome.reason, outcome.code)
                for item, outcome in zip(prepared, outcomes, strict=False)
                if outcome is not None
            ],
        )
        return outcomes

    def _preload(
        self, session: Session, prepared: list[Prepared]
    ) -> tuple[list[Post], list[Person]]:
        """Load the batch's posts and people in two queries, so each message finds them in the
        session instead of asking the database one row at a time."""
        targets = [
            item.address.target
            for item in prepared
            if item.address is not None
            and item.address.kind is AddressKind.REPLY
            and item.address.target is not None
        ]
        if not targets:
            return [], []
        posts = session.scalars(POSTS_BY_ID, {"ids": list({t.post_id for t in targets})})
        people = session.scalars(PEOPLE_BY_ID, {"ids": list({t.person_id for t in targets})})
        return list(posts), list(people)

    @staticmethod
    def _already_published(session: Session, prepared: list[Prepared]) -> dict[str, int]:
        """Dedupe keys of the batch that a comment already has, with its id (one query)."""
        keys = [item.key for item in prepared if item.key is not None]
        if not keys:
            return {}
        rows = session.connection().execute(_PUBLISHED, {"keys": keys})
        return {row.dedupe_key: row.id for row in rows}

    def _record_one(
        self, session: Session, item: Prepared, batch: _Batch, careful: bool
    ) -> Outcome:
        """One message's decision and its writes (in a savepoint of its own when `careful`);
        `batch` learns what this message publishes."""
        assert item.message is not None and item.key is not None
        message, mail = item.message, item.mail
        try:
            with session.begin_nested() if careful else contextlib.nullcontext():
                if item.ignore:
                    outcome = item.ignore
                else:
                    # Careful: each message's writes go into its own savepoint, at once.
                    outcome = self.decider.decide(
                        session,
                        item,
                        batch.audience,
                        batch.published,
                        None if careful else batch.later,
                        batch.blocks,
                    )
                if outcome.notice and outcome.code:
                    # Only ever to the From a token or our MTA proved (the Decider says when).
                    self.notices.queue(
                        session,
                        inbound_id=mail.id,
                        to=message.from_address,
                        code=outcome.code,
                        subject=message.subject,
                        in_reply_to=message.message_id,
                    )
            if outcome.comment_id is not None:
                batch.published[item.key] = outcome.comment_id  # a redelivery later on
            return outcome
        except Exception as exc:
            if not careful:
                raise _Careful from exc
            if isinstance(exc, IntegrityError):
                # Another worker published the same reply between our check and our insert.
                return ignored(ReasonCode.DUPLICATE, "duplicate of a reply already published")
            log.exception("processing inbound #%s failed", mail.id)
            return failure(exc)

    def _fail_alone(self, mail: ClaimedMail, worker: str, outcome: Outcome) -> Outcome | None:
        """Record a failure in a transaction of its own, when recording the outcome failed."""
        with self.session_factory.begin() as session:
            if held_mail(session, mail.id, worker) is None:
                return None
            finish_many(session, [(mail.id, outcome.status, outcome.reason, outcome.code)])
            return outcome
