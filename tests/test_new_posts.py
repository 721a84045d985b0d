"""New posts by email (issue 20): whoever follows the blog is mailed each new post, with a reply
address of their own; a reply becomes a comment on the post and its writer then follows it."""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlalchemy import select, update

from service.identity.addresses import ALL_POSTS, NEW_POSTS, ReplyTarget, verify_token
from service.runtime.settings import Settings
from service.store.models import (
    BlogSubscription,
    Comment,
    InboundEmail,
    OutboundEmail,
    Person,
    Post,
    Subscription,
    utcnow,
)
from tests.conftest import (
    Blog,
    RunningServer,
    SinkHandler,
    make_settings,
    reply_message,
    send,
    wait_for,
)
from tests.http_fixtures import API_TOKEN, HttpClient
from tests.reader_helpers import (
    BLOG_ORIGIN,
    confirm_path,
    post_form,
    read_forms,
    reader_follow,
    text_of,
    wait_for_confirmation,
)
from tests.test_cli import cli_env, run

AUTHOR = "author@example.org"
FAN = "fan@example.org"
OTHER = "otto@example.org"
DIGESTER = "dora@example.org"
READER = "reader@example.org"
BASE = "https://blog.example.org"


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """The API token (posts and operator comments), the blog's origin, roomy web limits."""
    return {
        "REPLYD_API_TOKEN": API_TOKEN,
        "REPLYD_EMBED_ORIGINS": BLOG_ORIGIN,
        "REPLYD_WEB_LIMITS": "public=200/10m,email=50/h",
    }


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """The environment of a `replyd` process working on the test's database."""
    return {
        **cli_env(settings),
        "REPLYD_SITE_NAME": "Example Blog",
        "REPLYD_BASE_URL": BASE,
    }


@pytest.fixture
def http(server: RunningServer) -> HttpClient:
    """A client for the running server's HTTP port."""
    return HttpClient(f"http://127.0.0.1:{server.server.http_port}")


def follow_all(env: dict[str, str], email: str, *extra: str) -> None:
    """`replyd subscribe --all` for one address, as an operator runs it."""
    done = run(env, "subscribe", "--all", "--email", email, *extra)
    assert f"{email} follows every new post" in done.stdout


def add_post(env: dict[str, str], slug: str, title: str = "", *extra: str) -> str:
    """`replyd post add` by the blog's author; returns what it printed."""
    done = run(
        env,
        *("post", "add", "--id", slug, "--title", title or f"Post {slug}"),
        *("--url", f"{BASE}/{slug}", "--author-email", AUTHOR, "--author-name", "Ann Author"),
        *extra,
    )
    return done.stdout


def about(sink: SinkHandler, address: str, title: str) -> list[EmailMessage]:
    """The mails delivered to `address` whose subject is `title` (a new post's mail)."""
    return [m for m in sink.to(address) if m["Subject"] == title]


def wait_for_post_mail(sink: SinkHandler, address: str, title: str) -> EmailMessage:
    """The mail announcing the post `title` to `address`, once it has arrived."""
    [mail] = wait_for(lambda: about(sink, address, title), what=f"{title!r} mailed to {address}")
    return mail


def post_id(blog: Blog, slug: str) -> int:
    with blog.parts.session_factory() as session:
        found = session.scalar(select(Post.id).where(Post.slug == slug))
        assert found is not None
        return found


def queued_to(blog: Blog, email: str, kind: str = "new_post") -> list[OutboundEmail]:
    """Outbound rows of one kind for an address, queued or done."""
    with blog.parts.session_factory() as session:
        return list(
            session.scalars(
                select(OutboundEmail).where(
                    OutboundEmail.recipient == email, OutboundEmail.kind == kind
                )
            )
        )


