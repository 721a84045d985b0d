"""Control characters are dropped from everything that comes in by mail (and the CLI), the
Atom feed always parses, and the CLI prints whatever is stored without escape sequences."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import xml.etree.ElementTree as ET
from email.message import EmailMessage

from sqlalchemy import select

from service.store.models import Comment, InboundEmail, Person, Post
from tests.conftest import DOMAIN, Blog, RunningServer, SinkHandler, send
from tests.http_fixtures import HttpClient, http, settings_overrides
from tests.test_cli import REPLYD, env, run
from tests.test_reply_flow import comments, delivered, final_row

__all__ = ["env", "http", "settings_overrides"]  # fixtures, imported so this module uses them

AUTHOR = "author@example.org"
READER = "rita@example.org"
CONTROLS = "\x01\x07\x0b\x0c\x1b\x7f\x85\x9b"


def bodies(mail: EmailMessage) -> str:
    """The decoded text (and HTML) parts of a message."""
    parts = [mail.get_body((kind,)) for kind in ("plain", "html")]
    return "\n".join(part.get_content() for part in parts if part is not None)


def with_controls(to: str, subject: str) -> bytes:
    """A reply whose display name, subject and body carry control characters, encoded as
    mail carries them (quoted-printable keeps each byte as it is)."""
    encoded_subject = "".join(
        ch if ch.isalnum() else f"={b:02X}" for ch in subject for b in ch.encode()
    )
    return (
        "From: =?utf-8?q?Rita=1B=5B2J_=07Reader?= <rita@example.org>\r\n"
        f"To: {to}\r\n"
        f"Subject: =?utf-8?q?{encoded_subject}?=\r\n"
        "Message-ID: <controls@client.example.net>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "Bell=01=07=0B form=0C escape=1B[31m red=0Dold mac=0D=0Aend=01=C2=85=C2=9B\r\n"
    ).encode()


class TestControlCharacters:
    def test_mail_with_control_characters_is_stored_and_fed_without_them(
        self,
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        http: HttpClient,
    ) -> None:
        """Control characters in an emailed body, display name and subject are dropped: the
        comment, the name, the follower's mail and the Atom feed (which parses) hold none."""
        post = blog.post()
        address = blog.address(post, READER)
        send(server.port, READER, [address], with_controls(address, "Re: Post hello"))
        assert final_row(blog).status == "processed"
        [comment] = comments(blog)
        assert comment.body == "Bell form escape[31m red\nold mac\nend"
        with blog.parts.session_factory() as session:
            person = session.scalar(select(Person).where(Person.email == READER))
            assert person is not None and person.display_name == "Rita [2J Reader"
        [to_author] = delivered(sink, AUTHOR)
        text = bodies(to_author) + str(to_author["From"])
        assert "Bell form escape" in text and not any(ch in text for ch in CONTROLS)
        feed = http.get("/posts/hello/comments.atom", auth=False)
        entries = ET.fromstring(feed.body).findall("{http://www.w3.org/2005/Atom}entry")
        assert len(entries) == 1
        # A subject is echoed to its (proven) sender when a reply is refused: without them.
        closed = blog.address(blog.post("closed", closed=True), READER)
        send(server.port, READER, [closed], with_controls(closed, "\x1b]0;pwned\x07 Hi\x9b"))
        assert final_row(blog).status == "rejected"
        [notice] = delivered(sink, READER)
        text = bodies(notice) + str(notice["Subject"])
        assert "pwned" in text and not any(ch in text for ch in CONTROLS)

    def test_old_rows_with_control_characters_neither_break_the_feed_nor_the_terminal(
        self, server: RunningServer, blog: Blog, http: HttpClient, env: dict[str, str]
    ) -> None:
        """Rows stored before this cleaning (or written by other tools) still make a feed
        that parses, and `replyd comments`, `inbound list`, `inbound show` and `post list`
        print their control characters as visible escapes."""
        post_id = blog.post()
        person = blog.person("old@example.org", f"Old{CONTROLS}Timer")
        with blog.parts.session_factory.begin() as session:
            post = session.get(Post, post_id)
            assert post is not None
            post.title = f"Title{CONTROLS}"
            row = InboundEmail(
                raw=b"x",
                sha256="0" * 64,
                sender="evil\x1b[2J@example.org",
                recipient=f"reply@{DOMAIN}",
                message_id="<a\x1b]0;x\x07@b>",
                status="rejected",
                reason=f"reason{CONTROLS}\n7\tforged row",
            )
            session.add(row)
            session.flush()
            session.add(
                Comment(
                    post_id=post_id,
                    author_id=person,
                    body=f"line one{CONTROLS}\nline two\x1b]0;pwned\x07",
                    inbound_email_id=row.id,
                )
            )
            row_id = row.id
        feed = http.get("/posts/hello/comments.atom", auth=False)
        assert feed.status == 200
        ET.fromstring(feed.body)  # parses
        outputs = [
            run(env, "comments", "--post", "hello").stdout,
            run(env, "comments", "--post", "hello", "--json").stdout,
            run(env, "inbound", "list").stdout,
            run(env, "inbound", "list", "--json").stdout,
            run(env, "inbound", "show", str(row_id)).stdout,
            run(env, "post", "list").stdout,
            run(env, "post", "list", "--json").stdout,
        ]
        for output in outputs:
            assert not any(ch in output for ch in CONTROLS), repr(output)
        assert "\\x1b" in outputs[0] and "\\x1b" in outputs[2] and "\\x1b" in outputs[4]
        listed = [line for line in outputs[2].splitlines() if line.strip()]
        assert len(listed) == 1  # the reason's line break did not make a second row

    def test_cli_post_titles_with_control_characters_are_refused_and_names_cleaned(
        self, env: dict[str, str]
    ) -> None:
        """`replyd post add` refuses a title holding control characters with a sentence (as
        the API does: one check for posts at every door), and stores a name without them."""
        common = ["post", "add", "--id", "t", "--url", "https://b.example/t"]
        author = ["--author-email", "a@example.org", "--author-name", "Ann\x0cAuthor"]
        refused = run(env, *common, "--title", "A\x1b[2J title\x07", *author, check=False)
        assert refused.returncode == 2 and "control characters" in refused.stderr
        assert "\x1b[2J" not in refused.stderr  # quoted escaped, never acted on
        run(env, *common, "--title", "A title", *author)
        [listed] = json.loads(run(env, "post", "list", "--json").stdout)
        assert listed["title"] == "A title"
        assert listed["author_name"] == "Ann Author"

    def test_raw_source_is_exact_when_piped_and_escaped_on_a_terminal(
        self, blog: Blog, env: dict[str, str]
    ) -> None:
        """`inbound show --raw` writes the stored bytes as they are into a pipe, and with
        visible escapes onto a terminal, where an escape sequence in mail would act."""
        raw = b"Subject: \x1b]0;pwned\x07hi\r\n\r\nbody \x1b[2J\x9b\r\n"
        with blog.parts.session_factory.begin() as session:
            row = InboundEmail(raw=raw, sha256="0" * 64, sender="", recipient=f"reply@{DOMAIN}")
            session.add(row)
            session.flush()
            row_id = row.id
        piped = subprocess.run(
            [*REPLYD, "inbound", "show", str(row_id), "--raw"],
            env={**os.environ, **env},
            capture_output=True,
            timeout=60,
            check=True,
        )
        assert piped.stdout == raw
        main, terminal = pty.openpty()
        try:
            shown = subprocess.run(
                [*REPLYD, "inbound", "show", str(row_id), "--raw"],
                env={**os.environ, **env},
                stdout=terminal,
                stderr=subprocess.PIPE,
                timeout=60,
                check=True,
            )
            assert shown.returncode == 0
            output = b""
            while not output.endswith(b"\n") or b"body" not in output:
                output += os.read(main, 65536)
        finally:
            os.close(main)
            os.close(terminal)
        text = output.decode("utf-8", "replace")
        assert "\\x1b]0;pwned\\x07hi" in text and "body \\x1b[2J" in text
        assert not any(ch in text for ch in CONTROLS)
