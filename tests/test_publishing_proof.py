"""No publishing without proof: threading headers we did not sign, and From tricks, publish
nothing; a signed notification Message-ID, or a From our MTA authenticated, still does."""

from __future__ import annotations

import secrets
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from service.identity.addresses import Keyring, ReplyTarget
from service.outbound.notify import Unrendered
from service.store.models import (
    Comment,
    InboundStatus,
    OutboundEmail,
    ReasonCode,
    Subscription,
)
from tests.conftest import SECRET, Blog, RunningServer, SinkHandler, reply_message, send, wait_for
from tests.test_abuse import all_terminal
from tests.test_reply_flow import comments, delivered, final_row

AUTHOR = "author@example.org"
VICTIM = "vic@example.org"
MALLORY = "mallory@example.org"
READER = "reader@example.org"
TRUSTED = "mx.example.org"


def bare(server: RunningServer) -> str:
    """The reply address without a token, which only threading headers can route."""
    return f"reply@{server.settings.domain}"


def follow(blog: Blog, post: int, email: str) -> int:
    """Make someone follow a post (per comment); their person id."""
    person = blog.person(email)
    with blog.parts.session_factory.begin() as session:
        session.add(Subscription(post_id=post, person_id=person))
    return person


def honest_thread(
    server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
) -> tuple[int, int, EmailMessage, EmailMessage]:
    """A post the victim and Mallory follow, with one comment by a reader; the post and the
    comment ids, and the notifications the victim and Mallory got about it."""
    post = blog.post()
    follow(blog, post, VICTIM)
    follow(blog, post, MALLORY)
    address = blog.address(post, READER)
    send(server.port, READER, [address], reply_message(READER, address, "A fine post."))
    [to_victim] = delivered(sink, VICTIM)
    [to_mallory] = delivered(sink, MALLORY)
    [comment] = comments(blog)
    return post, comment.id, to_victim, to_mallory


def guess(server: RunningServer, ids: list[str], sender: str = VICTIM) -> None:
    """One forged reply to the bare address: From the victim, In-Reply-To the first guess and
    References the others (each one a try at routing)."""
    raw = reply_message(
        sender,
        bare(server),
        "I am Vic, honestly.",
        headers={"In-Reply-To": ids[0], "References": " ".join(ids[1:])},
    )
    send(server.port, "attacker@evil.example", [bare(server)], raw)


