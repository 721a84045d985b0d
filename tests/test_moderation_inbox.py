"""Moderating from the inbox, over real SMTP in, real HTTP and a real SMTP sink out: held
comments reach nobody, mailed one-click links approve or remove them once, trust grows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from service.identity.moderation_links import LinkAction, make_moderation_token
from service.runtime.settings import Settings
from service.store.models import CommentStatus, InboundStatus, Subscription, utcnow
from tests.conftest import Blog, RunningServer, SinkHandler, make_settings, wait_for
from tests.http_fixtures import API_TOKEN, HttpClient, http
from tests.moderation_helpers import (
    AUTHOR,
    FOLLOWER,
    READER,
    about,
    admin_browser,
    comment_row,
    events,
    link_paths,
    mail_to,
    moderation_mail,
    moderators_asked,
    notification_id,
    reply_by_mail,
    text_of,
)

__all__ = ["http"]  # a fixture, imported so this module uses it

MODERATOR = "mod@example.org"
Sink = tuple[SinkHandler, int]


def follower(blog: Blog, post_id: int) -> int:
    """A person following the post, per comment."""
    person = blog.person(FOLLOWER, "Fay Follower")
    with blog.parts.session_factory.begin() as session:
        session.add(Subscription(post_id=post_id, person_id=person))
    return person


class TestHeldUntilApproved:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """First comments wait (REPLYD_MODERATION=new); a second moderator is configured."""
        return {
            "REPLYD_API_TOKEN": API_TOKEN,
            "REPLYD_MODERATION": "new",
            "REPLYD_MODERATORS": MODERATOR,
        }

    def test_held_comment_mails_moderators_only_until_approved_by_link(
        self, server: RunningServer, blog: Blog, sink: Sink, http: HttpClient
    ) -> None:
        """A first comment is held: the moderators get its text, sender and links, followers
        nothing (while the author's own comment reaches them); the mailed Approve link asks on
        GET and acts on POST, once; then the followers get it with its stable Message-ID, and
        the commenter's next comment is published at once."""
        post = blog.post()
        fan = follower(blog, post)
        row = reply_by_mail(blog, server.port, post, READER, "Is this thing on?")
        assert row.status == InboundStatus.PROCESSED, row.reason
        [asked] = {row.comment_id for row in moderation_mail(blog)}
        assert asked is not None
        held = comment_row(blog, asked)
        assert held.status == CommentStatus.HELD and held.published_at is None
        [ask] = mail_to(sink, AUTHOR)
        [other_ask] = mail_to(sink, MODERATOR)
        text = text_of(ask)
        assert "Is this thing on?" in text and READER in text
        assert "next comments appear without waiting" in text  # trust grows with "new"
        assert ask["Subject"] == "Comment waiting for approval: Post hello"
        links, other_links = link_paths(ask), link_paths(other_ask)
        assert set(links) == {"approve", "remove"} and links != other_links  # bound to each

        # Proof the followers would have heard by now: the author's own comment reaches them.
        reply_by_mail(blog, server.port, post, AUTHOR, "Yes it is.")
        [to_fan] = mail_to(sink, FOLLOWER)
        assert "Yes it is." in text_of(to_fan)
        assert about(sink[0].to(FOLLOWER), held.id) == []
        assert "Is this thing on?" not in http.get("/posts/hello").text
        assert "Is this thing on?" not in http.get("/posts/hello/comments.atom").text
        listed = http.get("/api/posts/hello/comments", auth=False).json()["comments"]
        assert [c["body"] for c in listed] == ["Yes it is."]

        page = http.get(links["approve"], auth=False)
        assert page.status == 200 and "Approve this comment?" in page.text
        assert "Is this thing on?" in page.text and 'method="post"' in page.text
        assert comment_row(blog, held.id).status == CommentStatus.HELD  # a GET changes nothing

        done = http.post(links["approve"], auth=False)
        assert done.status == 200 and "Comment approved" in done.text
        assert comment_row(blog, held.id).status == CommentStatus.PUBLISHED
        [told] = about(mail_to(sink, FOLLOWER, 2), held.id)
        assert told["Message-ID"] == notification_id(blog, comment_row(blog, held.id), fan)
        assert "Is this thing on?" in text_of(told) and "/moderate/" not in text_of(told)
        # The other moderator's mail had left already; nothing of it was still queued.
        assert [e.action for e in events(blog, held.id)] == ["hold", "approve"]
        approve_event = events(blog, held.id)[-1]
        assert (approve_event.actor, approve_event.via) == (AUTHOR, "mail")

        again = http.post(links["approve"], auth=False)
        assert again.status == 410 and "used already" in again.text

        # Trust: the next comment is published at once, and no moderator is asked.
        reply_by_mail(blog, server.port, post, READER, "Thanks for approving.")
        mail_to(sink, FOLLOWER, 3)
        assert len(sink[0].to(MODERATOR)) == 1
        assert [c["body"] for c in http.get("/api/posts/hello/comments").json()["comments"]][
            -1
        ] == "Thanks for approving."

    def test_forged_foreign_expired_and_reused_links_do_nothing(
        self, server: RunningServer, blog: Blog, sink: Sink, http: HttpClient
    ) -> None:
        """A tampered token, a link signed for someone who does not moderate the post, an
        expired link and a used Remove link change nothing; GET never acts."""
        post = blog.post()
        reply_by_mail(blog, server.port, post, READER, "Spam spam spam")
        [ask] = mail_to(sink, AUTHOR)
        links = link_paths(ask)
        comment_id = moderation_mail(blog)[0].comment_id
        assert comment_id is not None
        token = links["approve"].rsplit("/", 1)[1]
        forged = token[:-2] + ("aa" if token[-2:] != "aa" else "bb")
        keyring = blog.parts.keyring
        reader = blog.person(READER)
        foreign = make_moderation_token(comment_id, reader, LinkAction.APPROVE, utcnow(), keyring)
        author = blog.person(AUTHOR)
        month_ago = utcnow() - timedelta(days=31)
        expired = make_moderation_token(comment_id, author, LinkAction.APPROVE, month_ago, keyring)
        for bad, status in ((forged, 404), (foreign, 404), ("nonsense", 404), (expired, 410)):
            assert http.get(f"/moderate/{bad}", auth=False).status == status
            assert http.post(f"/moderate/{bad}", auth=False).status == status
        assert comment_row(blog, comment_id).status == CommentStatus.HELD

        assert http.post(links["remove"], auth=False).status == 200
        assert comment_row(blog, comment_id).status == CommentStatus.HIDDEN
        # Restored on the admin page, it waits again (it was never approved); the used
        # Remove link cannot hide it a second time.
        browser, csrf = admin_browser(http)
        restore = f"/admin/comments/{comment_id}/restore"
        assert http.post(restore, data=csrf, auth=False, headers=browser).status == 303
        assert comment_row(blog, comment_id).status == CommentStatus.HELD
        assert http.post(links["remove"], auth=False).status == 410
        assert comment_row(blog, comment_id).status == CommentStatus.HELD

    def test_mode_new_trusts_earlier_comments_and_web_comments_are_held_too(
        self, server: RunningServer, blog: Blog, sink: Sink, http: HttpClient
    ) -> None:
        """Someone with a published comment is trusted; a newcomer's web comment is held and
        said to be, and mails only the moderators."""
        post = blog.post()
        follower(blog, post)
        made = http.post(
            "/api/posts/hello/comments",
            json_body={"author_email": "new@example.org", "body": "Hi from the web"},
        )
        assert made.status == 201 and made.json()["status"] == "held"
        mail_to(sink, AUTHOR)
        trusted = reply_by_mail(blog, server.port, post, AUTHOR, "Author speaking")
        assert trusted.status == InboundStatus.PROCESSED
        mail_to(sink, FOLLOWER)
        assert about(sink[0].to(FOLLOWER), made.json()["id"]) == []
        assert len(sink[0].to(AUTHOR)) == 1


class TestHeldUntilApprovedOnPostgres(TestHeldUntilApproved):
    """The same, with PostgreSQL as the store (skipped without REPLYD_TEST_POSTGRES_URL)."""

    @pytest.fixture
    def settings(
        self,
        tmp_path: Path,
        postgres_url: str,
        sink: Sink,
        settings_overrides: dict[str, str],
    ) -> Settings:
        """Settings whose database is the run's (emptied) PostgreSQL database."""
        var_dir = tmp_path / "var"
        var_dir.mkdir()
        return make_settings(
            var_dir,
            REPLYD_DATABASE_URL=postgres_url,
            REPLYD_OUTBOUND=f"smtp://127.0.0.1:{sink[1]}",
            **settings_overrides,
        )


class TestRemoveLinkInNotifications:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """No moderation (the default): comments are published at once."""
        return {"REPLYD_API_TOKEN": API_TOKEN}

    def test_authors_copy_carries_a_remove_link_that_hides_the_comment(
        self, server: RunningServer, blog: Blog, sink: Sink, http: HttpClient
    ) -> None:
        """The post author's notification has a signed Remove link, a follower's has none; the
        link asks on GET and hides the comment on POST; a reply quoting it publishes no link."""
        post = blog.post()
        follower(blog, post)
        reply_by_mail(blog, server.port, post, READER, "Buy cheap watches")
        [to_author] = mail_to(sink, AUTHOR)
        [to_fan] = mail_to(sink, FOLLOWER)
        assert "/moderate/" not in to_fan.as_string()
        remove = link_paths(to_author)["remove"]
        [comment] = http.get("/api/posts/hello/comments").json()["comments"]
        assert http.get(remove, auth=False).status == 200
        assert comment_row(blog, comment["id"]).status == CommentStatus.PUBLISHED
        assert "Comment removed" in http.post(remove, auth=False).text
        assert comment_row(blog, comment["id"]).status == CommentStatus.HIDDEN
        assert http.get("/api/posts/hello/comments").json()["comments"] == []
        assert "Buy cheap watches" not in http.get("/posts/hello").text

        # The author quotes the link in a reply: what is published holds no usable link.
        link = f"https://blog.example.org{remove}"
        reply_by_mail(blog, server.port, post, AUTHOR, f"Removed it, see {link} for how")
        [published] = http.get("/api/posts/hello/comments").json()["comments"]
        assert "/moderate/" not in published["body"]
        assert published["body"] == "Removed it, see [link removed] for how"


class TestEveryCommentHeld:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """REPLYD_MODERATION=all."""
        return {"REPLYD_API_TOKEN": API_TOKEN, "REPLYD_MODERATION": "all"}

    def test_all_holds_even_known_commenters_but_not_the_author(
        self, server: RunningServer, blog: Blog, sink: Sink, http: HttpClient
    ) -> None:
        """With "all" a person with a published comment still waits, the post's author does
        not, and the moderation mail promises no trust."""
        post = blog.post()
        approved = http.post(
            "/api/posts/hello/comments", json_body={"author_email": READER, "body": "First"}
        ).json()
        assert approved["status"] == "held"
        change = http.request(
            "PATCH", f"/api/comments/{approved['id']}", json_body={"status": "published"}
        )
        assert change.status == 200 and change.json()["status"] == "published"
        assert reply_by_mail(blog, server.port, post, READER, "Second").status == "processed"
        # (The mail about "First" may have been cancelled by its approval before it left.)
        [ask] = wait_for(
            lambda: [m for m in moderators_asked(sink, AUTHOR) if "Second" in text_of(m)],
            what="the moderation mail about the second comment",
        )
        assert "next comments appear" not in text_of(ask)
        reply_by_mail(blog, server.port, post, AUTHOR, "From the author")
        bodies = [c["body"] for c in http.get("/api/posts/hello/comments").json()["comments"]]
        assert bodies == ["First", "From the author"]