def reply_to(mail: EmailMessage, sender: str, text: str) -> tuple[str, bytes]:
    """A reply as a mail client writes it: the text on top, the mail quoted below it."""
    address = mail["Reply-To"].addresses[0].addr_spec
    quoted = "\n".join(f"> {line}" for line in text_of(mail).splitlines())
    body = f"{text}\n\nOn Fri, 4 Dec 2026 at 10:00, Example Blog wrote:\n{quoted}\n"
    raw = reply_message(
        sender,
        address,
        body,
        subject=f"Re: {mail['Subject']}",
        headers={"In-Reply-To": mail["Message-ID"], "References": mail["Message-ID"]},
    )
    return address, raw


def one_click(mail: EmailMessage) -> str:
    """The path of the https link in List-Unsubscribe (the host is REPLYD_BASE_URL's)."""
    [link] = re.findall(r"<(https://[^>]+)>", str(mail["List-Unsubscribe"]))
    assert link.startswith(f"{BASE}/unsubscribe/")
    return link.removeprefix(BASE)


class TestAnnounced:
    def test_each_follower_gets_the_new_post_with_their_own_reply_address(
        self,
        env: dict[str, str],
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
    ) -> None:
        """`subscribe --all` then `post add`: each follower's mail names the post, carries a
        Reply-To that comments on it as them, a signed Message-ID that routes to it, and
        RFC 8058 one-click unsubscribe from new posts; the author, someone who unsubscribed,
        someone suspended after bounces and someone forgotten get nothing."""
        for email in (FAN, OTHER, AUTHOR, "gone@example.org", "bounced@example.org"):
            follow_all(env, email)
        follow_all(env, "forgotten@example.org")
        run(env, "unsubscribe", "--all", "--email", "gone@example.org")
        run(env, "person", "forget", "--email", "forgotten@example.org")
        with blog.parts.session_factory.begin() as session:
            session.execute(
                update(Person)
                .where(Person.email == "bounced@example.org")
                .values(suspended_at=utcnow(), bounce_score=3.0)
            )
        printed = add_post(env, "news", "Big <news> today")
        assert "its mail is queued for 2 of the blog's followers" in printed
        pid = post_id(blog, "news")
        book, keyring = blog.parts.book, blog.parts.keyring
        for email in (FAN, OTHER):
            mail = wait_for_post_mail(sink[0], email, "Big <news> today")
            person = blog.person(email)
            reply_address = mail["Reply-To"].addresses[0].addr_spec
            found = book.recipient(reply_address, keyring)
            assert found is not None and found.target == ReplyTarget(pid, None, person)
            assert book.thread_target(mail["Message-ID"], keyring) == ReplyTarget(pid, None, person)
            assert mail["To"] == email
            assert mail["From"].addresses[0].display_name == "Ann Author via Example Blog"
            assert mail["Auto-Submitted"] == "auto-generated"
            assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert "new-posts.replies.example.org" in mail["List-Id"]
            token = one_click(mail).rsplit("/", 1)[1]
            assert verify_token(token, keyring, "unsubscribe") == ReplyTarget(
                ALL_POSTS, NEW_POSTS, person
            )
            [mailto] = re.findall(r"<mailto:([^?>]+)", str(mail["List-Unsubscribe"]))
            unsubscribe = book.recipient(unquote(mailto), keyring)
            assert unsubscribe is not None and unsubscribe.target == verify_token(
                token, keyring, "unsubscribe"
            )
            text = text_of(mail)
            assert "##- Reply above this line to comment -##" in text
            assert f"{BASE}/news" in text and "Big <news> today" in text
            assert f"/unsubscribe/{token}" in text
            html = mail.get_body(("html",))
            assert html is not None and "Big &lt;news&gt; today" in html.get_content()
        assert len(sink[0].to(FAN)) == 1 and len(sink[0].to(OTHER)) == 1
        # Queued with the post, in its transaction: the rows there are are all there will be.
        for nobody in (AUTHOR, "gone@example.org", "bounced@example.org"):
            assert queued_to(blog, nobody) == [] and sink[0].to(nobody) == []
        assert not [m for _, rcpts, m in sink[0].messages if "erased-person" in str(rcpts)]

    def test_an_update_or_a_closed_post_announces_nothing(
        self,
        env: dict[str, str],
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        http: HttpClient,
    ) -> None:
        """Saving a post again (CLI or API) mails nobody, nor does adding a closed post; the
        next new post proves mail would have arrived by then. The API announces as the CLI."""
        follow_all(env, FAN)
        add_post(env, "first", "First post")
        wait_for_post_mail(sink[0], FAN, "First post")
        assert "updated post 'first'" in add_post(env, "first", "First post, renamed")
        assert add_post(env, "shut", "Closed one", "--closed").strip() == "added post 'shut'"
        def api_post(slug: str, title: str) -> int:
            body = {"id": slug, "title": title, "url": f"{BASE}/{slug}", "author_email": AUTHOR}
            answer = http.post("/api/posts", json_body=body)
            assert answer.status in (200, 201), answer.text
            return answer.status

        assert api_post("first", "First post, again") == 200  # updated
        assert api_post("second", "Second post") == 201  # created
        wait_for_post_mail(sink[0], FAN, "Second post")
        assert [m["Subject"] for m in sink[0].to(FAN)] == ["First post", "Second post"]
        assert len(queued_to(blog, FAN)) == 2


