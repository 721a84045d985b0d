"""What others read holds none of our addresses, links or tokens: the stored comment, the
mail to followers, the public page, the public API and the Atom feed."""

from __future__ import annotations

from email.message import EmailMessage

from sqlalchemy import select

from service.identity.addresses import ReplyTarget, make_token
from service.identity.scrub import (
    ADDRESS_REMOVED,
    LINK_REMOVED,
    TOKEN_REMOVED,
    remove_own_addresses,
)
from service.store.models import Person, Subscription
from tests.conftest import DOMAIN, Blog, RunningServer, SinkHandler, reply_message, send
from tests.http_fixtures import HttpClient, http, settings_overrides
from tests.test_reply_flow import comments, delivered, final_row

__all__ = ["http", "settings_overrides"]  # fixtures, imported so this module uses them

AUTHOR = "author@example.org"
READER = "rita@example.org"
OTHER = "olga@example.org"
FAN = "fan@example.org"


def bodies(mail: EmailMessage) -> str:
    """The decoded text (and HTML) parts of a message."""
    parts = [mail.get_body((kind,)) for kind in ("plain", "html")]
    return "\n".join(part.get_content() for part in parts if part is not None)


def secrets_of(blog: Blog, post: int, email: str) -> dict[str, str]:
    """Every address and token of ours that `email` holds for `post`, as mail shows them."""
    book, keyring = blog.parts.book, blog.parts.keyring
    person = blog.person(email)
    target = ReplyTarget(post, None, person)
    unsubscribe = make_token(target, keyring, "unsubscribe")
    return {
        "reply": book.reply_address(target, keyring),
        "unsubscribe": book.unsubscribe_address(target, keyring),
        "bounce": book.bounce_address(41, person, keyring),
        "digest": book.digest_address(42, person, keyring),
        "link": f"https://blog.example.org/unsubscribe/{unsubscribe}",
        "token": unsubscribe,
        "message-id": book.notification_id(ReplyTarget(post, 1, person), keyring),
    }


def tokens(secrets: dict[str, str]) -> list[str]:
    """The secret part of each: what must appear nowhere public."""
    found = []
    for value in secrets.values():
        local = value.rsplit("/", 1)[-1].strip("<>").split("@")[0]
        found.append(local.split("+")[-1].split(".")[-1])
    return found


def follow(blog: Blog, post: int, email: str) -> None:
    with blog.parts.session_factory.begin() as session:
        session.add(Subscription(post_id=post, person_id=blog.person(email)))


class TestOwnAddressesNeverPublished:
    def test_typed_reply_addresses_are_cut_everywhere(
        self,
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        http: HttpClient,
    ) -> None:
        """A reply whose text holds the writer's own reply, unsubscribe, bounce and digest
        addresses, links and tokens, and another reader's address: none of them reaches the
        stored comment, a follower's mail, the page, the public API or the feed."""
        post = blog.post()
        follow(blog, post, FAN)
        mine, hers = secrets_of(blog, post, READER), secrets_of(blog, post, OTHER)
        typed = (
            f"Reply to me at {mine['reply']} (or {mine['reply'].upper()}).\n"
            f"Olga is <{hers['reply']}>, mailto:{hers['unsubscribe'].replace('@', '%40')}\n"
            f"Stop: {mine['link']}?x=1 and {mine['token']}.\n"
            f"Bounces {mine['bounce']}, digests {mine['digest']}, thread {mine['message-id']}\n"
            f"Olga's link: {hers['link']}\n"
            "Thanks for the post, mail me at rita@example.org!"
        )
        quoted = "\n".join(f"> {line}" for line in typed.splitlines())
        body = f"{typed}\n\nOn Mon, Nov 23, 2026, Example Blog <{mine['reply']}> wrote:\n{quoted}"
        address = mine["reply"]
        send(server.port, READER, [address], reply_message(READER, address, body))
        assert final_row(blog).status == "processed"
        [comment] = comments(blog)
        secret_parts = tokens(mine) + tokens(hers)
        assert all(len(part) >= 20 for part in secret_parts)
        for part in secret_parts:
            assert part not in comment.body.lower() and part not in comment.elided.lower()
        assert ADDRESS_REMOVED in comment.body and LINK_REMOVED in comment.body
        assert "Thanks for the post, mail me at rita@example.org!" in comment.body
        [to_fan] = delivered(sink, FAN)
        [to_author] = delivered(sink, AUTHOR)
        page = http.get("/posts/hello", auth=False).text
        feed = http.get("/posts/hello/comments.atom", auth=False).text
        api = http.get("/api/posts/hello/comments", auth=False).text
        for text in (bodies(to_fan), bodies(to_author), page, feed, api):
            assert "Thanks for the post" in text
            for part in secret_parts:
                assert part not in text.lower()

    def test_web_comments_are_cleaned_the_same_way(
        self, server: RunningServer, blog: Blog, http: HttpClient
    ) -> None:
        """A comment made through the API holds no reply address of ours either, in its
        text or in the name it is signed with."""
        post = blog.post()
        hers = secrets_of(blog, post, OTHER)
        reply = http.post(
            "/api/posts/hello/comments",
            json_body={
                "author_email": READER,
                "author_name": f"Rita {hers['reply']}",
                "body": f"Olga can be reached at {hers['reply']} and {hers['link']}",
            },
        )
        assert reply.status == 201, reply.text
        [comment] = comments(blog)
        with blog.parts.session_factory() as session:
            name = session.scalars(select(Person.display_name).where(Person.email == READER))
            assert list(name) == [f"Rita {ADDRESS_REMOVED}"]
        assert comment.body == f"Olga can be reached at {ADDRESS_REMOVED} and {LINK_REMOVED}"

    def test_a_link_or_token_without_any_address_is_cut_too(
        self, server: RunningServer, blog: Blog, http: HttpClient
    ) -> None:
        """Text that holds no "@" at all still loses our tokened links and bare tokens."""
        post = blog.post()
        hers = secrets_of(blog, post, OTHER)
        body = f"Her link {hers['link']} and her token {hers['token']} here"
        assert "@" not in body
        reply = http.post(
            "/api/posts/hello/comments", json_body={"author_email": READER, "body": body}
        )
        assert reply.status == 201, reply.text
        [comment] = comments(blog)
        assert comment.body == f"Her link {LINK_REMOVED} and her token {TOKEN_REMOVED} here"

    def test_what_is_not_ours_stays(self, blog: Blog) -> None:
        """Other people's addresses, our plain sender address and ordinary links are kept;
        a token signed with another key is not ours and is kept too."""
        from service.identity.addresses import Keyring

        book, keyring = blog.parts.book, blog.parts.keyring
        foreign = Keyring.from_strings("some-other-install-secret")
        text = (
            f"ann@example.org notifications@{DOMAIN} https://blog.example.org/hello "
            f"{book.reply_address(ReplyTarget(1, None, 2), foreign).split('+')[1].split('@')[0]} "
            "internationalizations"
        )
        assert remove_own_addresses(text, book, keyring) == text