def flipped(token: str, position: int) -> str:
    """A token with one base32 letter changed."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    letter = alphabet[(alphabet.index(token[position]) + 1) % len(alphabet)]
    return token[:position] + letter + token[position + 1 :]


class TestGuessingThreadingHeaders:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """The attacker sends many messages; the per-sender limit is not what stops them."""
        return {"REPLYD_RATE_LIMITS": "off"}

    def test_hundreds_of_guesses_publish_nothing_and_the_victim_still_can(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Old-style ids, random tokens and Mallory's own (tampered) ids, From the victim, to
        the bare address: none routes to the victim; the victim's real reply still does."""
        post, comment_id, to_victim, to_mallory = honest_thread(server, blog, sink)
        domain = server.settings.domain
        victim_id = blog.person(VICTIM)
        # What an older replyd sent the victim: an unsigned, predictable id that is on record.
        legacy = f"<comment-{comment_id}.to-{victim_id}@{domain}>"
        with blog.parts.session_factory.begin() as session:
            session.add(
                OutboundEmail(
                    kind="notification",
                    message_id=legacy,
                    recipient=VICTIM,
                    recipient_id=victim_id,
                    post_id=post,
                    comment_id=comment_id,
                    raw=b"",
                    status="sent",
                )
            )
        predictable = [
            f"<comment-{c}.to-{p}@{domain}>" for c in range(1, 11) for p in range(1, 21)
        ]  # 200, the real one among them
        assert legacy in predictable
        letters = "abcdefghijklmnopqrstuvwxyz234567"
        random_tokens = [
            f"<c{comment_id}.{''.join(secrets.choice(letters) for _ in range(23))}@{domain}>"
            for _ in range(100)
        ]
        mallorys = str(to_mallory["Message-ID"])
        local = mallorys.strip("<>").split("@")[0]
        number, token = local.split(".", 1)
        tampered = [f"<{number}.{flipped(token, i)}@{domain}>" for i in range(len(token))]
        tampered += [f"<c{c}.{token}@{domain}>" for c in range(1, 30)]  # another comment
        tampered.append(mallorys)  # as it is, with From forged
        guesses = predictable + random_tokens + tampered
        assert len(guesses) > 300
        batches = [guesses[i : i + 20] for i in range(0, len(guesses), 20)]
        for batch in batches:
            guess(server, batch)
        rows = all_terminal(blog, len(batches) + 1)
        assert [r.status for r in rows[1:]] == [InboundStatus.REJECTED] * len(batches)
        assert len(comments(blog)) == 1
        assert {r.reason_code for r in rows[1:]} <= {
            ReasonCode.NO_ROUTE,
            ReasonCode.SENDER_MISMATCH,
        }

        # The victim answers their own notification, To rewritten to the bare address.
        answer = reply_message(
            VICTIM,
            bare(server),
            "This one is really me.",
            headers={"In-Reply-To": str(to_victim["Message-ID"])},
        )
        send(server.port, VICTIM, [bare(server)], answer)
        wait_for(lambda: len(comments(blog)) == 2, what="the victim's real reply")
        real = comments(blog)[1]
        assert real.body == "This one is really me."
        assert real.parent_id == comment_id
        # Nobody was told about the forgeries: the forged From proves nothing.
        assert [m for m in sink[0].to(VICTIM) if m["Auto-Submitted"] == "auto-replied"] == []

    def test_notification_ids_are_signed_and_stable(self, blog: Blog) -> None:
        """The Message-ID of a notification carries a token only we can make; a new key does
        not change the id of mail already queued, and the old key still routes replies to it."""
        post = blog.post()
        reader = blog.person(READER)
        target = ReplyTarget(post, 7, reader)
        book, keyring = blog.parts.book, blog.parts.keyring
        message_id = book.notification_id(target, keyring)
        assert message_id.startswith("<c7.") and message_id.endswith(f"@{book.domain}>")
        assert book.notification_id(target, keyring) == message_id  # same at every attempt
        assert book.thread_target(message_id, keyring) == target
        other = Keyring.from_strings("another-secret-0123456789")
        assert book.thread_target(message_id, other) is None
        assert book.thread_target(message_id.replace("<c7.", "<c8."), keyring) is None
        rotated = Keyring.from_strings("the-next-secret-0123456789", [SECRET])
        assert book.thread_target(message_id, rotated) == target
        assert book.notification_id(target, rotated) != message_id

    def test_queued_notification_keeps_its_id_across_a_key_rotation(self, blog: Blog) -> None:
        """A notification written again after the secret changed carries the id it was
        queued with, so a retry is the same message to the recipient's client."""
        from tests.test_notify import publish

        blog.parts_notifier = blog.parts.notifier()
        post = blog.post()
        publish(blog, post, READER, "Hello")
        with blog.parts.session_factory() as session:
            [row] = session.scalars(select(OutboundEmail)).all()
            queued = Unrendered(
                row.id, row.comment_id, row.recipient_id, row.recipient, row.message_id
            )
            rotated = blog.parts.notifier()
            rotated.keyring = Keyring.from_strings("the-next-secret-0123456789", [SECRET])
            raw = rotated.render_queued(session, [queued])[row.id]
        assert isinstance(raw, bytes)
        assert f"Message-ID: {row.message_id}\r\n".encode() in raw


def authenticated(domain: str, result: str = "pass", authserv: str = TRUSTED) -> dict[str, str]:
    """The Authentication-Results header our MTA adds (RFC 8601)."""
    return {
        "Authentication-Results": (
            f"{authserv}; spf=pass smtp.mailfrom={domain}; dkim=pass header.d={domain}; "
            f"dmarc={result} (p=reject dis=none) header.from={domain}"
        )
    }


