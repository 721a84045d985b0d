"""The export of what replyd holds about one person, as one JSON document (GDPR article 15)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.store.idempotency import KEEP_FOR
from service.store.models import InboundEmail, Post, utcnow
from service.store.people import ADDRESS_KINDS, Holdings


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _raw_field(raw: bytes) -> dict[str, str]:
    """A message's source for JSON: as text when it is UTF-8 (nearly all mail), else base64."""
    try:
        return {"raw": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"raw_base64": base64.b64encode(raw).decode("ascii")}


def _inbound_rows(session: Session, ids: Sequence[int], raw: bool) -> list[dict[str, Any]]:
    """Inbound messages as the export lists them; the source only when asked for."""
    columns = [
        InboundEmail.id,
        InboundEmail.received_at,
        InboundEmail.finished_at,
        InboundEmail.sender,
        InboundEmail.recipient,
        InboundEmail.message_id,
        InboundEmail.status,
        InboundEmail.reason,
        InboundEmail.sha256,
        InboundEmail.raw_purged_at,
        func.length(InboundEmail.raw).label("size"),
    ]
    if raw:
        columns.append(InboundEmail.raw)
    out: list[dict[str, Any]] = []
    for start in range(0, len(ids), 500):
        chunk = sorted(ids)[start : start + 500]
        for row in session.execute(select(*columns).where(InboundEmail.id.in_(chunk))):
            item: dict[str, Any] = {
                "id": row.id,
                "received_at": _iso(row.received_at),
                "finished_at": _iso(row.finished_at),
                "sender": row.sender,
                "recipient": row.recipient,
                "message_id": row.message_id,
                "status": row.status,
                "reason": row.reason,
                "size": row.size,
                "sha256": row.sha256,
                "source_deleted_at": _iso(row.raw_purged_at),
            }
            if raw and row.raw_purged_at is None:
                item.update(_raw_field(bytes(row.raw)))
            out.append(item)
    return sorted(out, key=lambda item: item["id"])


def export_document(session: Session, holdings: Holdings, *, raw: bool = False) -> dict[str, Any]:
    """Everything stored about the address as one JSON-ready document (GDPR article 15)."""
    person = holdings.person
    posts = {p.id: p.slug for p in session.scalars(select(Post))}
    inbound = _inbound_rows(session, list(holdings.inbound), raw)
    for item in inbound:
        item["why"] = holdings.inbound[item["id"]]
    bounces = [item for item in inbound if holdings.inbound[item["id"]] == ADDRESS_KINDS["bounce"]]
    return {
        "email": holdings.email,
        "exported_at": _iso(utcnow()),
        "suppressed": holdings.suppressed,
        "person": None
        if person is None
        else {
            "id": person.id,
            "email": person.email,
            "display_name": person.display_name,
            "created_at": _iso(person.created_at),
        },
        "posts_authored": [{"id": p.slug, "title": p.title, "url": p.url} for p in holdings.posts],
        "comments": [
            {
                "id": c.id,
                "post_id": posts.get(c.post_id),
                "parent_id": c.parent_id,
                "state": c.status,
                "source": c.source,
                "body": c.body,
                "elided": c.elided,
                "inbound_id": c.inbound_email_id,
                "created_at": _iso(c.created_at),
            }
            for c in holdings.comments
        ],
        "subscriptions": [
            {
                "post_id": posts.get(s.post_id),
                "active": s.active,
                "digest": s.digest,
                "created_at": _iso(s.created_at),
            }
            for s in holdings.subscriptions
        ],
        "new_posts_subscription": None
        if holdings.blog_subscription is None
        else {
            "active": holdings.blog_subscription.active,
            "digest": holdings.blog_subscription.digest,
            "created_at": _iso(holdings.blog_subscription.created_at),
        },
        "bounces": {
            "score": person.bounce_score if person is not None else 0.0,
            "suspended_at": _iso(person.suspended_at) if person is not None else None,
            "messages": bounces,
        },
        "inbound": inbound,
        "outbound": [
            {
                "id": o.id,
                "kind": o.kind,
                "message_id": o.message_id,
                "recipient": o.recipient,
                "post_id": posts.get(o.post_id) if o.post_id is not None else None,
                "comment_id": o.comment_id,
                "status": o.status,
                "attempts": o.attempts,
                "created_at": _iso(o.created_at),
                "sent_at": _iso(o.sent_at),
                "last_error": o.last_error,
            }
            for o in holdings.outbound
        ],
        "rejection_notices": [
            {"reason": n.reason_code, "day": n.day.isoformat(), "inbound_id": n.inbound_email_id}
            for n in holdings.notices
        ],
        "web_requests_remembered": [
            {"created_at": _iso(r.created_at), "kept_until": _iso(r.created_at + KEEP_FOR)}
            for r in holdings.requests
        ],
        "comments_awaiting_confirmation": [
            {
                "post_id": posts.get(p.post_id),
                "author_name": p.author_name,
                "body": p.body,
                "status": p.status,
                "created_at": _iso(p.created_at),
            }
            for p in holdings.pending
        ],
        "follow_requests": [
            {
                "post_id": posts.get(f.post_id),
                "digest": f.digest,
                "status": f.status,
                "created_at": _iso(f.created_at),
            }
            for f in holdings.follow_requests
        ],
        "moderation_log": [
            {
                "action": e.action,
                "comment_id": e.comment_id,
                "by_them": e.actor.lower() == holdings.email,
                "via": e.via,
                "note": e.note,
                "created_at": _iso(e.created_at),
            }
            for e in holdings.moderation_events
        ],
        "blocks": [
            {
                "kind": b.kind,
                "of_them": b.value.lower() == holdings.email,
                "by_them": b.actor.lower() == holdings.email,
                "created_at": _iso(b.created_at),
            }
            for b in holdings.blocks
        ],
        "named_in_others_comments": [c.id for c in holdings.mentioned_in],
        "named_in_others_messages": _inbound_rows(session, sorted(holdings.mentioning), False),
    }
