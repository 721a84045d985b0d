"""The erasure in the store, on SQLite and PostgreSQL: no column keeps the address, no claim
outlives it, and the text scrubbing it relies on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import LargeBinary, String, Text, func, select

from service.identity.addresses import ReplyTarget
from service.inbound.queue import claim_mail
from service.outbound.erasure_mail import ALREADY_MAILED, MAILED
from service.runtime.components import Components
from service.store.erasure import (
    ERASED_REASON,
    drop_sign_off,
    forget_person,
    scrub_text,
)
from service.store.models import (
    Base,
    Block,
    Comment,
    FollowRequest,
    IdempotencyKey,
    InboundEmail,
    InboundStatus,
    ModerationEvent,
    OutboundEmail,
    PendingComment,
    Person,
    RejectionNotice,
    Subscription,
    UsedModerationLink,
    utcnow,
)
from service.store.subscriptions import person_for, save_post
from service.store.suppression import is_suppressed
from tests.conftest import make_settings, reply_message
from tests.inbound_helpers import record, store_mail

ZELDA = "zelda@example.net"
NAME = "Zelda Quixotic"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_template: Path
) -> Iterator[Components]:
    """Components on a migrated SQLite file, or on the run's PostgreSQL database."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    overrides = {}
    if request.param == "postgresql":
        overrides["REPLYD_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    else:
        (var_dir / "replyd.db").write_bytes(migrated_template.read_bytes())
    parts = Components.build(make_settings(var_dir, **overrides))
    yield parts
    parts.engine.dispose()


def seed_everything(parts: Components) -> tuple[int, int]:
    """Zelda in every table that can name her: author of a post, commenter (address and
    signature in the text), follower, sender of raw mail, recipient of mail, refused sender,
    subject of a remembered web answer, writer of web comments and follows awaiting
    confirmation, a moderator who acted and blocked someone, a blocked sender; Bob's comment
    and mail quote her. Returns (her comment, her stored message) ids."""
    raw = reply_message(f"{NAME} <{ZELDA}>", "reply@x.example", f"Hi, {ZELDA} here.\n\nZelda")
    [inbound] = store_mail(parts, raw, ZELDA, ["reply@x.example"])
    bobs_raw = reply_message("bob@example.org", "reply@x.example", f"> {NAME} <{ZELDA}> wrote")
    [bobs] = store_mail(parts, bobs_raw, "bob@example.org", ["reply@x.example"])
    with parts.session_factory.begin() as session:
        zelda = person_for(session, ZELDA, NAME)
        bob = person_for(session, "bob@example.org", "Bob")
        post, _ = save_post(
            session, "hers", title="Hers", url="https://b.example/hers", author=zelda, closed=False
        )
        session.add(Subscription(post_id=post.id, person_id=zelda.id))
        mine = Comment(
            post_id=post.id,
            author_id=zelda.id,
            body=f"Hi, {ZELDA} here.\n\nZelda",
            elided=f"-- \n{NAME}",
            inbound_email_id=inbound,
            dedupe_key="k" * 64,
        )
        session.add(mine)
        session.flush()
        session.add(
            Comment(
                post_id=post.id,
                parent_id=mine.id,
                author_id=bob.id,
                body=f"Thanks {NAME}!",
                elided=f"{NAME} <{ZELDA}> wrote",
                inbound_email_id=bobs,
            )
        )
        session.add(
            OutboundEmail(
                kind="rejection",
                message_id="<r-1@x.example>",
                recipient=ZELDA,
                raw=f"To: {ZELDA}\r\n\r\nNo.".encode(),
                last_error=f"relay refused {ZELDA}",
            )
        )
        session.add(
            RejectionNotice(
                sender=ZELDA, reason_code="closed", day=utcnow().date(), inbound_email_id=inbound
            )
        )
        session.add(
            IdempotencyKey(
                key="web-1", fingerprint="f" * 64, status=201, response=f'{{"e":"{ZELDA}"}}'
            )
        )
        session.add(
            PendingComment(
                post_id=post.id, parent_id=mine.id, email=ZELDA, author_name=NAME, body="Again"
            )
        )
        session.add(PendingComment(post_id=post.id, parent_id=mine.id, email="b@x.org", body="B"))
        session.add(FollowRequest(post_id=post.id, email=ZELDA, digest="daily"))
        # A comment of hers nobody answered, which "delete" removes: held, then approved.
        unanswered = Comment(post_id=post.id, author_id=zelda.id, body="Held first.")
        session.add(unanswered)
        session.flush()
        session.add(
            ModerationEvent(
                comment_id=unanswered.id, action="hold", actor="inbound", via="inbound", note=NAME
            )
        )
        session.add(ModerationEvent(action="block", actor=ZELDA, via="mail", note="email x@y.org"))
        session.add(
            UsedModerationLink(
                comment_id=unanswered.id, person_id=zelda.id, action="remove", expires=1
            )
        )
        session.add(Block(kind="email", value=ZELDA, actor="admin"))
        session.add(Block(kind="email", value="x@y.org", actor=ZELDA))
        return mine.id, inbound


def columns_naming(parts: Components, *needles: str) -> list[str]:
    """Every table.column whose value holds one of `needles` (any case), in any row."""
    found: list[str] = []
    with parts.session_factory() as session:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if isinstance(column.type, LargeBinary):
                    for value in session.scalars(select(column).where(column.is_not(None))):
                        if any(n.lower().encode() in bytes(value).lower() for n in needles):
                            found.append(f"{table.name}.{column.name}")
                elif isinstance(column.type, String | Text):
                    for needle in needles:
                        hit = select(func.count()).where(
                            func.lower(column).contains(needle.lower(), autoescape=True)
                        )
                        if session.scalar(hit):
                            found.append(f"{table.name}.{column.name}")
    return sorted(set(found))


class TestNoColumnKeepsHer:
    @pytest.mark.parametrize("comments", ["keep-anonymous", "delete"])
    def test_after_forget_no_table_names_her(self, store: Components, comments: str) -> None:
        """Before, her address and name are in a dozen columns; after, in none, and the
        address is suppressed; her post stays, under "A former reader"."""
        seed_everything(store)
        before = columns_naming(store, ZELDA, NAME)
        assert {
            "people.email",
            "inbound_sources.raw",  # the one stored copy of each message
            "comments.body",
            "outbound_emails.raw",
            "pending_comments.email",
            "follow_requests.email",
            "moderation_events.actor",
            "moderation_events.note",
            "blocks.value",
            "blocks.actor",
        } <= set(before)
        report = forget_person(
            store.session_factory,
            store.engine,
            ZELDA,
            store.book,
            store.keyring,
            comments=comments,
        )
        assert report.found and report.others_comments_scrubbed == 1
        assert columns_naming(store, ZELDA, NAME, "Quixotic") == []
        with store.session_factory() as session:
            assert is_suppressed(session, ZELDA) and is_suppressed(session, ZELDA.upper())
            author = session.scalar(select(Person).where(Person.erased_at.is_not(None)))
            assert author is not None and author.display_name == "A former reader"
            assert session.scalar(select(func.count()).select_from(Subscription)) == 0
            # Bob's web answer to her comment waits on; the log keeps its lines.
            assert session.scalar(select(func.count()).select_from(PendingComment)) == 1
            assert session.scalar(select(func.count()).select_from(ModerationEvent)) == 2


class TestClaims:
    def test_a_message_claimed_before_the_erasure_makes_no_comment(self, store: Components) -> None:
        """A worker holding her message when she is forgotten loses its claim: the message is
        finished as ignored and no comment is made of it."""
        with store.session_factory.begin() as session:
            zelda = person_for(session, ZELDA, NAME)
            post, _ = save_post(
                session, "p", title="P", url="https://b.example/p", author=zelda, closed=False
            )
            address = store.book.reply_address(ReplyTarget(post.id, None, zelda.id), store.keyring)
        [row_id] = store_mail(store, reply_message(ZELDA, address, "Hello"), ZELDA, [address])
        claimed = claim_mail(store.session_factory, "w1", 10)
        assert [mail.id for mail in claimed] == [row_id]
        forget_person(store.session_factory, store.engine, ZELDA, store.book, store.keyring)
        assert record(store.pipeline(), claimed, "w1") == [None]
        with store.session_factory() as session:
            row = session.get(InboundEmail, row_id)
            assert row is not None and row.status == InboundStatus.IGNORED
            assert row.reason == ERASED_REASON and row.raw == b"" and row.sender == ""
            assert session.scalar(select(func.count()).select_from(Comment)) == 0


class TestScrubbing:
    def test_address_and_distinctive_name_in_any_case(self) -> None:
        """The address goes in any case; the full name as whole words only."""
        text = f"Mail {ZELDA.upper()} or ask zelda quixotic, not Zelda Quixoticness."
        assert scrub_text(text, ZELDA, NAME) == (
            "Mail [address removed] or ask [name removed], not Zelda Quixoticness."
        )

    @pytest.mark.parametrize(
        ("body", "kept"),
        [
            ("Great post.\n\nZelda", "Great post."),
            ("Great post.\n-- Zelda Quixotic\n", "Great post."),
            ("Great post.\nCheers,\nZelda!", "Great post.\nCheers,"),
            ("Zelda is my cat.", "Zelda is my cat."),
        ],
    )
    def test_a_closing_line_with_only_her_name_goes(self, body: str, kept: str) -> None:
        """Closing lines that only sign with her name are dropped, nothing else."""
        assert drop_sign_off(body, NAME) == kept


class TestConfirmationLimit:
    @pytest.mark.parametrize(("limits", "second"), [("", ALREADY_MAILED), ("off", MAILED)])
    def test_one_confirmation_a_day_unless_limits_are_off(
        self, tmp_path: Path, migrated_template: Path, limits: str, second: str
    ) -> None:
        """A second request the same day mails nothing more; REPLYD_RATE_LIMITS=off lifts it."""
        var_dir = tmp_path / "var"
        var_dir.mkdir()
        (var_dir / "replyd.db").write_bytes(migrated_template.read_bytes())
        extra = {"REPLYD_RATE_LIMITS": limits} if limits else {}
        parts = Components.build(make_settings(var_dir, **extra))
        mail = parts.erasure_mail()
        with parts.session_factory.begin() as session:
            zelda = person_for(session, ZELDA, NAME)
            assert mail.queue_confirmation(session, zelda) == MAILED
            assert mail.queue_confirmation(session, zelda) == second
        parts.engine.dispose()
