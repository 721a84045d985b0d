"""Reads delivery status notifications and keeps each address's bounce score (pure parts first)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message

from sqlalchemy.orm import Session

from service.store.models import Person, utcnow

HARD_BOUNCE = 1.0
SOFT_BOUNCE = 0.25
# Mail to an address stops when its score reaches this: three hard bounces within 12 days,
# or eleven soft ones within 4 days, always do. Not 3.0: the first two hard bounces have
# decayed a little by the time the third comes.
SUSPEND_AT = 2.5
# A score halves every 30 days without bounces, so an address that failed for a while and
# works again is forgiven with time. Deliveries do not lower it: behind a relay, the relay
# takes every message, including those it will bounce a minute later.
HALF_LIFE = timedelta(days=30)

_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")


@dataclass(frozen=True)
class Bounce:
    """What a bounce says: permanent or not, and the status code it gave (if any)."""

    hard: bool
    status: str


def read_bounce(raw: bytes) -> Bounce:
    """Classify a bounce: a DSN's Action/Status (RFC 3464), else the first status code seen."""
    message = message_from_bytes(raw, policy=policy.compat32)
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = [b for b in payload if isinstance(b, Message)] if isinstance(payload, list) else []
        for block in blocks:
            action = str(block.get("Action", "")).strip().lower()
            status = str(block.get("Status", "")).strip()
            if action == "failed" or status.startswith("5"):
                return Bounce(hard=True, status=status or "5.0.0")
            if action in ("delayed", "relayed", "expanded", "delivered"):
                return Bounce(hard=False, status=status or "4.0.0")
    match = _STATUS.search(raw[:200_000].decode("utf-8", "replace"))
    if match:
        return Bounce(hard=match.group(1) == "5", status=match.group(0))
    # A bounce that says nothing parseable counts as temporary: never suspend on a guess.
    return Bounce(hard=False, status="unknown")


def current_score(person: Person, now: datetime) -> float:
    """The person's bounce score as of `now`: what it was when last raised, halved for every
    HALF_LIFE since."""
    if person.bounce_score <= 0 or person.bounce_scored_at is None:
        return max(person.bounce_score, 0.0)
    elapsed = max((now - person.bounce_scored_at).total_seconds(), 0.0)
    return float(person.bounce_score * 0.5 ** (elapsed / HALF_LIFE.total_seconds()))


def record_bounce(session: Session, person: Person, bounce: Bounce) -> str:
    """Add a bounce to the person's (decayed) score, suspending them at the threshold; says
    what happened."""
    now = utcnow()
    score = current_score(person, now) + (HARD_BOUNCE if bounce.hard else SOFT_BOUNCE)
    person.bounce_score, person.bounce_scored_at = score, now
    kind = "hard" if bounce.hard else "soft"
    verdict = f"{kind} bounce ({bounce.status}) for {person.email}; score {score:.2f}"
    if score >= SUSPEND_AT and person.suspended_at is None:
        person.suspended_at = now
        return f"{verdict}: suspended"
    return verdict
