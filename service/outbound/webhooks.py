"""Delivers queued webhook events: claims them in order per post, signs and POSTs each,
retries with exponential backoff for most of a day, then marks them failed."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from service.outbound.webhook_payload import Claimed, event_body, headers
from service.runtime.webhook_settings import WebhookSettings
from service.store.engine import READ_ONLY
from service.store.models import Comment, Post, UTCDateTime, WebhookEvent, utcnow
from service.store.webhook_events import WebhookStatus, endpoint

log = logging.getLogger(__name__)

# Attempts in all (the first and twelve retries): with the default 30 s the retries wait
# 30 s, 1, 2, 4, 8, 16, 32 min, 1 h 4, 2 h 8, 4 h 16, then 6 h twice: 20.5 hours in all.
MAX_ATTEMPTS = 13
BACKOFF_CAP = 720  # the longest wait, in first retries' delays (6 h at 30 s)
CLAIM_LIMIT = 16
_SENDING = (WebhookStatus.QUEUED, WebhookStatus.SENDING)


def retry_delay(attempts: int, first: float) -> timedelta | None:
    """How long to wait after failed attempt number `attempts`; None once they are spent."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return timedelta(seconds=first * min(2 ** (attempts - 1), BACKOFF_CAP))


# Due events whose post has no earlier event (for the same URL) still waiting: a receiver
# gets a post's events in the order they happened. Built once: it runs every second.
_EARLIER = aliased(WebhookEvent)
_NOW = bindparam("now", type_=UTCDateTime())
_DUE = (
    select(WebhookEvent)
    .where(
        or_(
            (WebhookEvent.status == WebhookStatus.QUEUED) & (WebhookEvent.next_attempt_at <= _NOW),
            (WebhookEvent.status == WebhookStatus.SENDING) & (WebhookEvent.lease_until < _NOW),
        ),
        ~exists().where(
            and_(
                _EARLIER.post_id == WebhookEvent.post_id,
                _EARLIER.url == WebhookEvent.url,
                _EARLIER.id < WebhookEvent.id,
                _EARLIER.status.in_(_SENDING),
            )
        ),
    )
    .order_by(WebhookEvent.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True, of=WebhookEvent)
)
_RECORD = (
    update(WebhookEvent)
    .where(
        WebhookEvent.id == bindparam("row_id"),
        # A sender whose lease lapsed cannot overwrite the new claimant's result.
        WebhookEvent.claimed_by == bindparam("worker"),
        WebhookEvent.status == WebhookStatus.SENDING,
    )
    .values(
        status=bindparam("new_status"),
        next_attempt_at=bindparam("next_attempt_at", type_=UTCDateTime()),
        last_error=bindparam("error"),
        delivered_at=bindparam("delivered_at", type_=UTCDateTime()),
        claimed_by=None,
        lease_until=None,
    )
)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer that is not 2xx: the body is not sent anywhere else."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def post_event(url: str, fields: dict[str, str], body: bytes, timeout: float) -> str | None:
    """POST one event; None when the receiver answered 2xx, else why not (without the URL's
    path or query, which may hold the receiver's own token)."""
    opener = urllib.request.build_opener(_NoRedirects)
    request = urllib.request.Request(url, data=body, headers=fields, method="POST")
    where = endpoint(url)
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(65536)  # the answer is not used; read a little so it is complete
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return f"{where} answered HTTP {exc.code}"
    except TimeoutError:
        return f"{where} did not answer within {timeout:g} s"
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return f"{where} did not answer within {timeout:g} s"
        return f"cannot reach {where}: {exc.reason}"
    except (OSError, http.client.HTTPException) as exc:
        return f"cannot reach {where}: {exc.__class__.__name__}: {exc}"
    return None if 200 <= status < 300 else f"{where} answered HTTP {status}"


