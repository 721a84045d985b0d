"""What readers send from the blog without the operator's token (the embed, the page's form):
checked, then kept until their address confirms it, or published at once for a browser that
confirmed that address before."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from service.identity.web_tokens import author_of
from service.outbound.audience import Audience
from service.outbound.confirmations import FOLLOW_CHOICES, epoch, follow
from service.store.idempotency import Answer, remember
from service.store.models import MAX_COMMENT_CHARS, Comment, Person, Post, utcnow
from service.web.context import (
    EMAIL_PATTERN,
    MAX_ROW_ID,
    ApiError,
    WebContext,
    find_post,
    mask_email,
    within_limit,
)
from service.web.idempotent import Idempotency, answered_before, json_text

PUBLIC_BODY_BYTES = 64 * 1024  # a comment of MAX_COMMENT_CHARS and its fields, with room
HONEYPOT = "website"  # hidden from people by the forms; only robots fill it in
MAX_NAME_CHARS = 200
DIGESTS = {"": None, "each": None, "daily": "daily", "weekly": "weekly"}
# What a follow request asks for: this post's comments, or every new post on the blog.
SCOPES = {"": False, "post": False, "all": True}


class FieldError(ApiError):
    """A field of a reader's request that cannot be taken: 400, the message naming it."""

    def __init__(self, field: str, sentence: str) -> None:
        super().__init__(400, f"{field}: {sentence}")
        self.field = field
        self.sentence = sentence


@dataclass(frozen=True)
class ReaderComment:
    """A comment a reader sent, checked."""

    slug: str
    email: str
    name: str
    body: str
    parent_id: int | None
    follow: str
    author_token: str


@dataclass(frozen=True)
class ReaderFollow:
    """A reader's request to follow a post by email, checked."""

    slug: str
    email: str
    digest: str | None
    all_posts: bool = False  # every new post on the blog, not this post's comments


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise FieldError(name, "must be text")
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def _printable(value: str, allow_lines: bool) -> bool:
    allowed = "\n\t" if allow_lines else ""
    return all(ch.isprintable() or ch in allowed for ch in value)


def reader_email(data: Mapping[str, Any], name: str) -> str:
    """The address a reader gave, lower-cased like every address replyd stores."""
    value = _text(data, name).lower()
    if (
        not value
        or len(value) > 320
        or not EMAIL_PATTERN.match(value)
        or not _printable(value, False)
    ):
        raise FieldError(
            name, "give your email address, like ann@example.org; we send a link there to confirm"
        )
    return value


def reader_comment(slug: str, data: Mapping[str, Any]) -> ReaderComment:
    """A reader's comment from JSON or a form, each field checked (FieldError says which)."""
    name = _text(data, "author_name")
    if len(name) > MAX_NAME_CHARS or not _printable(name, False):
        raise FieldError(
            "author_name", f"a name is one line of at most {MAX_NAME_CHARS} characters"
        )
    email = reader_email(data, "author_email")
    body = _text(data, "body")
    if not body:
        raise FieldError("body", "write your comment first")
    if len(body) > MAX_COMMENT_CHARS:
        raise FieldError("body", f"a comment is at most {MAX_COMMENT_CHARS} characters long")
    if not _printable(body, True):
        raise FieldError("body", "the comment holds control characters; remove them")
    parent = data.get("parent_id")
    if isinstance(parent, str):
        parent = int(parent) if parent.strip().isdigit() and len(parent) < 20 else parent or None
    if parent is not None and (
        not isinstance(parent, int) or isinstance(parent, bool) or parent < 1
    ):
        raise FieldError("parent_id", "must be the id of a comment (a positive number) or empty")
    if parent is not None and parent > MAX_ROW_ID:
        raise ApiError(404, f"post {slug!r} has no comment {parent}")
    follow_choice = _text(data, "follow") or "each"
    if follow_choice not in FOLLOW_CHOICES:
        raise FieldError("follow", "choose each, daily, weekly or none")
    token = _text(data, "author_token")
    return ReaderComment(slug, email, name, body, parent, follow_choice, token)


def reader_follow(slug: str, data: Mapping[str, Any]) -> ReaderFollow:
    """A reader's follow request from JSON or a form, checked."""
    email = reader_email(data, "email")
    digest = data.get("digest")
    if digest is not None and (not isinstance(digest, str) or digest.strip() not in DIGESTS):
        raise FieldError("digest", 'choose null (each comment), "daily" or "weekly"')
    scope = data.get("scope")
    if scope is not None and (not isinstance(scope, str) or scope.strip() not in SCOPES):
        raise FieldError("scope", 'choose "post" (its comments) or "all" (every new post)')
    all_posts = SCOPES[scope.strip()] if scope else False
    return ReaderFollow(slug, email, DIGESTS[digest.strip()] if digest else None, all_posts)


