"""Comment events for the outgoing webhooks: queued in the transaction that caused them (one
row per URL), listed and put back by the operator."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import CursorResult, insert, select, update
from sqlalchemy.orm import Session

from service.store.engine import Deferred, execute_or_defer
from service.store.models import Comment, WebhookEvent, utcnow


class EventType(StrEnum):
    """What happened to a comment."""

    PUBLISHED = "comment.published"
    HELD = "comment.held"
    HIDDEN = "comment.hidden"
    DELETED = "comment.deleted"


class WebhookStatus(StrEnum):
    """Lifecycle of a queued event; delivered, failed and cancelled are terminal."""

    QUEUED = "queued"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"  # tried for a day; `replyd webhooks retry ID` sends it again
    # Not sent: when its turn came, the comment it announced was no longer published.
    CANCELLED = "cancelled"


STATUSES = tuple(WebhookStatus)
_QUEUE = insert(WebhookEvent)  # built once: it runs on the publishing path


class WebhookQueue:
    """Queues events for the configured URLs in the caller's transaction (invariant 3:
    an event is written with its cause, so a crash loses neither)."""

    def __init__(self, urls: Iterable[str]) -> None:
        self.urls = tuple(urls)

    def queue(
        self,
        session: Session,
        kind: EventType,
        comments: Iterable[Comment],
        later: Deferred | None = None,
    ) -> None:
        """Queue `kind` for each comment (which has its id), for every URL; with `later`,
        the rows are inserted when it is flushed."""
        now = utcnow()
        rows = []
        for comment in comments:
            event_id = f"msg_{uuid.uuid4().hex}"
            rows += [
                {
                    "event_id": event_id,
                    "type": str(kind),
                    "url": url,
                    "post_id": comment.post_id,
                    "comment_id": comment.id,
                    "parent_id": comment.parent_id,
                    "comment_created_at": comment.created_at or now,
                    "occurred_at": now,
                    "status": WebhookStatus.QUEUED,
                    "attempts": 0,
                    "next_attempt_at": now,
                }
                for url in self.urls
            ]
        execute_or_defer(session, _QUEUE, rows, later)


@dataclass(frozen=True)
class EventLine:
    """One queued event as `replyd webhooks list` shows it."""

    id: int
    type: str
    post_id: int
    comment_id: int
    endpoint: str
    status: str
    attempts: int
    next_attempt_at: str
    last_error: str


def endpoint(url: str) -> str:
    """What logs and listings name a URL by: its scheme and host (a path or query may hold
    the receiver's own token)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0].rsplit('@', 1)[-1]}"


def list_events(session: Session, status: str | None = None, limit: int = 100) -> list[EventLine]:
    """The newest events (of `status`, when given), newest first."""
    query = select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(limit)
    if status is not None:
        query = query.where(WebhookEvent.status == status)
    return [
        EventLine(
            row.id,
            row.type,
            row.post_id,
            row.comment_id,
            endpoint(row.url),
            row.status,
            row.attempts,
            row.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S")
            if row.status in (WebhookStatus.QUEUED, WebhookStatus.SENDING)
            else "-",
            row.last_error or "",
        )
        for row in session.scalars(query)
    ]


def retry_event(session: Session, event_row_id: int) -> bool:
    """Put an event back to be sent now, whatever became of it (the same webhook-id, its
    attempts counted anew); False when there is no such event."""
    result = session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == event_row_id)
        .values(
            status=WebhookStatus.QUEUED,
            attempts=0,
            next_attempt_at=utcnow(),
            claimed_by=None,
            lease_until=None,
            delivered_at=None,
        )
    )
    assert isinstance(result, CursorResult)
    return bool(result.rowcount)