class WebhookSender:
    """Claims due events, writes and signs their bodies, POSTs them and records the result."""

    def __init__(self, session_factory: sessionmaker[Session], settings: WebhookSettings) -> None:
        self.session_factory = session_factory
        self.settings = settings
        # Longer than an attempt takes (each wait on the receiver is bounded by the timeout),
        # so a claim outlives its holder only if it died; should it lapse mid-attempt after
        # all, another sender sends the event again: at least once, never lost.
        self.lease = timedelta(seconds=settings.timeout_seconds * 3 + 30)

    def claim_due(self, worker: str, limit: int = CLAIM_LIMIT) -> list[Claimed]:
        """Claim up to `limit` due events, at most one per post and URL."""
        now = utcnow()
        with self.session_factory.begin() as session:
            rows = list(session.scalars(_DUE, {"now": now, "limit": limit}))
            claimed = []
            for row in rows:
                row.status, row.claimed_by = WebhookStatus.SENDING, worker
                row.lease_until, row.attempts = now + self.lease, row.attempts + 1
                claimed.append(
                    Claimed(
                        row.id,
                        row.event_id,
                        row.type,
                        row.url,
                        row.post_id,
                        row.comment_id,
                        row.parent_id,
                        row.comment_created_at,
                        row.occurred_at,
                        row.attempts,
                    )
                )
            return claimed

    def write_bodies(self, claimed: list[Claimed]) -> list[bytes | str]:
        """Each event's body as of now, or why it is not sent (see event_body)."""
        with self.session_factory() as session:
            session.connection(execution_options={READ_ONLY: True})
            posts = {
                p.id: p
                for p in session.scalars(
                    select(Post).where(Post.id.in_({c.post_id for c in claimed}))
                )
            }
            comments = {
                c.id: c
                for c in session.scalars(
                    select(Comment).where(Comment.id.in_({c.comment_id for c in claimed}))
                )
            }
            return [
                event_body(event, posts.get(event.post_id), comments.get(event.comment_id))
                for event in claimed
            ]

    def send(self, event: Claimed, body: bytes) -> str | None:
        """POST one event, signed for this attempt; None when it was taken."""
        fields = headers(self.settings.key, event.event_id, int(time.time()), body)
        return post_event(event.url, fields, body, self.settings.timeout_seconds)

    def outcome(
        self, event: Claimed, error: str | None, cancelled: bool, now: datetime
    ) -> dict[str, Any]:
        """The parameters of _RECORD for one attempt."""
        change: dict[str, Any] = {
            "row_id": event.id,
            "new_status": WebhookStatus.DELIVERED,
            "next_attempt_at": now,
            "error": None,
            "delivered_at": now,
        }
        if error is None:
            return change
        change.update(delivered_at=None, error=error[:2000])
        delay = None if cancelled else retry_delay(event.attempts, self.settings.retry_seconds)
        if cancelled:
            change["new_status"] = WebhookStatus.CANCELLED
        elif delay is None:
            change["new_status"] = WebhookStatus.FAILED
        else:
            change.update(new_status=WebhookStatus.QUEUED, next_attempt_at=now + delay)
        return change

    def record_all(self, changes: list[dict[str, Any]], worker: str) -> None:
        """Store the outcomes of a batch in one commit."""
        if changes:
            with self.session_factory.begin() as session:
                rows = [{**change, "worker": worker} for change in changes]
                session.connection().execute(_RECORD, rows)

    async def run_once(self, worker: str) -> int:
        """Send a batch of due events; returns how many were claimed."""
        claimed = await asyncio.to_thread(self.claim_due, worker)
        if not claimed:
            return 0
        bodies = await asyncio.to_thread(self.write_bodies, claimed)
        sending = [(e, b) for e, b in zip(claimed, bodies, strict=True) if isinstance(b, bytes)]
        # Different posts (and URLs) at once: one slow receiver does not hold up the others.
        errors = await asyncio.gather(*(asyncio.to_thread(self.send, e, b) for e, b in sending))
        results = dict(zip((e.id for e, _ in sending), errors, strict=True))
        now = utcnow()
        changes = []
        for event, body in zip(claimed, bodies, strict=True):
            cancelled = isinstance(body, str)
            error = body if isinstance(body, str) else results[event.id]
            change = self.outcome(event, error, cancelled, now)
            changes.append(change)
            where = endpoint(event.url)
            if error is None:
                log.info("webhook event #%s %s delivered to %s", event.id, event.type, where)
            else:
                log.warning(
                    "webhook event #%s %s attempt %s: %s -> %s",
                    event.id,
                    event.type,
                    event.attempts,
                    error,
                    change["new_status"],
                )
        # A crash before this commit sends the batch again (at least once), never loses it.
        await asyncio.to_thread(self.record_all, changes, worker)
        return len(claimed)


async def webhook_loop(
    sender: WebhookSender, worker: str, *, wakeup: asyncio.Event, stopping: asyncio.Event
) -> None:
    """Send events until `stopping`: at once while there are some, else when woken or after
    a short wait (events queued by other processes, retries falling due)."""
    idle = max(0.05, min(1.0, sender.settings.retry_seconds))
    while not stopping.is_set():
        try:
            sent = await sender.run_once(worker)
        except Exception:
            log.exception("webhook delivery failed; trying again shortly")
            sent = 0
        if sent:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), idle)
        wakeup.clear()
