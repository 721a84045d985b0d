"""A person with a bit of everything replyd stores, seeded through the real doors, and probes."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import func, select

from service.runtime.settings import Settings
from service.store.models import Comment, OutboundEmail, OutboundStatus, Person
from service.store.subscriptions import set_following
from tests.conftest import Blog, RunningServer, SinkHandler, reply_message, send, wait_for
from tests.test_outbound_mail import dsn, envelope_senders
from tests.test_reply_flow import comments, delivered, final_row

ZELDA = "zelda@example.net"
NAME = "Zelda Quixotic"
BOB = "bob@example.org"
CAROL = "carol@example.org"
AUTHOR = "author@example.org"
ZELDA_REPLY = (
    "Lovely post, thanks!\n"
    "Write to me at Zelda@Example.net any time.\n"
    "\n"
    "Zelda\n"
    "\n"
    "-- \n"
    "Zelda Quixotic\n"
    "Quixotic Ltd, +1 555 0100\n"
)
BOB_REPLY = (
    "I agree with Zelda Quixotic.\n"
    "\n"
    "On Mon, 2 Mar 2026 at 10:00, Zelda Quixotic <zelda@example.net> wrote:\n"
    "> Lovely post, thanks!\n"
)


@dataclass
class Seeded:
    """What was seeded: posts, the comments, and Zelda's reply address."""

    post: int
    other_post: int
    zelda_comment: int
    zelda_other_comment: int
    bob_comment: int
    zelda_address: str
    bob_address: str
    closed_post: int


def seed(server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]) -> Seeded:
    """Zelda comments twice by mail (name, signature, address in the text), follows one post
    and takes a weekly digest of another; Bob answers her, quoting her; a notification to her
    soft-bounces; a reply of hers to a post closed to comments is refused and she is told
    (she is proven: the address is hers)."""
    post, other = blog.post("hello"), blog.post("second")
    zelda_address = blog.address(post, ZELDA)
    sender = f"{NAME} <{ZELDA}>"
    send(server.port, ZELDA, [zelda_address], reply_message(sender, zelda_address, ZELDA_REPLY))
    wait_for(lambda: len(comments(blog)) == 1, what="Zelda's comment")
    elsewhere = blog.address(other, ZELDA)
    send(server.port, ZELDA, [elsewhere], reply_message(sender, elsewhere, "Second thoughts."))
    wait_for(lambda: len(comments(blog)) == 2, what="Zelda's second comment")
    first, second = comments(blog)
    carol = blog.person(CAROL)
    with blog.parts.session_factory.begin() as session:
        zelda = session.scalar(select(Person).where(Person.email == ZELDA))
        assert zelda is not None and zelda.display_name == NAME
        set_following(session, other, zelda.id, active=True, digest="weekly")
        set_following(session, post, carol, active=True)
    bob_address = blog.address(post, BOB, first.id)
    send(server.port, BOB, [bob_address], reply_message(BOB, bob_address, BOB_REPLY))
    [note] = delivered(sink, ZELDA)
    assert "I agree with" in note.get_body(("plain",)).get_content()
    [verp] = envelope_senders(sink, ZELDA)
    send(server.port, "", [verp], dsn(verp, ZELDA, "4.2.2", action="delayed"))
    assert "soft bounce" in (final_row(blog).reason or "")
    closed_post = blog.post("closed", closed=True)
    closed = blog.address(closed_post, ZELDA)
    send(server.port, ZELDA, [closed], reply_message(ZELDA, closed, "Hi Bob"))
    delivered(sink, ZELDA, 2)  # the notice that her reply to a closed post was refused
    bob_comment = comments(blog)[-1]
    assert bob_comment.parent_id == first.id
    return Seeded(
        post,
        other,
        first.id,
        second.id,
        bob_comment.id,
        zelda_address,
        bob_address,
        closed_post,
    )


def rcpt_answer(port: int, sender: str, address: str) -> tuple[int, str]:
    """What the SMTP edge answers RCPT TO:<address> (nothing is sent: RSET follows)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.example.net")
        client.mail(sender)
        code, text = client.rcpt(address)
        client.rset()
        return code, text.decode()


def database_files(settings: Settings) -> list[Path]:
    """The SQLite database file and its write-ahead log, as they are on disk right now."""
    database = Path(settings.database_url.removeprefix("sqlite:///"))
    return [database, database.with_name(database.name + "-wal")]


def traces(settings: Settings, *needles: str) -> list[str]:
    """Which of `needles` (any case) occur in the bytes of the database file or its log."""
    found = []
    for path in database_files(settings):
        data = path.read_bytes().lower() if path.exists() else b""
        found += [f"{n!r} in {path.name}" for n in needles if n.lower().encode() in data]
    return found


def comment_row(blog: Blog, comment_id: int) -> Comment | None:
    """A comment as stored now (None once deleted)."""
    with blog.parts.session_factory() as session:
        return session.get(Comment, comment_id)


def text_of(mail: EmailMessage) -> str:
    """A message's plain-text part."""
    return str(mail.get_body(("plain",)).get_content())  # type: ignore[union-attr]


def mail_settled(blog: Blog) -> None:
    """Wait until every queued mail was delivered (or failed): what was to be sent by now has
    reached the sink, since a row is recorded as sent only after its delivery."""

    def pending() -> int:
        with blog.parts.session_factory() as session:
            return int(
                session.scalar(
                    select(func.count(OutboundEmail.id)).where(
                        OutboundEmail.status.in_((OutboundStatus.QUEUED, OutboundStatus.SENDING))
                    )
                )
                or 0
            )

    wait_for(lambda: pending() == 0, what="every queued mail to be delivered")