class TestReplies:
    def test_a_reply_becomes_the_first_comment_and_its_writer_follows_the_post(
        self,
        env: dict[str, str],
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
    ) -> None:
        """Replying to the new post's mail over SMTP publishes the reply (quote cut) as the
        post's first, top-level comment, in the replier's name; the author is told; the
        replier now follows the post and is mailed the next comment on it."""
        follow_all(env, FAN)
        add_post(env, "news", "Fresh news")
        mail = wait_for_post_mail(sink[0], FAN, "Fresh news")
        address, raw = reply_to(mail, FAN, "Count me in: first!")
        send(blog.parts.settings.smtp_port, FAN, [address], raw)
        pid = post_id(blog, "news")

        def published() -> list[Comment]:
            with blog.parts.session_factory() as session:
                return list(session.scalars(select(Comment).where(Comment.post_id == pid)))

        [first] = wait_for(published, what="the comment from the reply")
        assert first.body == "Count me in: first!"
        assert first.parent_id is None and first.author_id == blog.person(FAN)
        fan = blog.person(FAN)
        with blog.parts.session_factory() as session:
            following = session.scalar(
                select(Subscription).where(
                    Subscription.post_id == pid, Subscription.person_id == fan
                )
            )
        assert following is not None and following.active and following.digest is None
        [to_author] = wait_for(
            lambda: [m for m in sink[0].to(AUTHOR) if "Count me in" in text_of(m)],
            what="the author's notification",
        )
        # The author answers by mail; the replier hears of it as a follower of the post.
        answer, raw = reply_to(to_author, AUTHOR, "Welcome aboard.")
        send(blog.parts.settings.smtp_port, AUTHOR, [answer], raw)
        wait_for(
            lambda: [m for m in sink[0].to(FAN) if "Welcome aboard." in text_of(m)],
            what="the next comment mailed to the replier",
        )

    def test_the_mailed_reply_address_is_the_replier_s_own(
        self,
        env: dict[str, str],
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
    ) -> None:
        """Someone else sending to a follower's reply address is not published as them."""
        follow_all(env, FAN)
        add_post(env, "news", "Guarded news")
        mail = wait_for_post_mail(sink[0], FAN, "Guarded news")
        address, raw = reply_to(mail, OTHER, "I am not the fan")
        send(blog.parts.settings.smtp_port, OTHER, [address], raw)

        def finished() -> list[InboundEmail]:
            with blog.parts.session_factory() as session:
                rows = session.scalars(select(InboundEmail)).all()
                return [r for r in rows if r.status not in ("received", "processing")]

        [row] = wait_for(finished, what="the reply from another address finished")
        assert (row.status, row.reason_code) == ("rejected", "sender_mismatch")
        with blog.parts.session_factory() as session:
            assert session.scalars(select(Comment)).all() == []


