"""Notification mail: the headers that make it thread, stay safe and never start a loop."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from sqlalchemy import func, select

from service.identity.addresses import ReplyTarget, verify_token
from service.outbound.audience import Audience
from service.outbound.notify import Unrendered
from service.store.models import Comment, OutboundEmail, Person, Post, Subscription
from service.store.subscriptions import set_following
from tests.conftest import Blog


def publish(
    blog: Blog, post_id: int, author: str, body: str, parent: int | None = None, name: str = ""
) -> int:
    """Store a comment and queue its notifications, as the pipeline does."""
    notifier = blog.parts_notifier
    person_id = blog.person(author, name)
    with blog.parts.session_factory.begin() as session:
        person = session.get(Person, person_id)
        assert person is not None
        comment = Comment(post_id=post_id, parent_id=parent, author_id=person.id, body=body)
        post = session.get(Post, post_id)
        assert post is not None
        notifier.publish(session, comment, post, person, Audience(session, [post]))
        return comment.id


def mail_to(blog: Blog, email: str) -> list[EmailMessage]:
    """The mail queued for `email`, written as delivery writes it."""
    notifier = blog.parts_notifier or blog.parts.notifier()
    with blog.parts.session_factory() as session:
        rows = list(
            session.scalars(
                select(OutboundEmail)
                .where(OutboundEmail.recipient == email)
                .order_by(OutboundEmail.id)
            )
        )
        pending = [
            Unrendered(row.id, row.comment_id, row.recipient_id, row.recipient, row.message_id)
            for row in rows
            if row.raw is None
        ]
        written = notifier.render_queued(session, pending) if pending else {}
        raws = [row.raw if row.raw is not None else written[row.id] for row in rows]
    assert all(isinstance(raw, bytes) for raw in raws), raws
    parsed = [
        message_from_bytes(raw, policy=policy.default) for raw in raws if isinstance(raw, bytes)
    ]
    return [m for m in parsed if isinstance(m, EmailMessage)]


class TestNotificationHeaders:
    def test_reply_to_is_the_recipients_own_address_for_that_comment(self, blog: Blog) -> None:
        """Reply-To names this recipient and this comment, so a reply threads under it."""
        blog.parts_notifier = blog.parts.notifier()
        post = blog.post()
        comment = publish(blog, post, "reader@example.org", "Hi")
        [mail] = mail_to(blog, "author@example.org")
        token = blog.parts.book.token_of(mail["Reply-To"].addresses[0].addr_spec)
        assert token
        target = verify_token(token, blog.parts.keyring)
        assert target is not None
        assert (target.post_id, target.comment_id, target.person_id) == (
            post,
            comment,
            blog.person("author@example.org"),
        )

    def test_loop_and_list_headers(self, blog: Blog) -> None:
        """Every notification says it is automatic and belongs to the post's list."""
        blog.parts_notifier = blog.parts.notifier()
        post = blog.post()
        publish(blog, post, "reader@example.org", "Hi")
        [mail] = mail_to(blog, "author@example.org")
        assert mail["Auto-Submitted"] == "auto-generated"
        assert mail["X-Auto-Response-Suppress"] == "All"
        assert mail["Precedence"] == "list"
        assert f"<post-{post}.replies.example.org>" in str(mail["List-Id"])
        assert mail.get_body(("plain",)) is not None and mail.get_body(("html",)) is not None

    def test_three_generations_thread_together(self, blog: Blog) -> None:
        """Message-IDs are stable and In-Reply-To/References chain to the post and ancestors."""
        blog.parts_notifier = blog.parts.notifier()
        post = blog.post()
        first = publish(blog, post, "a@example.org", "one")
        second = publish(blog, post, "b@example.org", "two", parent=first)
        third = publish(blog, post, "a@example.org", "three", parent=second)
        mails = mail_to(blog, "author@example.org")
        assert len(mails) == 3
        author_id = blog.person("author@example.org")
        book, keyring = blog.parts.book, blog.parts.keyring
        ids = [
            book.notification_id(ReplyTarget(post, c, author_id), keyring)
            for c in (first, second, third)
        ]
        root = f"<post-{post}@replies.example.org>"
        assert [m["Message-ID"] for m in mails] == ids
        assert [m["Message-ID"] for m in mail_to(blog, "author@example.org")] == ids
        assert mails[0]["In-Reply-To"] == root
        assert mails[2]["In-Reply-To"] == ids[1]
        assert str(mails[2]["References"]).split() == [root, ids[0], ids[1]]

    def test_user_data_cannot_inject_headers(self, blog: Blog) -> None:
        """A title or name with line breaks stays inside its own header."""
        blog.parts_notifier = blog.parts.notifier()
        post = blog.post()
        with blog.parts.session_factory.begin() as session:
            row = session.get(Post, post)
            assert row is not None
            row.title = "Hello\r\nBcc: victim@example.org"
        publish(blog, post, "reader@example.org", "Hi", name="Eve\nX-Injected: yes")
        [mail] = mail_to(blog, "author@example.org")
        assert mail["Bcc"] is None and mail["X-Injected"] is None
        assert mail["Subject"] == "Re: Hello Bcc: victim@example.org"

    def test_non_ascii_names_and_titles_are_encoded(self, blog: Blog) -> None:
        """Names and titles outside ASCII survive a round trip through the wire format."""
        blog.parts_notifier = blog.parts.notifier()
        post = blog.post()
        with blog.parts.session_factory.begin() as session:
            row = session.get(Post, post)
            assert row is not None
            row.title = "Über Käse"
        publish(blog, post, "joerg@example.org", "Grüße", name="Jörg Müller")
        [mail] = mail_to(blog, "author@example.org")
        assert mail["Subject"] == "Re: Über Käse"
        assert mail["From"].addresses[0].display_name == "Jörg Müller via Example Blog"
        assert "Grüße" in mail.get_body(("plain",)).get_content()

    def test_html_part_escapes_comment_text(self, blog: Blog) -> None:
        """A comment containing markup is shown as text in the HTML part."""
        blog.parts_notifier = blog.parts.notifier()
        publish(blog, blog.post(), "reader@example.org", "<script>alert(1)</script>")
        [mail] = mail_to(blog, "author@example.org")
        html = mail.get_body(("html",)).get_content()
        assert "<script>" not in html
        assert "&lt;script&gt;" in html


