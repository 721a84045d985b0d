"""Blocked senders: an address or a domain whose mail is refused silently, and whose held
comments are removed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, or_, select
from sqlalchemy.orm import Session

from service.moderation.actions import Moderation
from service.moderation.log import Actor, record_event
from service.store.models import Block, Comment, CommentStatus, Person, utcnow

KINDS = ("email", "domain")


def domains_of(address: str) -> list[str]:
    """The domain of an address and each parent domain: a block on example.org covers
    mail.example.org too."""
    domain = address.rpartition("@")[2].lower()
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels)) if labels[i]]


_MATCHING = select(Block.kind, Block.value).where(
    or_(
        (Block.kind == "email") & Block.value.in_(bindparam("emails", expanding=True)),
        (Block.kind == "domain") & Block.value.in_(bindparam("domains", expanding=True)),
    )
)


@dataclass(frozen=True)
class Blocklist:
    """The blocks that concern some addresses (a batch's senders), read in one query."""

    emails: frozenset[str]
    domains: frozenset[str]

    @classmethod
    def read(cls, session: Session, addresses: Iterable[str]) -> Blocklist:
        """The blocks matching any of `addresses`."""
        emails = sorted({a.strip().lower() for a in addresses if "@" in a})
        if not emails:
            return cls(frozenset(), frozenset())
        domains = sorted({d for a in emails for d in domains_of(a)})
        rows = session.connection().execute(_MATCHING, {"emails": emails, "domains": domains})
        found = list(rows)
        return cls(
            frozenset(v for k, v in found if k == "email"),
            frozenset(v for k, v in found if k == "domain"),
        )

    def rule_for(self, address: str) -> str | None:
        """The block that covers `address` ("email x" or "domain y"), None when none does."""
        address = address.strip().lower()
        if not address:
            return None
        if address in self.emails:
            return f"email {address}"
        for domain in domains_of(address):
            if domain in self.domains:
                return f"domain {domain}"
        return None


def normalise(kind: str, value: str) -> str:
    """A block's value as stored, or ValueError saying what a good one looks like."""
    value = value.strip().lower()
    if kind == "email":
        local, at, domain = value.rpartition("@")
        if not at or not local or "." not in domain or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is not an email address; give one like ann@example.org")
        return value
    if kind == "domain":
        value = value.lstrip("@").rstrip(".")
        if "." not in value or "@" in value or any(c.isspace() or c == "/" for c in value):
            raise ValueError(f"{value!r} is not a domain name; give one like spam.example")
        return value
    raise ValueError(f"a block is by email or by domain, not {kind!r}")


def _covered_people(session: Session, kind: str, value: str) -> list[int]:
    """The people a block covers."""
    if kind == "email":
        return list(session.scalars(select(Person.id).where(Person.email == value)))
    # LIKE narrows it down ("_" in a pattern matches any character); the exact test is ours.
    rows = session.execute(select(Person.id, Person.email).where(Person.email.like(f"%{value}")))
    return [person_id for person_id, email in rows if value in domains_of(email)]


def block(
    session: Session, moderation: Moderation, kind: str, value: str, actor: Actor
) -> tuple[bool, list[int]]:
    """Block an address or domain; returns whether it is new and the held comments removed."""
    value = normalise(kind, value)
    existing = session.scalar(select(Block).where(Block.kind == kind, Block.value == value))
    if existing is None:
        session.add(Block(kind=kind, value=value, actor=actor.who[:320], created_at=utcnow()))
        record_event(session, actor, "block", note=f"{kind} {value}")
    people = _covered_people(session, kind, value)
    held = (
        list(
            session.scalars(
                select(Comment.id).where(
                    Comment.author_id.in_(people), Comment.status == CommentStatus.HELD
                )
            )
        )
        if people
        else []
    )
    for comment_id in held:
        moderation.hide(session, comment_id, actor, note=f"sender blocked ({kind} {value})")
    return existing is None, held


def unblock(session: Session, kind: str, value: str, actor: Actor) -> bool:
    """Lift a block; returns whether there was one. Comments it removed stay hidden."""
    value = normalise(kind, value)
    result = session.execute(delete(Block).where(Block.kind == kind, Block.value == value))
    gone = bool(getattr(result, "rowcount", 0))
    if gone:
        record_event(session, actor, "unblock", note=f"{kind} {value}")
    return gone


def all_blocks(session: Session) -> list[Block]:
    """Every block, oldest first."""
    return list(session.scalars(select(Block).order_by(Block.id)))
