"""Database tables: posts, people, subscriptions, comments, mail in and out, moderation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Now, timezone-aware; every timestamp replyd stores is UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Normalise to UTC before storing."""
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to naive values read from SQLite."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations get stable constraint names."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class InboundStatus(StrEnum):
    """Lifecycle of a stored inbound message; the last four are terminal."""

    RECEIVED = "received"
    PROCESSING = "processing"
    PROCESSED = "processed"
    IGNORED = "ignored"
    REJECTED = "rejected"
    FAILED = "failed"


class ReasonCode(StrEnum):
    """Why a message ended as it did, from a fixed set: what metrics and filters group by
    (the reason's text, which may quote the message, is for people to read)."""

    # rejected
    CLOSED = "closed"
    SENDER_MISMATCH = "sender_mismatch"
    EMPTY = "empty"
    GONE = "gone"
    NO_ROUTE = "no_route"
    DIGEST = "digest"
    DMARC_FAIL = "dmarc_fail"
    FROM_INVALID = "from_invalid"
    BLOCKED = "blocked"  # a sender the operator blocked (REPLYD moderation); never told
    TOO_LONG = "too_long"  # an emailed reply over MAX_COMMENT_CHARS
    EXPIRED = "expired"  # a reply to a web confirmation mail whose request has expired
    FORGOTTEN = "forgotten"  # a token of a person who asked to be forgotten; never told
    # ignored
    DUPLICATE = "duplicate"
    NULL_SENDER = "null_sender"
    SYSTEM_SENDER = "system_sender"
    OWN_ADDRESS = "own_address"
    AUTO_SUBMITTED = "auto_submitted"
    AUTO_REPLY = "auto_reply"  # autoresponder headers, subjects, Precedence
    REPORT = "report"  # multipart/report: delivery and disposition notifications
    BOUNCE = "bounce"
    UNSUBSCRIBE = "unsubscribe"
    CONFIRMED = "confirmed"  # a reply confirming a reader's follow request from the web
    ERASURE = "erasure"  # mail to forget@: a confirmation link goes to a known address
    # failed
    ERROR = "error"
    GAVE_UP = "gave_up"


class OutboundStatus(StrEnum):
    """Lifecycle of a queued outbound message; sent, failed and cancelled are terminal."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    # Not sent because, when its turn came, its comment had been hidden, deleted or held, or
    # the recipient no longer wanted it (unsubscribed, suspended after bounces); last_error
    # says which.
    CANCELLED = "cancelled"


class CommentStatus(StrEnum):
    """Where a comment stands with the blog's owner; only published comments reach anyone."""

    PUBLISHED = "published"
    HELD = "held"  # waiting for a moderator's approval
    HIDDEN = "hidden"  # removed by a moderator, kept and restorable
    DELETED = "deleted"  # removed for good: the row stays (answers hang under it), its text goes


class Person(Base):
    """Someone who writes or receives mail: an author, commenter or subscriber."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    display_name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Bounces add to the score, which halves with time (service.outbound.bounces); it was
    # this much at `bounce_scored_at`. At the threshold mail to them stops.
    bounce_score: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    bounce_scored_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Set when the person asked to be forgotten: the row stays as a tombstone (their tokens
    # name its id, which must never be given to someone else), holding no address or name.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None, index=True)


class Post(Base):
    """A blog post that comments attach to; `slug` is the id the blog chose."""

    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    url: Mapped[str] = mapped_column(String(2000))
    author_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    author: Mapped[Person] = relationship()


class Subscription(Base):
    """A person following a post; `active` False records an opt-out that commenting respects."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("post_id", "person_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    digest: Mapped[str | None] = mapped_column(String(16), default=None)  # None, daily, weekly
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The digest watermark: the comments of the post up to this id have been in a digest to
    # this person (or came before they chose one); None: none has yet, the whole thread is new.
    digest_through: Mapped[int | None] = mapped_column(Integer, default=None)
    # When a digest last went out for this subscription (or found nothing new).
    digest_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    person: Mapped[Person] = relationship()


class DigestBacklog(Base):
    """A comment published by approval that a digest subscription still owes its taker, even
    when the watermark passed its id while it was held; the next digest run that covers it
    takes the row (sending the comment if it is still published) and deletes it."""

    __tablename__ = "digest_backlog"
    __table_args__ = (UniqueConstraint("subscription_id", "comment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"))
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id"))


