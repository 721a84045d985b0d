"""Followers: addresses checked when they are added, a visible unsubscribe link in every
notification and digest, and a used link that says so (issue 17, finding 12)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from service.identity.addresses import ALL_POSTS, verify_token
from service.runtime.settings import Settings
from service.store.models import Person, Subscription
from service.store.subscriptions import InvalidAddress, follower_address
from tests.conftest import (
    DOMAIN,
    SECRET,
    Blog,
    RunningServer,
    SinkHandler,
    reply_message,
    send,
    wait_for,
)
from tests.http_fixtures import HttpClient, http, settings_overrides
from tests.test_reply_flow import comments, delivered

__all__ = ["http", "settings_overrides"]  # fixtures, imported so this module uses them

READER = "reader@example.org"
AUTHOR = "author@example.org"
FAN = "fan@example.org"

REFUSED = [
    ("root@localhost", "has no dot"),
    ("ann@example", "has no dot"),
    ("ann@printer.local", ".local is a local-only domain"),
    ("ann@box.localhost", ".localhost is a local-only domain"),
    ("ann@nas.home.arpa", ".home.arpa is a local-only domain"),
    ("ann@10.0.0.1", "does not end in a top-level domain"),
    ("ann@[10.0.0.1]", "is not a domain name"),
    ("ann@-example.org", "is not a domain name"),
    ("ann@" + "d" * 64 + ".org", "is not a domain name"),
    ("a" * 65 + "@example.org", "the part before the @ is 65 characters long"),
    ("a" * 60 + "@" + ("b" * 60 + ".") * 4 + "org", "mail takes 254 at most"),
    ("ann..lee@example.org", "single dots"),
    ('"ann lee"@example.org', "is not an email address"),
    ("jürgen@example.org", "non-ASCII"),
    ("ann", "is not an email address"),
]


class TestAddressesOfFollowers:
    @pytest.mark.parametrize(("address", "why"), REFUSED)
    def test_an_address_replyd_cannot_mail_is_refused_with_the_reason(
        self, address: str, why: str
    ) -> None:
        """Each rule has its own sentence, and each sentence says what to give instead."""
        with pytest.raises(InvalidAddress) as refused:
            follower_address(address)
        assert why in str(refused.value)
        assert "ann@example.org" in str(refused.value) or "at most" in str(refused.value)

    def test_an_ordinary_address_is_kept_lower_cased(self) -> None:
        """Plus tags, dots, hyphens and IDNA domains are fine."""
        assert (
            follower_address(" Ann.Lee+blog@Mail.Example.ORG ") == "ann.lee+blog@mail.example.org"
        )
        assert follower_address("o'neil@xn--bcher-kva.example") == "o'neil@xn--bcher-kva.example"

    def test_the_cli_refuses_root_at_localhost_and_stores_nothing(
        self, settings: Settings, blog: Blog
    ) -> None:
        """`replyd subscribe --email root@localhost` exits 2 with the reason, as does a post
        whose author could never be mailed; nobody is added."""
        blog.post(slug="p1")
        env = {
            **os.environ,
            "REPLYD_VAR_DIR": str(settings.var_dir),
            "REPLYD_DOMAIN": DOMAIN,
            "REPLYD_SECRET": SECRET,
        }

        def replyd(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "service.cli", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )

        refused = replyd("subscribe", "--post", "p1", "--email", "root@localhost")
        assert refused.returncode == 2, refused.stderr
        assert "'root@localhost': the domain 'localhost' has no dot" in refused.stderr
        assert "ann@example.org" in refused.stderr and "Traceback" not in refused.stderr
        post = replyd("post", "add", "--id", "p2", "--title", "T", "--url", "https://b.example/p2",
                      "--author-email", "webmaster@intranet")  # fmt: skip
        assert post.returncode == 2 and "has no dot" in post.stderr
        with blog.parts.session_factory() as session:
            emails = session.scalars(select(Person.email)).all()
        assert emails == [AUTHOR]
        assert replyd("subscribe", "--post", "p1", "--email", FAN).returncode == 0

    def test_the_api_refuses_it_too_but_still_stops_a_known_one(
        self, server: RunningServer, blog: Blog, http: HttpClient
    ) -> None:
        """POST /api/subscriptions and POST /api/posts answer 400 with the reason; a person
        stored before this check can still be unsubscribed."""
        post = blog.post()
        answer = http.post(
            "/api/subscriptions", json_body={"post_id": "hello", "email": "ann@printer.local"}
        )
        assert answer.status == 400
        assert ".local is a local-only domain" in answer.json()["error"]
        body = {"id": "p2", "title": "T", "url": "https://b.example/p2", "author_email": "x@y"}
        assert http.post("/api/posts", json_body=body).status == 400
        legacy = blog.person("root@localhost")  # stored by an older version
        answer = http.request(
            "DELETE",
            "/api/subscriptions",
            json_body={"post_id": "hello", "email": "root@localhost"},
        )
        assert answer.status == 200
        with blog.parts.session_factory() as session:
            rows = session.execute(select(Subscription.person_id, Subscription.active)).all()
        assert rows == [(legacy, False)]
        assert post


def links(mail: EmailMessage) -> tuple[str, str, str]:
    """The one-click https link of a message: in its List-Unsubscribe header, its text body
    and its HTML body."""
    [header] = re.findall(r"<(https://[^>]+)>", str(mail["List-Unsubscribe"]))
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    [in_text] = re.findall(r"^(?:Unsubscribe|Abbestellen): (\S+)\r?$", text, re.M)
    [in_html] = re.findall(r'<a href="(https://[^"]+/unsubscribe/[^"]+)"', html)
    return header, in_text, in_html


class TestVisibleLinks:
    def test_every_notification_shows_its_readers_own_link_and_a_used_link_says_so(
        self,
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        http: HttpClient,
    ) -> None:
        """Each reader's notification shows their own one-click link in the text and the HTML;
        opening it again after using it says they are already unsubscribed."""
        post = blog.post()
        with blog.parts.session_factory.begin() as session:
            session.add(Subscription(post_id=post, person_id=blog.person(FAN)))
        address = blog.address(post, READER)
        send(server.port, READER, [address], reply_message(READER, address, "Hello"))
        [to_author] = delivered(sink, AUTHOR)
        [to_fan] = delivered(sink, FAN)
        seen = {}
        for email, mail in ((AUTHOR, to_author), (FAN, to_fan)):
            header, in_text, in_html = links(mail)
            assert in_text == header and in_html == header
            target = verify_token(header.rsplit("/", 1)[1], blog.parts.keyring, "unsubscribe")
            assert target is not None and target.person_id == blog.person(email)
            assert target.post_id == post
            seen[email] = header
        assert seen[AUTHOR] != seen[FAN]

        path = seen[AUTHOR].removeprefix("https://blog.example.org")
        first = http.get(path, auth=False)
        assert first.status == 200 and "Stop mail about this post?" in first.text
        assert "already" not in first.text
        assert "You are unsubscribed" in http.post(path, auth=False).text
        for again in (http.get(path, auth=False), http.post(path, auth=False)):
            assert again.status == 200
            assert "You are already unsubscribed" in again.text
            assert "<form" not in again.text
        send(server.port, READER, [address], reply_message(READER, address, "Again"))
        wait_for(lambda: len(comments(blog)) == 2, what="the second comment")
        delivered(sink, FAN, 2)
        assert len(sink[0].to(AUTHOR)) == 1

    def test_every_digest_shows_its_link_and_a_used_link_says_so(
        self,
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        http: HttpClient,
    ) -> None:
        """A digest shows the link that stops every digest, in text and HTML."""
        post = blog.post()
        with blog.parts.session_factory.begin() as session:
            session.add(Subscription(post_id=post, person_id=blog.person(FAN), digest="daily"))
        address = blog.address(post, READER)
        send(server.port, READER, [address], reply_message(READER, address, "For the digest"))
        wait_for(lambda: comments(blog), what="the comment")
        assert blog.parts.digests().send(blog.parts.session_factory, "daily") == 1
        server.server._wake_outbound()
        [digest] = delivered(sink, FAN)
        header, in_text, in_html = links(digest)
        assert in_text == header and in_html == header
        target = verify_token(header.rsplit("/", 1)[1], blog.parts.keyring, "unsubscribe")
        assert target is not None and target.post_id == ALL_POSTS
        path = header.removeprefix("https://blog.example.org")
        assert "You are unsubscribed" in http.post(path, auth=False).text
        assert "You are already unsubscribed" in http.get(path, auth=False).text
