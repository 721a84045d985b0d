"""End to end: a reply over SMTP becomes one clean comment and notifies the thread."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import ssl
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select

from service.inbound.queue import requeue
from service.store.models import Comment, InboundEmail, InboundStatus, OutboundEmail, OutboundStatus
from service.store.subscriptions import set_following
from tests.conftest import (
    Blog,
    RunningServer,
    SinkHandler,
    free_port,
    reply_message,
    send,
    wait_for,
)
from tests.inbound_helpers import store_mail

READER = "reader@example.org"
AUTHOR = "author@example.org"
THREADED_REPLY = """Thanks, this fixed my build.

On Tue, Sep 8, 2009 at 11:48 AM, Ann Author <author@example.org> wrote:
> Here is how to fix the build.
> Step one: ...
"""


def final_row(blog: Blog, inbound_id: int | None = None) -> InboundEmail:
    """Wait until the (newest) inbound row is terminal and return it."""

    def terminal() -> InboundEmail | None:
        with blog.parts.session_factory() as session:
            query = select(InboundEmail).order_by(InboundEmail.id.desc())
            if inbound_id is not None:
                query = query.where(InboundEmail.id == inbound_id)
            row = session.scalars(query).first()
            if row is not None and row.status not in (
                InboundStatus.RECEIVED,
                InboundStatus.PROCESSING,
            ):
                return row
            return None

    return wait_for(terminal, what="an inbound message to reach a terminal state")


def comments(blog: Blog) -> list[Comment]:
    with blog.parts.session_factory() as session:
        return list(session.scalars(select(Comment).order_by(Comment.id)))


def outbound(blog: Blog) -> list[OutboundEmail]:
    with blog.parts.session_factory() as session:
        return list(session.scalars(select(OutboundEmail).order_by(OutboundEmail.id)))


def delivery_settled(blog: Blog) -> list[OutboundEmail]:
    """Wait until no outbound row is queued or being sent, and return them all.

    The barrier for "no more mail": a notification is queued in the transaction that
    publishes its comment, so once that comment exists and the outbox holds nothing
    undelivered, every mail it caused has reached the relay (a row is marked sent only
    after the relay's 250).
    """
    undelivered = (OutboundStatus.QUEUED, OutboundStatus.SENDING)
    wait_for(
        lambda: not [o for o in outbound(blog) if o.status in undelivered],
        timeout=30,
        what="every queued mail to be delivered",
    )
    return outbound(blog)


def requeued(blog: Blog) -> OutboundEmail:
    """Wait for a notification that failed one delivery attempt and went back to the queue."""
    return wait_for(
        lambda: [
            o for o in outbound(blog) if o.status == OutboundStatus.QUEUED and o.attempts == 1
        ],
        what="mail queued again after a failed attempt",
    )[0]


def quoting(notification: EmailMessage, text: str) -> str:
    """A reply as a mail client writes it: text on top, the notification quoted below."""
    quoted = notification.get_body(("plain",)).get_content()
    attribution = f"On Wed, Nov 25, 2026 at 9:15 AM, {notification['From']} wrote:"
    return f"{text}\n\n{attribution}\n" + "\n".join(f"> {line}" for line in quoted.splitlines())


def delivered(sink: tuple[SinkHandler, int], address: str, count: int = 1) -> list[EmailMessage]:
    handler = sink[0]
    return wait_for(
        lambda: len(handler.to(address)) >= count and handler.to(address), what=f"mail to {address}"
    )


class TestPublishing:
    def test_reply_becomes_clean_comment_and_notifies_author(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """The quoted thread is cut, the sender is the author, and the post author gets mail."""
        post = blog.post()
        address = blog.address(post, READER)
        send(
            server.port,
            READER,
            [address],
            reply_message(f"Rita Reader <{READER}>", address, THREADED_REPLY),
        )
        row = final_row(blog)
        assert row.status == InboundStatus.PROCESSED, row.reason
        [comment] = comments(blog)
        assert comment.body == "Thanks, this fixed my build."
        assert "Here is how to fix the build." in comment.elided
        assert comment.parent_id is None
        [notification] = delivered(sink, AUTHOR)
        assert "Thanks, this fixed my build." in notification.get_body(("plain",)).get_content()
        assert str(notification["Reply-To"]).split("<")[-1].rstrip(">") != address

    def test_the_cut_text_is_kept_beside_the_comment(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """What extraction cut (the attribution, the quoted thread, the signature) is stored
        with the comment, apart from its body."""
        address = blog.address(blog.post(), READER)
        body = THREADED_REPLY.replace(
            "Thanks, this fixed my build.\n", "Thanks, this fixed my build.\n\n-- \nRita\n"
        )
        send(server.port, READER, [address], reply_message(READER, address, body))
        assert final_row(blog).status == InboundStatus.PROCESSED
        [comment] = comments(blog)
        assert comment.body == "Thanks, this fixed my build."
        for cut in (
            "On Tue, Sep 8, 2009 at 11:48 AM, Ann Author <author@example.org> wrote:",
            "Here is how to fix the build.",
            "Step one: ...",
            "Rita",
        ):
            assert cut in comment.elided, cut
            assert cut not in comment.body

    def test_reply_to_notification_creates_child_comment(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Replying to a notification's Reply-To threads the new comment under the one notified."""
        post = blog.post()
        address = blog.address(post, READER)
        send(server.port, READER, [address], reply_message(READER, address, "First!"))
        [notification] = delivered(sink, AUTHOR)
        reply_to = notification["Reply-To"].addresses[0].addr_spec
        answer = reply_message(
            AUTHOR,
            reply_to,
            quoting(notification, "Glad you liked it."),
            headers={"In-Reply-To": str(notification["Message-ID"])},
        )
        send(server.port, AUTHOR, [reply_to], answer)
        wait_for(lambda: len(comments(blog)) == 2, what="the child comment")
        first, child = comments(blog)
        assert child.parent_id == first.id
        assert child.body == "Glad you liked it."
        # The reader follows the thread now, so they hear about the author's answer.
        [to_reader] = delivered(sink, READER)
        assert "Glad you liked it." in to_reader.get_body(("plain",)).get_content()

    def test_route_by_in_reply_to_when_token_missing(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A reply whose To lost its token still lands under the notification it answers."""
        post = blog.post()
        address = blog.address(post, READER)
        send(server.port, READER, [address], reply_message(READER, address, "First!"))
        [notification] = delivered(sink, AUTHOR)
        bare = f"reply@{server.settings.domain}"
        answer = reply_message(
            AUTHOR,
            bare,
            "Answer via threading",
            headers={"In-Reply-To": str(notification["Message-ID"])},
        )
        send(server.port, AUTHOR, [bare], answer)
        wait_for(lambda: len(comments(blog)) == 2, what="the routed comment")
        assert comments(blog)[1].parent_id == comments(blog)[0].id

    def test_redelivered_message_makes_no_second_comment(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """The same Message-ID from the same sender to the same address is published once."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(
            READER, address, "Only once please", message_id="<dup-1@client.example.net>"
        )
        send(server.port, READER, [address], raw)
        first = final_row(blog)
        send(server.port, READER, [address], raw)
        second = wait_for(
            lambda: (r := final_row(blog)).id != first.id and r, what="the redelivery"
        )
        assert first.status == InboundStatus.PROCESSED
        assert second.status == InboundStatus.IGNORED
        assert "duplicate" in (second.reason or "")
        assert len(comments(blog)) == 1

    def test_restart_resumes_stored_and_abandoned_rows(self, settings, blog: Blog) -> None:  # type: ignore[no-untyped-def]
        """Rows stored while no worker ran, or claimed by a dead worker, are finished on start."""
        address = blog.address(blog.post(), READER)
        waiting = store_mail(
            blog.parts, reply_message(READER, address, "stored"), READER, [address]
        )[0]
        abandoned = store_mail(
            blog.parts, reply_message(READER, address, "abandoned"), READER, [address]
        )[0]
        with sqlite3.connect(settings.database_url.removeprefix("sqlite:///")) as db:
            db.execute(
                "UPDATE inbound_emails SET status='processing', claimed_by='dead-node', "
                "lease_until='2000-01-01 00:00:00.000000' WHERE id=?",
                (abandoned,),
            )
        running = RunningServer(settings).start()
        try:
            assert final_row(blog, waiting).status == InboundStatus.PROCESSED
            assert final_row(blog, abandoned).status == InboundStatus.PROCESSED
            assert sorted(c.body for c in comments(blog)) == ["abandoned", "stored"]
        finally:
            running.stop()


class TestRefusals:
    def test_other_sender_is_not_published_as_address_owner(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """Mail from someone else to a reader's address is rejected, with the reason stored."""
        address = blog.address(blog.post(), READER)
        send(
            server.port,
            "mallory@evil.example",
            [address],
            reply_message("mallory@evil.example", address, "I am Rita"),
        )
        row = final_row(blog)
        assert row.status == InboundStatus.REJECTED
        assert "sender mismatch" in (row.reason or "")
        assert comments(blog) == []

    def test_auto_reply_makes_no_comment_and_no_mail(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """An out-of-office answer is ignored: no comment, nothing queued or sent."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(
            READER,
            address,
            "I am away until Monday.",
            subject="Out of Office: Post hello",
            headers={"Auto-Submitted": "auto-replied"},
        )
        send(server.port, READER, [address], raw)
        row = final_row(blog)
        assert row.status == InboundStatus.IGNORED
        assert "Auto-Submitted" in (row.reason or "")
        assert comments(blog) == [] and outbound(blog) == [] and sink[0].messages == []

    def test_closed_post_rejects(self, server: RunningServer, blog: Blog) -> None:
        """A reply to a closed post is rejected with the reason."""
        address = blog.address(blog.post(closed=True), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Too late?"))
        row = final_row(blog)
        assert row.status == InboundStatus.REJECTED
        assert "closed" in (row.reason or "")

    def test_quote_only_reply_is_rejected_not_published_empty(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """A reply that is all quote is rejected as empty instead of becoming an empty comment."""
        address = blog.address(blog.post(), READER)
        body = (
            "On Tue, Sep 8, 2009 at 11:48 AM, Ann Author wrote:\n> Here is how to fix the build.\n"
        )
        send(server.port, READER, [address], reply_message(READER, address, body))
        row = final_row(blog)
        assert row.status == InboundStatus.REJECTED
        assert "empty" in (row.reason or "")
        assert comments(blog) == []


class TestFailureAndReplay:
    def test_failure_is_kept_and_replayable(self, server: RunningServer, blog: Blog) -> None:
        """A message whose processing crashes is failed with the error, and retry publishes it."""
        address = blog.address(blog.post(), READER)
        database = server.settings.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(database) as db:
            db.execute("ALTER TABLE comments RENAME TO comments_away")
        send(server.port, READER, [address], reply_message(READER, address, "Worth keeping"))
        row = final_row(blog)
        assert row.status == InboundStatus.FAILED
        assert "comments" in (row.reason or "")
        with sqlite3.connect(database) as db:
            db.execute("ALTER TABLE comments_away RENAME TO comments")
        with blog.parts.session_factory.begin() as session:
            assert requeue(session, [row.id]) == 1
        assert final_row(blog, row.id).status == InboundStatus.PROCESSED
        assert [c.body for c in comments(blog)] == ["Worth keeping"]


class TestDelivery:
    def test_relay_5xx_is_permanent_failure(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A 550 from the relay fails the notification at once, with the relay's answer kept."""
        sink[0].answers.append("550 5.1.1 No such user")
        address = blog.address(blog.post(), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Hello"))
        row = wait_for(
            lambda: [o for o in outbound(blog) if o.status == OutboundStatus.FAILED],
            what="failed mail",
        )[0]
        assert row.attempts == 1
        assert "550" in (row.last_error or "")

    def test_relay_4xx_is_retried_later(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A 451 from the relay puts the notification back in the queue with a later next try."""
        sink[0].answers.append("451 4.3.0 Try again later")
        address = blog.address(blog.post(), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Hello"))
        row = requeued(blog)
        assert "451" in (row.last_error or "")
        assert row.next_attempt_at > row.created_at

    def test_notifications_of_a_comment_share_one_relay_session(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A comment's notifications reach the relay over one SMTP session, not one each, and
        a recipient the relay refuses fails alone, without ending the session for the rest."""
        post = blog.post()
        followers = [blog.person(f"follower{n}@example.org") for n in range(4)]
        with blog.parts.session_factory.begin() as session:
            for person_id in followers:
                set_following(session, post, person_id, active=True)
        sink[0].answers.append("550 5.1.1 No such user")  # the first RCPT of the batch
        address = blog.address(post, READER)
        send(server.port, READER, [address], reply_message(READER, address, "Hello, all"))
        wait_for(lambda: len(sink[0].messages) == 4, what="four of the five notifications")
        assert len(set(sink[0].peers)) == 1
        rows = wait_for(
            lambda: [o for o in outbound(blog) if o.status == OutboundStatus.FAILED],
            what="the refused notification failed",
        )
        assert len(rows) == 1 and "550" in (rows[0].last_error or "")
        statuses = sorted(o.status for o in outbound(blog))
        assert statuses == sorted([OutboundStatus.FAILED] + [OutboundStatus.SENT] * 4)


class TestUnreachableRelay:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """A relay address where nothing listens."""
        return {"REPLYD_OUTBOUND": f"smtp://127.0.0.1:{free_port()}"}

    def test_refused_connection_is_retried(self, server: RunningServer, blog: Blog) -> None:
        """When the relay cannot be reached the notification stays queued for a later try."""
        address = blog.address(blog.post(), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Hello"))
        row = requeued(blog)
        assert "unreachable" in (row.last_error or "")


class AuthSink:
    """A relay that only takes mail after AUTH with the right password."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: object, session: Any, envelope: Any) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        self.messages.append(envelope.original_content)
        return "250 OK"


def check_login(
    server: object, session: object, envelope: object, mechanism: str, auth: Any
) -> AuthResult:
    """Accept only relay-user / relay-pass."""
    ok = (auth.login, auth.password) == (b"relay-user", b"relay-pass")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@contextlib.contextmanager
def relay(**options: Any) -> Iterator[tuple[AuthSink, int]]:
    """A real relay on a free port that checks logins; `options` go to aiosmtpd's SMTP."""
    handler, port = AuthSink(), free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, authenticator=check_login, **options
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def auth_sink() -> Iterator[tuple[AuthSink, int]]:
    """A real SMTP relay requiring AUTH (plain text is allowed on loopback for the test)."""
    # AUTH is checked at DATA: requiring it without TLS makes aiosmtpd warn.
    with relay(auth_require_tls=False) as running:
        yield running


class TestRelayLogin:
    @pytest.fixture
    def settings_overrides(
        self, auth_sink: tuple[AuthSink, int], request: pytest.FixtureRequest
    ) -> dict[str, str]:
        """The relay URL carries the credentials the test names."""
        password = getattr(request, "param", "relay-pass")
        return {"REPLYD_OUTBOUND": f"smtp://relay-user:{password}@127.0.0.1:{auth_sink[1]}"}

    def test_logs_in_to_the_relay(
        self, server: RunningServer, blog: Blog, auth_sink: tuple[AuthSink, int]
    ) -> None:
        """Credentials in REPLYD_OUTBOUND are used to AUTH before sending."""
        address = blog.address(blog.post(), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Hello"))
        wait_for(lambda: auth_sink[0].messages, what="the relay to accept the notification")

    @pytest.mark.parametrize("settings_overrides", ["wrong"], indirect=True)
    def test_wrong_password_keeps_mail_queued(
        self, server: RunningServer, blog: Blog, auth_sink: tuple[AuthSink, int]
    ) -> None:
        """A refused login is our configuration's fault: the mail stays queued, not failed."""
        address = blog.address(blog.post(), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Hello"))
        row = requeued(blog)
        assert "REPLYD_OUTBOUND" in (row.last_error or "")
        assert auth_sink[0].messages == []


@pytest.fixture(scope="module")
def relay_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, as a private relay might have (openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a certificate for the TLS relay")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "relay.pem", directory / "relay.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_sink(relay_certificate: tuple[Path, Path]) -> Iterator[tuple[AuthSink, int]]:
    """A real relay that refuses mail until the client has issued STARTTLS."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*relay_certificate)
    with relay(tls_context=context, require_starttls=True, auth_require_tls=True) as running:
        yield running


class TestRelayStarttls:
    @pytest.fixture
    def settings_overrides(
        self, tls_sink: tuple[AuthSink, int], relay_certificate: tuple[Path, Path]
    ) -> dict[str, str]:
        """STARTTLS with the relay's CA named, then AUTH (only allowed once encrypted)."""
        query = f"starttls=true&cafile={relay_certificate[0]}"
        return {"REPLYD_OUTBOUND": f"smtp://relay-user:relay-pass@127.0.0.1:{tls_sink[1]}?{query}"}

    def test_starttls_then_auth(
        self, server: RunningServer, blog: Blog, tls_sink: tuple[AuthSink, int]
    ) -> None:
        """Notifications reach a relay that requires STARTTLS, verified against the given CA."""
        address = blog.address(blog.post(), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Hello"))
        wait_for(lambda: tls_sink[0].messages, what="the TLS relay to accept the notification")
