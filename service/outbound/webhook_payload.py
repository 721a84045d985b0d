"""What a webhook receiver gets: the event as JSON, written from what is public when it is
sent, and its Standard Webhooks signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.outbound.compose import public_name
from service.store.models import Comment, Post
from service.store.visibility import is_published
from service.store.webhook_events import EventType


@dataclass(frozen=True)
class Claimed:
    """A claimed event, detached from its database session."""

    id: int
    event_id: str
    type: str
    url: str
    post_id: int
    comment_id: int
    parent_id: int | None
    comment_created_at: datetime
    occurred_at: datetime
    attempts: int  # this attempt's number, from 1


def sign(key: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value: `v1,` and the base64 HMAC-SHA256, under `key`, of
    "{webhook-id}.{webhook-timestamp}.{body}" (the exact bytes sent)."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(key: bytes, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The request's header fields: the Standard Webhooks three and the content type. The
    timestamp is the attempt's own, so a retry is not refused as a replay; the id stays."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "replyd-webhooks",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, event_id, timestamp, body),
    }


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _author_name(comment: Comment) -> str:
    """The name others see; a display name that holds the writer's address is no name."""
    name = public_name(comment.author)
    if "@" in name and comment.author.email and comment.author.email.lower() in name.lower():
        return "A reader"
    return name


def event_body(event: Claimed, post: Post | None, comment: Comment | None) -> bytes | str:
    """The JSON body of `event`, or why it is not sent: a comment.published whose comment is
    no longer published (hidden, held again, deleted) announces nothing (invariant 9).

    Only comment.published carries the comment's author name and body, read now; held,
    hidden and deleted events carry null for both, so nothing a moderator kept back or took
    away leaves in a webhook. No event carries an address.
    """
    if event.type == EventType.PUBLISHED:
        if comment is None or post is None:
            return "the comment was deleted before its event left"
        if not is_published(comment):
            return f"the comment is {comment.status} now: its publication is not announced"
    shown = comment if event.type == EventType.PUBLISHED else None
    post_url = post.url if post is not None else None
    data: dict[str, Any] = {
        "type": event.type,
        "id": event.event_id,
        "occurred_at": _iso(event.occurred_at),
        "post": {
            "id": event.post_id,
            "title": post.title if post is not None else None,
            "url": post_url,
        },
        "comment": {
            "id": event.comment_id,
            "parent_id": event.parent_id,
            "author_name": _author_name(shown) if shown is not None else None,
            "body": shown.body if shown is not None else None,
            "created_at": _iso(event.comment_created_at),
            "url": f"{post_url}#comment-{event.comment_id}" if post_url else None,
        },
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