class TestAuthenticatedThreading:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """Trust what our own MTA, mx.example.org, says about DMARC."""
        return {"REPLYD_TRUST_AUTHSERV_ID": TRUSTED}

    def legacy_notification(self, blog: Blog, post: int, comment_id: int, email: str) -> str:
        """An unsigned notification id as an older replyd sent it to `email`, on record."""
        person = blog.person(email)
        legacy = f"<comment-{comment_id}.to-{person}@{blog.parts.book.domain}>"
        with blog.parts.session_factory.begin() as session:
            session.add(
                OutboundEmail(
                    kind="notification",
                    message_id=legacy,
                    recipient=email,
                    recipient_id=person,
                    post_id=post,
                    comment_id=comment_id,
                    raw=b"",
                    status="sent",
                )
            )
        return legacy

    def test_unsigned_id_routes_only_with_dmarc_pass_for_the_from_domain(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """An old unsigned id on record routes a reply when our MTA says the From domain
        passed DMARC; not without, not for another domain, not from another authserv-id."""
        post, comment_id, _, _ = honest_thread(server, blog, sink)
        legacy = self.legacy_notification(blog, post, comment_id, VICTIM)
        tries = {
            "no results": {},
            "another domain passed": authenticated("evil.example"),
            "someone else's server": authenticated("example.org", authserv="mx.evil.example"),
            "dmarc none": authenticated("example.org", result="none"),
        }
        for n, headers in enumerate(tries.values()):
            raw = reply_message(
                VICTIM,
                bare(server),
                f"forged {n}",
                headers={"In-Reply-To": legacy, **headers},
            )
            send(server.port, "attacker@evil.example", [bare(server)], raw)
            row = final_row(blog)
            assert row.status == InboundStatus.REJECTED, row.reason
            assert row.reason_code == ReasonCode.NO_ROUTE
        raw = reply_message(
            VICTIM,
            bare(server),
            "Authenticated and threaded.",
            headers={"In-Reply-To": legacy, **authenticated("example.org")},
        )
        send(server.port, VICTIM, [bare(server)], raw)
        row = final_row(blog)
        assert row.status == InboundStatus.PROCESSED, row.reason
        assert comments(blog)[-1].body == "Authenticated and threaded."
        assert comments(blog)[-1].parent_id == comment_id

    def test_authenticated_from_cannot_use_another_persons_thread(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """DMARC proves who Mallory is, not that she may answer as the victim: the old id
        sent to the victim routes nothing for her."""
        post, comment_id, _, _ = honest_thread(server, blog, sink)
        legacy = self.legacy_notification(blog, post, comment_id, VICTIM)
        raw = reply_message(
            MALLORY,
            bare(server),
            "Mallory, authenticated",
            headers={"In-Reply-To": legacy, **authenticated("example.org")},
        )
        send(server.port, MALLORY, [bare(server)], raw)
        row = final_row(blog)
        assert row.status == InboundStatus.REJECTED
        assert len(comments(blog)) == 1


FROM_TRICKS = {
    "encoded local part": (
        "From: The Boss <=?utf-8?q?boss=40example.org?=>\r\n",
        "encoded word inside the From address",
    ),
    "encoded domain": ("From: <boss@=?utf-8?q?example.org?=>\r\n", "encoded word"),
    "two From headers": (
        "From: boss@example.org\r\nFrom: mallory@evil.example\r\n",
        "2 From headers",
    ),
    "two mailboxes": ("From: boss@example.org, mallory@evil.example\r\n", "more than one mailbox"),
    "a group": ("From: Bosses: boss@example.org;\r\n", "group"),
}


def tricked(from_lines: str, to: str, body: str) -> bytes:
    """A reply whose From header block is `from_lines` as given, authenticated by our MTA for
    example.org (what an MTA might say when it reads the From differently than replyd)."""
    return (
        f"{from_lines}To: {to}\r\nSubject: Re: Post hello\r\n"
        f"Message-ID: <{secrets.token_hex(8)}@evil.example>\r\n"
        f"Authentication-Results: {TRUSTED}; dmarc=pass header.from=example.org\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


class TestFromTricks:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """Our MTA's DMARC results are trusted: the tricks aim at that trust."""
        return {"REPLYD_TRUST_AUTHSERV_ID": TRUSTED}

    @pytest.mark.parametrize("trick", sorted(FROM_TRICKS))
    def test_from_trick_is_rejected_with_its_reason_and_no_notice(
        self, trick: str, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A From that is not exactly one plain mailbox publishes nothing, even to the boss's
        own reply address; the reason names the trick and nobody is mailed about it."""
        post = blog.post()
        boss_address = blog.address(post, "boss@example.org")
        from_lines, expected = FROM_TRICKS[trick]
        send(
            server.port,
            "mallory@evil.example",
            [boss_address],
            tricked(from_lines, boss_address, "The Boss says: all is well."),
        )
        row = final_row(blog)
        assert row.status == InboundStatus.REJECTED
        assert row.reason_code == ReasonCode.FROM_INVALID
        assert expected in (row.reason or "")
        assert comments(blog) == []
        # Proof that a notice would have gone out by now: an honest reply's notification.
        reader = blog.address(post, READER)
        send(server.port, READER, [reader], reply_message(READER, reader, "Honest words"))
        delivered(sink, AUTHOR)
        with blog.parts.session_factory() as session:
            kinds = session.scalars(select(OutboundEmail.kind)).all()
        assert kinds == ["notification"]
        assert [c.body for c in comments(blog)] == ["Honest words"]

    def test_plain_from_with_an_encoded_display_name_is_published(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """Encoded words in the display name are decoded, as they should be."""
        post = blog.post()
        address = blog.address(post, "boss@example.org")
        send(
            server.port,
            "boss@example.org",
            [address],
            tricked("From: =?utf-8?q?J=C3=B6rg_Boss?= <Boss@Example.org>\r\n", address, "Hi"),
        )
        row = final_row(blog)
        assert row.status == InboundStatus.PROCESSED, row.reason
        with blog.parts.session_factory() as session:
            [comment] = session.scalars(select(Comment)).all()
            assert comment.author.display_name == "Jörg Boss"