class InboundSource(Base):
    """The raw bytes of one received message, stored once however many recipients it had."""

    __tablename__ = "inbound_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class InboundEmail(Base):
    """One message as received for one envelope recipient: raw bytes first, parsed later."""

    __tablename__ = "inbound_emails"
    __table_args__ = (Index("ix_inbound_emails_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Indexed: `replyd ingest` counts a sender's recent mail against the rate limits.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # The message's bytes, shared by the rows of its other recipients (read as `raw`).
    source_id: Mapped[int] = mapped_column(ForeignKey("inbound_sources.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(String(998), default=None)
    sender: Mapped[str] = mapped_column(String(320))  # envelope MAIL FROM, "" for bounces
    recipient: Mapped[str] = mapped_column(String(320))  # the one envelope RCPT this row is for
    status: Mapped[str] = mapped_column(String(16), default=InboundStatus.RECEIVED)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    reason_code: Mapped[str | None] = mapped_column(String(32), default=None)  # a ReasonCode
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Set when retention deleted the raw bytes (raw is then empty); the row itself stays.
    raw_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The entrance it came through: smtp, lmtp, pipe, mailgun, postmark, sendgrid or relay.
    via: Mapped[str] = mapped_column(String(16), default="smtp", server_default="smtp")
    # The message as received, read from its source (a column of its own, stored once).
    raw: Mapped[bytes] = column_property(
        select(InboundSource.raw).where(InboundSource.id == source_id).scalar_subquery()
    )
    source: Mapped[InboundSource] = relationship()

    def __init__(self, *, raw: bytes | None = None, **fields: Any) -> None:
        """A row built by hand (tests, tools): `raw` becomes a source of its own. The edge
        inserts rows in bulk and shares one source between a message's recipients."""
        super().__init__(**fields)
        if raw is not None:
            self.source = InboundSource(raw=raw)


# The most a comment may hold, whether it came by mail or through the web.
MAX_COMMENT_CHARS = 50_000


class Comment(Base):
    """A comment and its moderation status; `elided` keeps what extraction cut (quote etc.)."""

    __tablename__ = "comments"
    # Trust under REPLYD_MODERATION=new asks whether a person has a published comment.
    __table_args__ = (Index("ix_comments_author_id_status", "author_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id"), default=None)
    author_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    body: Mapped[str] = mapped_column(Text)
    elided: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="email")
    inbound_email_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_emails.id"), unique=True, default=None
    )
    # sha256 of (Message-ID, sender, reply address): a redelivered reply hits this constraint.
    dedupe_key: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(
        String(16), default=CommentStatus.PUBLISHED, server_default=CommentStatus.PUBLISHED.value
    )
    # When it was first published (at once, or when approved): its followers were told then,
    # and digests count it from then. None while it has never been published.
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Where a comment brought over from another system (`replyd import`) came from, e.g.
    # "wordpress:https://blog.example.org:42": running the import again finds it here. Imported
    # comments make nobody a follower and go in no digest (None for every other comment).
    import_key: Mapped[str | None] = mapped_column(String(300), unique=True, default=None)

    author: Mapped[Person] = relationship()
    post: Mapped[Post] = relationship()


class OutboundEmail(Base):
    """One message to one recipient, queued in the same transaction as its cause; a
    notification has no raw message stored: delivery writes it from its comment."""

    __tablename__ = "outbound_emails"
    __table_args__ = (Index("ix_outbound_emails_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(32), default="notification")
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), default=None)
    recipient: Mapped[str] = mapped_column(String(320))
    # The thread a reply to this message belongs under (routing by In-Reply-To/References).
    post_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id"), default=None)
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id"), default=None)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=OutboundStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class RejectionNotice(Base):
    """One notice per sender, reason and day: refused replies are explained, not spammed."""

    __tablename__ = "rejection_notices"
    __table_args__ = (UniqueConstraint("sender", "reason_code", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender: Mapped[str] = mapped_column(String(320))
    reason_code: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    inbound_email_id: Mapped[int] = mapped_column(ForeignKey("inbound_emails.id"))
    # When it was queued: the hourly cap on all notices counts these.
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class AdminSession(Base):
    """An operator's login: the cookie holds a random id, the table only its sha256, so neither
    a database dump nor a log line opens the admin pages."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # What the admin forms must carry back (random per session): another site cannot know it.
    csrf: Mapped[str] = mapped_column(String(64))
    # Which API token the session was opened with: a new token ends every older session.
    token_tag: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class IdempotencyKey(Base):
    """A web comment request made with an Idempotency-Key, and the answer it got: a retry with
    the same key and body gets that answer again instead of a second comment."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    # sha256 of what was asked (path and body): the same key with another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class ModerationEvent(Base):
    """The moderation log: one row per change of a comment's status, and per block."""

    __tablename__ = "moderation_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    comment_id: Mapped[int | None] = mapped_column(
        ForeignKey("comments.id"), index=True, default=None
    )
    action: Mapped[str] = mapped_column(String(16))  # hold, approve, hide, restore, delete, ...
    from_status: Mapped[str | None] = mapped_column(String(16), default=None)
    to_status: Mapped[str | None] = mapped_column(String(16), default=None)
    actor: Mapped[str] = mapped_column(String(320))  # a moderator's address, or who ran it
    via: Mapped[str] = mapped_column(String(16))  # cli, api, admin, mail, inbound, web
    note: Mapped[str] = mapped_column(Text, default="")


class Block(Base):
    """A sender whose mail is refused silently: one address, or a domain and its subdomains."""

    __tablename__ = "blocks"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # email or domain
    value: Mapped[str] = mapped_column(String(320))  # lower-cased
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(320), default="")


class UsedModerationLink(Base):
    """A moderation link that has done its work: each one acts once."""

    __tablename__ = "used_moderation_links"
    __table_args__ = (UniqueConstraint("comment_id", "person_id", "action", "expires"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    action: Mapped[str] = mapped_column(String(16))
    expires: Mapped[int] = mapped_column(BigInteger)  # the link's expiry, seconds since the epoch
    used_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IngressToken(Base):
    """A signed webhook's one-time token (Mailgun's), kept while its timestamp is fresh, so
    the same signed request sent again is refused."""

    __tablename__ = "ingress_tokens"

    token: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class PendingComment(Base):
    """A comment a reader made on the blog without the operator's token, kept apart from the
    comments until its writer confirms their address (by link or by reply): until then no
    page, feed, API or mail shows it (invariants 7 and 9)."""

    __tablename__ = "pending_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id"), default=None)
    email: Mapped[str] = mapped_column(String(320))  # lower-cased, as people's are
    author_name: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text)
    # What the writer asked for on confirming: each, daily, weekly or none.
    follow: Mapped[str] = mapped_column(String(16), default="each")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, published
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id"), default=None)

    post: Mapped[Post] = relationship()


class FollowRequest(Base):
    """A reader asked on the blog to follow a post by email: it takes effect only once they
    confirm their address, and one address and post get at most one such mail an hour."""

    __tablename__ = "follow_requests"
    __table_args__ = (Index("ix_follow_requests_post_id_email", "post_id", "email"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"))
    email: Mapped[str] = mapped_column(String(320))
    digest: Mapped[str | None] = mapped_column(String(16), default=None)  # None, daily, weekly
    # Asked on this post's page to follow every new post on the blog, not this post.
    all_posts: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, confirmed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    post: Mapped[Post] = relationship()


class Suppression(Base):
    """An address that asked to be forgotten, kept only as a salted hash: replyd never mails
    it or subscribes it again unless the person asks anew."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeploymentSalt(Base):
    """Random values made once per deployment and shared by its nodes (the suppression
    list's salt), kept in the database so every node hashes alike."""

    __tablename__ = "deployment_salts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))


class FeedState(Base):
    """What the blog's feed last answered (its ETag and Last-Modified), shared by every node
    and kept across restarts, so each poll is a conditional GET the feed can answer 304."""

    __tablename__ = "feed_states"

    # sha256 of the feed's URL: a feed moved to another address starts without validators.
    url_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    etag: Mapped[str | None] = mapped_column(String(1000), default=None)
    last_modified: Mapped[str | None] = mapped_column(String(100), default=None)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookEvent(Base):
    """One event about a comment for one webhook URL, queued in the same transaction as its
    cause; its payload is written when it is sent, from what is public then."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_status_next", "status", "next_attempt_at"),
        # Per post and URL in order: an event waits for the ones queued before it.
        Index("ix_webhook_events_post_url", "post_id", "url", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The webhook-id: the same for every URL and every retry, so receivers deduplicate by it.
    event_id: Mapped[str] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(32))  # comment.published, .held, .hidden, .deleted
    url: Mapped[str] = mapped_column(String(2000))
    # No foreign keys: an erasure deletes comments whose comment.deleted is still to be sent.
    post_id: Mapped[int] = mapped_column(Integer)
    comment_id: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(Integer, default=None)
    comment_created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class BlogSubscription(Base):
    """A person following the whole blog: each new post mailed to them, or put in their daily
    or weekly digest (`digest`); `active` False records that they stopped."""

    __tablename__ = "blog_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    digest: Mapped[str | None] = mapped_column(String(16), default=None)  # None, daily, weekly
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When a digest last went out to them (or found nothing new): the scheduler's due check.
    digest_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class DigestNewPost(Base):
    """A new post owed to the next digest of someone who takes the blog's new posts as a
    digest: queued when the post is announced, taken (deleted) by the digest that holds it."""

    __tablename__ = "digest_new_posts"
    __table_args__ = (UniqueConstraint("person_id", "post_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"))
