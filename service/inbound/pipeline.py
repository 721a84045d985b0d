"""Takes one claimed inbound message to exactly one terminal state."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from service.extraction.extract import Extraction, extract_reply
from service.identity.addresses import AddressBook, AddressKind, Keyring, Recipient
from service.inbound.classify import auto_generated_reason, dmarc_failure
from service.inbound.parse import ParsedMessage, parse_message
from service.inbound.queue import MAX_ATTEMPTS, ClaimedMail, finish_many, held_mail
from service.inbound.route import route_reply
from service.outbound.audience import Audience
from service.outbound.bounces import read_bounce, record_bounce
from service.outbound.notices import RejectionNotices
from service.outbound.notify import PEOPLE_BY_ID, POSTS_BY_ID, Notifier
from service.store.engine import Deferred, execute_or_defer
from service.store.models import Comment, InboundEmail, InboundStatus, OutboundEmail, Person, Post
from service.store.subscriptions import unsubscribe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """Where a message ended: terminal status, reason, the comment it made, the refusal code."""

    status: InboundStatus
    reason: str | None = None
    comment_id: int | None = None
    code: str | None = None  # for rejections: which explanation the sender gets


def rejected(code: str, reason: str) -> Outcome:
    """A refusal after DATA, with the code of the notice the sender gets."""
    return Outcome(InboundStatus.REJECTED, reason, code=code)


class _Careful(Exception):
    """A message failed in a transaction without savepoints: record the batch again with them."""


def _failure(exc: Exception) -> Outcome:
    """The failed outcome for an exception, its reason bounded for the database."""
    return Outcome(InboundStatus.FAILED, f"{type(exc).__name__}: {exc}"[:2000])


@dataclass
class Prepared:
    """One claimed message after the CPU-heavy steps, ready to be decided in a transaction."""

    mail: ClaimedMail
    address: Recipient | None = None
    message: ParsedMessage | None = None
    ignore: str | None = None
    extraction: Extraction | None = None
    key: str | None = None
    failed: Outcome | None = None  # already decided: it could not be read, or crashed too often


@dataclass
class _Batch:
    """What the messages of a batch share, read once even when they take several commits."""

    published: dict[str, int]  # dedupe key -> comment, for the batch's keys and new comments
    audience: Audience  # who follows the posts replied to
    # Kept referenced: the session's identity map only holds objects someone else does.
    posts: list[Post]
    people: list[Person]
    # Follows, names and notifications of the current commit, written just before it.
    later: Deferred = field(default_factory=Deferred)


def dedupe_key(message_id: str | None, raw_sha256: str, sender: str, recipient: str) -> str:
    """Identity of a reply across redeliveries: Message-ID (or content), sender, reply address."""
    identity = message_id or f"sha256:{raw_sha256}"
    key = f"{identity}\0{sender.lower()}\0{recipient.lower()}"
    return hashlib.sha256(key.encode()).hexdigest()


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
_NAME = (
    update(Person)
    .where(Person.id == bindparam("person_id"))
    .values(display_name=bindparam("display_name"))
)


def name_person(session: Session, person: Person, name: str, later: Deferred | None = None) -> None:
    """Give a person the display name their mail carries, in the caller's transaction (with
    `later`, when it is flushed).

    An UPDATE through Core, with the loaded object told it is current: the session's
    unit-of-work flush would cost several times the statement, for most first replies.
    """
    execute_or_defer(session, _NAME, [{"person_id": person.id, "display_name": name}], later)
    set_committed_value(person, "display_name", name)


class Preparer:
    """The CPU-heavy part of processing a message, which needs no database: parse, classify,
    extract. It may run in another process than the recording (see service.runtime.preparing)."""

    def __init__(
        self,
        book: AddressBook,
        keyring: Keyring,
        *,
        own_addresses: Collection[str],
        quotes_only: bool = False,
    ) -> None:
        self.book = book
        self.keyring = keyring
        self.own_addresses = own_addresses
        self.quotes_only = quotes_only

    def prepare_all(self, mails: list[ClaimedMail]) -> list[Prepared]:
        """Each of the claimed messages prepared, in order."""
        return [self.prepare(mail) for mail in mails]

    def prepare(self, mail: ClaimedMail) -> Prepared:
        """Parse, classify and extract one claimed message; a failure becomes its outcome."""
        if mail.attempts > MAX_ATTEMPTS:
            reason = f"gave up after {mail.attempts - 1} attempts that never finished"
            return Prepared(mail, failed=Outcome(InboundStatus.FAILED, reason))
        try:
            address = self.book.recipient(mail.recipient, self.keyring)
            message = parse_message(mail.raw)
            ignore = None
            if address is None or address.kind is not AddressKind.BOUNCE:
                ignore = auto_generated_reason(message, mail.sender, self.own_addresses)
            extraction = None
            if ignore is None and (address is None or address.kind is AddressKind.REPLY):
                extraction = extract_reply(message.text, message.html, quotes_only=self.quotes_only)
            key = dedupe_key(message.message_id, mail.sha256, mail.sender, mail.recipient)
        except Exception as exc:
            log.exception("processing inbound #%s failed", mail.id)
            return Prepared(mail, failed=_failure(exc))
        return Prepared(mail, address, message, ignore, extraction, key)


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
    ) -> None:
        self.session_factory = session_factory
        self.preparer = preparer
        self.notifier = notifier
        self.notices = notices
        self.trust_authserv_id = trust_authserv_id
        # Asked between messages: should the transaction end now, because someone whose
        # commit senders wait for (the SMTP edge on SQLite) wants the write lock?
        self.yield_now = yield_now

    def process(self, inbound_id: int, worker: str) -> Outcome | None:
        """Process a row this worker claimed; None if the claim was lost to another worker."""
        with self.session_factory.begin() as session:
            mail = held_mail(session, inbound_id, worker)
        if mail is None:
            return None
        return self.process_batch([mail], worker)[0]

    def process_batch(self, mails: list[ClaimedMail], worker: str) -> list[Outcome | None]:
        """Process claimed rows; the outcome of each, None for a claim lost meanwhile.
        Parsing and extraction run first, outside any transaction (see `record_batch`)."""
        return self.record_batch(self.preparer.prepare_all(mails), worker)

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
                return [*outcomes, self._fail_alone(rest[0].mail, worker, _failure(exc))]
            # Something broke the batch's transaction: give each message left its own.
            log.warning("a batch of %s messages failed; recording them one by one", len(rest))
            return outcomes + [o for item in rest for o in self.record_batch([item], worker)]

    def _start(self, session: Session, prepared: list[Prepared]) -> _Batch:
        """Read what the batch's messages share: posts, people, followers, earlier copies."""
        posts, people = self._preload(session, prepared)
        published = self._already_published(session, prepared)
        return _Batch(published, Audience(session, posts), posts, people)

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
                (item.mail.id, outcome.status, outcome.reason)
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
                    outcome = Outcome(InboundStatus.IGNORED, item.ignore)
                else:
                    # Careful: each message's writes go into its own savepoint, at once.
                    outcome = self._decide(session, item, batch, None if careful else batch.later)
                if outcome.code:
                    self.notices.queue(
                        session,
                        inbound_id=mail.id,
                        to=message.from_address or mail.sender,
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
                return Outcome(InboundStatus.IGNORED, "duplicate of a reply already published")
            log.exception("processing inbound #%s failed", mail.id)
            return _failure(exc)

    def _fail_alone(self, mail: ClaimedMail, worker: str, outcome: Outcome) -> Outcome | None:
        """Record a failure in a transaction of its own, when recording the outcome failed."""
        with self.session_factory.begin() as session:
            if held_mail(session, mail.id, worker) is None:
                return None
            finish_many(session, [(mail.id, outcome.status, outcome.reason)])
            return outcome

    def _decide(
        self, session: Session, item: Prepared, batch: _Batch, later: Deferred | None
    ) -> Outcome:
        """What a (person-written, or bounce) message to one of our addresses leads to;
        `later` takes the writes of a published reply that can wait for the commit."""
        address = item.address
        if address is None:
            # Accepted at RCPT with a key since rotated out; route by threading instead.
            address = Recipient(AddressKind.REPLY)
        if later is not None and address.kind in (AddressKind.BOUNCE, AddressKind.UNSUBSCRIBE):
            # These change subscriptions and people, and the audience reads them again.
            later.flush(session.connection())
        if address.kind is AddressKind.BOUNCE:
            outcome = self._bounce(session, address, item.mail.raw)
            batch.audience.forget()  # the bounce may have suspended someone
            return outcome
        if address.kind is AddressKind.UNSUBSCRIBE:
            assert address.target is not None
            done = unsubscribe(session, address.target)
            batch.audience.forget()
            return Outcome(InboundStatus.IGNORED, f"unsubscribe request handled: {done}")
        if address.kind is AddressKind.DIGEST:
            return rejected(
                "digest", "reply to a digest's own address; the sender was told how to reply"
            )
        return self._publish(session, item, batch, later)

    def _bounce(self, session: Session, address: Recipient, raw: bytes) -> Outcome:
        """Count a bounce against the person the bounced message went to; never answer it."""
        sent = session.get(OutboundEmail, address.outbound_id)
        person = session.get(Person, address.person_id)
        if sent is None or person is None or sent.recipient_id != person.id:
            return Outcome(InboundStatus.IGNORED, "bounce for a message we have no record of")
        verdict = record_bounce(session, person, read_bounce(raw))
        return Outcome(InboundStatus.IGNORED, f"bounce of outbound #{sent.id}: {verdict}")

    def _publish(
        self, session: Session, item: Prepared, batch: _Batch, later: Deferred | None
    ) -> Outcome:
        """Decide whether the reply may be published; if so store it and queue its mail."""
        mail, message, extraction, key = item.mail, item.message, item.extraction, item.key
        assert message is not None and extraction is not None and key is not None
        if self.trust_authserv_id:
            forged = dmarc_failure(message, self.trust_authserv_id)
            if forged:
                # No notice: the From address is probably not the one who sent this.
                return Outcome(InboundStatus.REJECTED, forged)
        # The token was verified with the address; a reply without a valid one goes by threading.
        route = route_reply(session, item.address.target if item.address else None, message)
        if route.target is None:
            return rejected("no_route", route.reason)
        target = route.target
        post = session.get(Post, target.post_id)
        person = session.get(Person, target.person_id)
        if post is None or person is None:
            return rejected("gone", "the post or person this address names is gone")
        if message.from_address != person.email:
            return rejected(
                "sender_mismatch",
                f"sender mismatch: From <{message.from_address}> is not the person this reply "
                "address was issued to",
            )
        if post.closed:
            return rejected("closed", f"post {post.slug!r} is closed to comments")
        parent = None
        if target.comment_id is not None:
            parent = session.get(Comment, target.comment_id)
            if parent is None or parent.post_id != post.id:
                return rejected("gone", "the comment replied to no longer exists")
        if not extraction.reply.strip():
            return rejected(
                "empty",
                "empty reply: nothing was left after removing the quoted text and signature",
            )
        existing = batch.published.get(key)
        if existing is not None:
            return Outcome(
                InboundStatus.IGNORED, f"duplicate of the reply published as comment #{existing}"
            )
        if not person.display_name and message.from_name:
            name_person(session, person, message.from_name[:200], later)
        comment = Comment(
            post_id=post.id,
            parent_id=parent.id if parent else None,
            author_id=person.id,
            body=extraction.reply.strip(),
            elided=extraction.elided,
            source="email",
            inbound_email_id=mail.id,
            dedupe_key=key,
        )
        queued = self.notifier.publish(session, comment, post, person, batch.audience, later)
        log.info(
            "inbound #%s became comment #%s on %r (%s notifications)",
            mail.id,
            comment.id,
            post.slug,
            queued,
        )
        return Outcome(InboundStatus.PROCESSED, None, comment.id)