class TestThreading:
    def test_a_new_post_message_id_names_the_post_only_when_signed_for_it(self, blog: Blog) -> None:
        """`<pPOST.token@domain>` routes to the post and person its token names; the token
        of a comment's notification, a token under another post's number, or a tampered one
        route nowhere."""
        book, keyring = blog.parts.book, blog.parts.keyring
        target = ReplyTarget(7, None, 3)
        message_id = book.new_post_id(target, keyring)
        assert message_id.startswith("<p7.") and message_id.endswith("@replies.example.org>")
        assert book.thread_target(message_id, keyring) == target
        token = message_id[4:].split("@")[0]
        notification = book.notification_id(ReplyTarget(7, 9, 3), keyring)
        refused = [
            message_id.replace("<p7.", "<p8."),
            message_id.replace("<p7.", "<c7."),
            notification.replace("<c9.", "<p7."),
            message_id.replace(token, token[:-1] + ("a" if token[-1] != "a" else "b")),
        ]
        for forged in refused:
            assert book.thread_target(forged, keyring) is None, forged

    def test_a_reply_to_the_bare_address_routes_by_in_reply_to_and_mailto_stops(
        self,
        env: dict[str, str],
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
    ) -> None:
        """A forwarder that drops the token: the reply to the bare reply@ address still
        becomes a comment on the post, through the signed Message-ID it answers; mail to the
        List-Unsubscribe mailto: address ends the follow of new posts."""
        follow_all(env, FAN)
        add_post(env, "news", "Threaded news")
        mail = wait_for_post_mail(sink[0], FAN, "Threaded news")
        bare = f"reply@{blog.parts.settings.domain}"
        _, raw = reply_to(mail, FAN, "Routed by threading")
        send(blog.parts.settings.smtp_port, FAN, [bare], raw)
        pid = post_id(blog, "news")

        def published() -> list[Comment]:
            with blog.parts.session_factory() as session:
                return list(session.scalars(select(Comment).where(Comment.post_id == pid)))

        [comment] = wait_for(published, what="the comment routed by In-Reply-To")
        assert comment.body == "Routed by threading"
        [mailto] = re.findall(r"<mailto:([^?>]+)", str(mail["List-Unsubscribe"]))
        address = unquote(mailto)
        send(blog.parts.settings.smtp_port, FAN, [address], reply_message(FAN, address, "stop"))

        def stopped() -> bool:
            with blog.parts.session_factory() as session:
                return session.scalar(select(BlogSubscription.active)) is False

        wait_for(stopped, what="the follow of new posts ended by mail")