def filled_honeypot(data: Mapping[str, Any]) -> bool:
    """Whether the field people never see was filled in: a robot sent this."""
    value = data.get(HONEYPOT)
    return bool(value.strip()) if isinstance(value, str) else value not in (None, False)


def pending_answer(email: str, what: str) -> dict[str, str]:
    """The answer to a request that waits for its address: where the link went."""
    if what == "comment":
        text = (
            f"We sent a link to {mask_email(email)}. Your comment appears once you open it "
            "(or reply to that email)."
        )
    elif what == "all posts":
        text = (
            f"We sent a link to {mask_email(email)}. You get the blog's new posts once you "
            "open it (or reply to that email)."
        )
    else:
        text = (
            f"We sent a link to {mask_email(email)}. You follow this post once you open it "
            "(or reply to that email)."
        )
    return {"status": "pending", "message": text}


def _open_post(session: Session, slug: str) -> Post:
    post = find_post(session, slug)
    if post.closed:
        raise ApiError(409, f"post {slug!r} is closed to comments")
    return post


def submit_comment(
    web: WebContext, new: ReaderComment, retries: Idempotency | None
) -> tuple[Answer, bool]:
    """Keep a reader's comment and mail its confirmation (202), or publish it at once when
    the request carries an author token for its address (201); with an Idempotency-Key
    already answered, that answer instead. Returns the answer and whether it is a replay."""
    now = utcnow()
    author = (
        author_of(new.author_token, web.parts.keyring, epoch(now)) if new.author_token else None
    )
    with web.parts.session_factory.begin() as session:
        earlier = answered_before(session, retries, now)
        if earlier is not None:
            return earlier, True
        post = _open_post(session, new.slug)
        if new.parent_id is not None:
            parent = session.get(Comment, new.parent_id)
            if parent is None or parent.post_id != post.id:
                raise ApiError(404, f"post {new.slug!r} has no comment {new.parent_id}")
        person = session.get(Person, author) if author is not None else None
        if person is not None and person.email == new.email:
            answer = _publish_now(web, session, post, person, new)
        else:
            within_limit(web, "email", new.email, "to this email address", "confirmation mails")
            web.confirmations.request_comment(
                session,
                post,
                parent_id=new.parent_id,
                email=new.email,
                author_name=new.name,
                body=new.body,
                follow=new.follow,
                now=now,
            )
            answer = Answer(202, json_text(pending_answer(new.email, "comment")))
        if retries is not None:
            # In the request's own transaction: either both are kept or neither is.
            remember(session, retries.key, retries.fingerprint, answer, now)
        return answer, False


def _publish_now(
    web: WebContext, session: Session, post: Post, person: Person, new: ReaderComment
) -> Answer:
    """Publish the comment of a browser that confirmed this address before (its author token)."""
    if new.name:
        person.display_name = new.name
        session.flush()
    comment = Comment(
        post_id=post.id, parent_id=new.parent_id, author_id=person.id, body=new.body, source="web"
    )
    audience = Audience(session, [post])
    web.intake.submit(session, comment, post, person, audience)  # or held for a moderator
    follow(session, post, person, new.follow)
    shown = {
        "id": comment.id,
        "parent_id": comment.parent_id,
        "author_name": person.display_name,
        "body": comment.body,
        "source": "web",
        "created_at": comment.created_at.isoformat(),
        "status": comment.status,
    }
    return Answer(201, json_text(shown))


def submit_follow(web: WebContext, new: ReaderFollow) -> Answer:
    """Mail a reader the link that makes them follow a post (at most once an hour for one
    address and post; the answer is the same either way, so it tells nobody who follows)."""
    now = utcnow()
    with web.parts.session_factory.begin() as session:
        post = _open_post(session, new.slug)
        within_limit(web, "email", new.email, "to this email address", "confirmation mails")
        web.confirmations.request_follow(
            session, post, email=new.email, digest=new.digest, now=now, all_posts=new.all_posts
        )
    what = "all posts" if new.all_posts else "follow"
    return Answer(202, json_text(pending_answer(new.email, what)))
