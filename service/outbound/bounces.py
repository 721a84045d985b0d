"""Reads delivery status notifications and keeps each address's bounce score (pure parts first)."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message

from sqlalchemy import case, update
from sqlalchemy.orm import Session

from service.store.models import Person, utcnow

HARD_BOUNCE = 1.0
SOFT_BOUNCE = 0.25
SUSPEND_AT = 3.0  # three hard bounces in a row (or many soft ones) stop mail to an address
DELIVERY_DECAY = 0.5  # each delivery that went through forgives half a hard bounce

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


def record_bounce(session: Session, person: Person, bounce: Bounce) -> str:
    """Add a bounce to the person's score, suspending them at the threshold; says what happened."""
    person.bounce_score += HARD_BOUNCE if bounce.hard else SOFT_BOUNCE
    kind = "hard" if bounce.hard else "soft"
    verdict = f"{kind} bounce ({bounce.status}) for {person.email}; score {person.bounce_score:g}"
    if person.bounce_score >= SUSPEND_AT and person.suspended_at is None:
        person.suspended_at = utcnow()
        return f"{verdict}: suspended"
    return verdict


def record_delivery(session: Session, person_ids: Collection[int]) -> None:
    """Deliveries went through: decay these people's bounce scores (never below zero)."""
    if not person_ids:
        return
    session.execute(
        update(Person)
        .where(Person.id.in_(person_ids), Person.bounce_score > 0)
        .values(
            bounce_score=case(
                (Person.bounce_score > DELIVERY_DECAY, Person.bounce_score - DELIVERY_DECAY),
                else_=0.0,
            )
        )
    )