class TestStopping:
    def test_one_click_unsubscribe_stops_the_next_posts(
        self,
        env: dict[str, str],
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        http: HttpClient,
    ) -> None:
        """GET of the link only asks; the one-click POST (RFC 8058) ends the subscription to
        new posts: the next post reaches another follower and not them."""
        follow_all(env, FAN)
        follow_all(env, OTHER)
        add_post(env, "one", "Post one")
        path = one_click(wait_for_post_mail(sink[0], FAN, "Post one"))
        asked = http.get(path, auth=False)
        assert asked.status == 200 and "Stop mail about new posts?" in asked.text
        done = http.post(
            path,
            data=b"List-Unsubscribe=One-Click",
            auth=False,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert done.status == 200 and "You are unsubscribed" in done.text
        assert "no more mail about new posts" in done.text
        again = http.post(path, auth=False)
        assert "You are already unsubscribed" in again.text
        add_post(env, "two", "Post two")
        wait_for_post_mail(sink[0], OTHER, "Post two")
        assert about(sink[0], FAN, "Post two") == []
        assert [m["Subject"] for m in sink[0].to(FAN)] == ["Post one"]

    def test_mail_queued_before_an_unsubscribe_is_cancelled_at_sending(
        self, env: dict[str, str], settings: Settings, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A post added while the daemon is down queues its mail; the follower unsubscribes
        (`unsubscribe --all`) before the daemon starts: theirs is cancelled with the reason,
        another follower's goes out."""
        follow_all(env, FAN)
        follow_all(env, OTHER)
        add_post(env, "early", "Early post")
        run(env, "unsubscribe", "--all", "--email", FAN)
        running = RunningServer(settings).start()
        try:
            wait_for_post_mail(sink[0], OTHER, "Early post")
            [row] = wait_for(
                lambda: [r for r in queued_to(blog, FAN) if r.status == "cancelled"],
                what="the unsubscribed follower's mail cancelled",
            )
            assert "stopped following the blog's new posts" in (row.last_error or "")
            assert sink[0].to(FAN) == []
        finally:
            running.stop()


class TestDigests:
    def test_digest_takers_get_new_posts_in_their_digest_not_one_by_one(
        self,
        env: dict[str, str],
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        http: HttpClient,
    ) -> None:
        """With --digest daily a new post waits for the digest (no mail of its own, while a
        follower by mail has theirs); `digest send` lists it with a reply address that
        comments on it, once: a second run sends nothing. The digest's one-click link stops
        the new posts in it too."""
        follow_all(env, DIGESTER, "--digest", "daily")
        follow_all(env, FAN)
        printed = add_post(env, "news", "Digest-worthy post")
        assert "1 more get it in their next digest" in printed
        wait_for_post_mail(sink[0], FAN, "Digest-worthy post")
        assert queued_to(blog, DIGESTER) == [] and sink[0].to(DIGESTER) == []
        assert "queued 1 daily digest(s)" in run(env, "digest", "send", "--period", "daily").stdout
        [digest] = wait_for(lambda: sink[0].to(DIGESTER), what="the digest")
        assert digest["Subject"].startswith("Example Blog: 1 new post (")
        text = text_of(digest)
        assert "== New posts ==" in text and "Digest-worthy post, by Ann Author" in text
        [address] = re.findall(r"To comment, write to: (\S+)", text)
        found = blog.parts.book.recipient(address, blog.parts.keyring)
        pid = post_id(blog, "news")
        assert found is not None
        assert found.target == ReplyTarget(pid, None, blog.person(DIGESTER))
        assert "queued 0 daily" in run(env, "digest", "send", "--period", "daily").stdout
        send(
            blog.parts.settings.smtp_port,
            DIGESTER,
            [address],
            reply_message(DIGESTER, address, "Commented from my digest"),
        )
        wait_for(
            lambda: [m for m in sink[0].to(AUTHOR) if "Commented from my digest" in text_of(m)],
            what="the comment from the digest, mailed to the author",
        )
        assert "You are unsubscribed" in http.post(one_click(digest), auth=False).text
        with blog.parts.session_factory() as session:
            assert session.scalar(select(BlogSubscription.active)) is False


class TestFollowForm:
    def test_the_page_form_follows_every_post_once_confirmed(
        self,
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        http: HttpClient,
    ) -> None:
        """The follow form's "every new post" choice mails a confirmation; nothing follows
        until its link's button is pressed; then the next post reaches the reader."""
        blog.post()
        forms = read_forms(http.get("/posts/hello", auth=False).text)
        assert "f-scope" in forms.fields and "f-scope" in forms.labels
        fields = {
            "form_token": forms.hidden["form_token"],
            "email": READER,
            "scope": "all",
            "digest": "",
            "website": "",
        }
        sent = post_form(http, "/posts/hello/follow", fields)
        assert sent.status == 200 and "the blog&#39;s new posts" in sent.text, sent.text
        mail = wait_for_confirmation(sink[0])
        assert mail["Subject"] == "Confirm: email me new posts on Example Blog"
        assert "an email for each new post on Example Blog" in text_of(mail)
        path = confirm_path(mail)
        page = http.get(path, auth=False)
        assert "Email you new posts?" in page.text
        with blog.parts.session_factory() as session:
            assert session.scalars(select(BlogSubscription)).all() == []
            assert session.scalars(select(Subscription)).all() == []
        assert http.post(path, auth=False).status in (200, 303)
        reader = blog.person(READER)
        with blog.parts.session_factory() as session:
            [following] = session.scalars(select(BlogSubscription)).all()
            assert following.person_id == reader
            assert following.active and following.digest is None
            assert session.scalars(select(Subscription)).all() == []  # not the post itself
        created = http.post(
            "/api/posts",
            json_body={
                "id": "next",
                "title": "The next post",
                "url": f"{BASE}/next",
                "author_email": AUTHOR,
            },
        )
        assert created.status == 201
        wait_for_post_mail(sink[0], READER, "The next post")

    def test_a_reply_to_the_confirmation_starts_a_weekly_digest_of_new_posts(
        self,
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        http: HttpClient,
    ) -> None:
        """The embed's JSON request with scope "all" and a weekly digest, confirmed by a
        reply; a scope that is neither post nor all is refused with a sentence."""
        blog.post()
        wrong = reader_follow(http, scope="everything")
        assert wrong.status == 400 and 'choose "post"' in wrong.json()["error"]
        answer = reader_follow(http, scope="all", digest="weekly")
        assert answer.status == 202 and "new posts" in answer.json()["message"]
        mail = wait_for_confirmation(sink[0])
        assert "a weekly digest of new posts" in text_of(mail)
        confirm = mail["Reply-To"].addresses[0].addr_spec
        send(blog.parts.settings.smtp_port, READER, [confirm], reply_message(READER, confirm, "ok"))

        def following() -> BlogSubscription | None:
            with blog.parts.session_factory() as session:
                return session.scalar(select(BlogSubscription))

        row = wait_for(following, what="the follow of new posts")
        assert row.active and row.digest == "weekly"


class TestOnPostgres:
    @pytest.fixture
    def settings(
        self, tmp_path: Path, postgres_url: str, sink: tuple[SinkHandler, int]
    ) -> Settings:
        """Settings whose database is the run's (emptied) PostgreSQL database."""
        var_dir = tmp_path / "var"
        var_dir.mkdir()
        return make_settings(
            var_dir,
            REPLYD_DATABASE_URL=postgres_url,
            REPLYD_OUTBOUND=f"smtp://127.0.0.1:{sink[1]}",
        )

    @pytest.fixture
    def env(self, settings: Settings, postgres_url: str) -> dict[str, str]:
        """A `replyd` process's environment for the PostgreSQL database."""
        return {
            **cli_env(settings),
            "REPLYD_DATABASE_URL": postgres_url,
            "REPLYD_SITE_NAME": "Example Blog",
            "REPLYD_BASE_URL": BASE,
        }

    def test_mail_digest_and_reply_on_postgresql(
        self,
        env: dict[str, str],
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
    ) -> None:
        """The same flow on PostgreSQL: the mail and the digest (both checked at sending)
        arrive, and a reply to the mail becomes a comment."""
        follow_all(env, FAN)
        follow_all(env, DIGESTER, "--digest", "weekly")
        add_post(env, "news", "Postgres news")
        mail = wait_for_post_mail(sink[0], FAN, "Postgres news")
        run(env, "digest", "send", "--period", "weekly")
        [digest] = wait_for(lambda: sink[0].to(DIGESTER), what="the digest")
        assert "Postgres news, by Ann Author" in text_of(digest)
        address, raw = reply_to(mail, FAN, "Hello from PostgreSQL")
        send(blog.parts.settings.smtp_port, FAN, [address], raw)
        wait_for(
            lambda: [m for m in sink[0].to(AUTHOR) if "Hello from PostgreSQL" in text_of(m)],
            what="the comment mailed to the author",
        )
