"""What readers see stays what authors meant to publish: cut text is for the operator only, and
the feed parses as XML whatever stored text holds (issue 16, over real SMTP and HTTP)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sqlalchemy import select

from service.extraction.marker import MARKER_TEXT
from service.store.models import Comment, InboundEmail, InboundStatus, Person, Post
from tests.conftest import Blog, RunningServer, SinkHandler, reply_message, send, wait_for
from tests.http_fixtures import HttpClient, http, settings_overrides

__all__ = ["http", "settings_overrides"]  # fixtures, imported so this module uses them

ATOM = "{http://www.w3.org/2005/Atom}"
AUTHOR = "author@example.org"
READER = "reader@example.org"
COLLEAGUE = "dhughes@corp.example"


def processed(blog: Blog) -> InboundEmail:
    """The newest inbound row, once processed."""

    def done() -> InboundEmail | None:
        with blog.parts.session_factory() as session:
            row = session.scalars(select(InboundEmail).order_by(InboundEmail.id.desc())).first()
            return row if row is not None and row.status == InboundStatus.PROCESSED else None

    return wait_for(done, what="the reply to be published")


def outlook_reply(reply_to: str, notification_text: str) -> str:
    """A top-posted Outlook reply: the answer, a From/Sent/To header block naming a colleague,
    and the whole notification quoted below it."""
    return (
        "I agree with the point about digests.\n\nRita\n\n"
        f"From: Example Blog <{reply_to}>\n"
        "Sent: Tuesday, March 12, 2024 9:41 AM\n"
        f"To: Hughes, Daniel <{COLLEAGUE}>; Rita Reader <{READER}>\n"
        'Subject: New comment on "Post hello"\n\n'
        f"{notification_text}\n"
    )


class TestCutTextIsPrivate:
    def test_outlook_header_block_and_quoted_notification_stay_with_the_operator(
        self,
        http: HttpClient,
        blog: Blog,
        server: RunningServer,
        sink: tuple[SinkHandler, int],
    ) -> None:
        """A reply quoting our notification under an Outlook header block: the page, the public
        API and the feed show the answer only; the token holder and the admin page see the cut."""
        blog.post()
        first = http.post(
            "/api/posts/hello/comments",
            json_body={"author_email": READER, "author_name": "Rita Reader", "body": "Digests?"},
        )
        assert first.status == 201, first.text
        answer = http.post(
            "/api/posts/hello/comments",
            json_body={"author_email": AUTHOR, "body": "They go out at seven."},
        )
        assert answer.status == 201, answer.text
        [notification] = wait_for(lambda: sink[0].to(READER), what="the reader's notification")
        reply_to = notification["Reply-To"].addresses[0].addr_spec
        assert reply_to.startswith("reply+")
        quoted = notification.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert MARKER_TEXT in quoted
        raw = reply_message(READER, reply_to, outlook_reply(reply_to, quoted))
        send(server.port, READER, [reply_to], raw)
        processed(blog)
        secrets = (COLLEAGUE, reply_to, reply_to.split("@")[0], "Hughes, Daniel", MARKER_TEXT)

        page = http.get("/posts/hello", auth=False)
        assert page.status == 200 and "I agree with the point about digests." in page.text
        assert "Show quoted text" not in page.text
        public = http.get("/api/posts/hello/comments", auth=False)
        assert public.status == 200
        listed = public.json()["comments"]
        assert listed[-1]["body"] == "I agree with the point about digests.\n\nRita"
        assert all("elided" not in c for c in listed)
        feed = http.get("/posts/hello/comments.atom", auth=False)
        assert feed.status == 200 and "I agree with the point" in feed.text
        for secret in secrets:
            for where, text in (("page", page.text), ("API", public.text), ("feed", feed.text)):
                assert secret not in text, f"{secret!r} is public on the {where}"

        operator = http.get("/api/posts/hello/comments").json()["comments"]
        # The operator sees what was cut, with our own tokened addresses already taken out of
        # it (the raw message, on the admin page, still holds them).
        assert COLLEAGUE in operator[-1]["elided"]
        assert reply_to not in operator[-1]["elided"]
        assert COLLEAGUE in http.get("/admin/inbound").text


class TestFeedIsAlwaysXml:
    def test_control_characters_in_stored_text_leave_the_feed_valid(
        self, http: HttpClient, blog: Blog
    ) -> None:
        """Stored text with C0 controls and DEL (rows from before the inbound filters, or a
        door that forgot them) still makes a feed that parses, with those characters left out."""
        post_id = blog.post()
        author = blog.person("bell@example.org", "Be\x01ll\x7f")
        with blog.parts.session_factory.begin() as session:
            post = session.get(Post, post_id)
            assert post is not None
            post.title = "Title\x0b with\x1b[31m escape"
            session.add(
                Comment(
                    post_id=post_id,
                    author_id=author,
                    body="ring\x07 the\x0c bell\x1b]0;owned\x07 done\ttab\nline",
                    source="email",
                )
            )
        reply = http.get("/posts/hello/comments.atom", auth=False)
        assert reply.status == 200
        feed = ET.fromstring(reply.body)
        assert feed.findtext(f"{ATOM}title") == "Comments on Title with[31m escape"
        [entry] = feed.findall(f"{ATOM}entry")
        assert entry.findtext(f"{ATOM}content") == "ring the bell]0;owned done\ttab\nline"
        assert entry.findtext(f"{ATOM}author/{ATOM}name") == "Bell"
        with blog.parts.session_factory() as session:
            assert session.scalar(select(Person.display_name).where(Person.id == author)) == (
                "Be\x01ll\x7f"
            )  # stored as it came: only the rendering leaves characters out