class TestFollowers:
    def test_followers_exclude_writer_optouts_and_digest_takers(self, blog: Blog) -> None:
        """Author, earlier commenters and subscribers get mail; the writer and opt-outs do not."""
        blog.parts_notifier = blog.parts.notifier()
        post = blog.post()
        publish(blog, post, "early@example.org", "first")
        publish(blog, post, "quiet@example.org", "second")
        fan, quiet, daily = (blog.person(f"{n}@example.org") for n in ("fan", "quiet", "daily"))
        writer = blog.person("early@example.org")
        with blog.parts.session_factory.begin() as session:
            set_following(session, post, fan, active=True)
            set_following(session, post, quiet, active=False)  # it followed by commenting
            set_following(session, post, daily, active=True, digest="daily")
        with blog.parts.session_factory() as session:
            row = session.get(Post, post)
            assert row is not None
            emails = {p.email for p in Audience(session, [row]).followers(row, writer)}
        assert emails == {"author@example.org", "fan@example.org"}

    def test_a_thread_with_more_followers_than_one_query_names(self, blog: Blog) -> None:
        """Followers are read a bounded number at a time, so a big thread reaches everyone."""
        blog.parts_notifier = blog.parts.notifier()
        post = blog.post()
        with blog.parts.session_factory.begin() as session:
            fans = [Person(email=f"fan{n}@example.org") for n in range(1000)]
            session.add_all(fans)
            session.flush()
            session.add_all(Subscription(post_id=post, person_id=fan.id) for fan in fans)
        publish(blog, post, "writer@example.org", "Hello, all of you.")
        with blog.parts.session_factory() as session:
            count = select(func.count()).select_from(OutboundEmail)
            assert session.scalar(count) == 1001  # the fans and the author
