"""Who is never mailed again: suppressed addresses (salted hashes) and forgotten people's ids."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.store.engine import READ_ONLY
from service.store.models import DeploymentSalt, Person, Suppression, utcnow

SALT_NAME = "suppression"


def _salt(session: Session, *, create: bool) -> bytes | None:
    """The deployment's suppression salt; made on first need (when `create`), else None."""
    value = session.scalar(select(DeploymentSalt.value).where(DeploymentSalt.name == SALT_NAME))
    if value is None and create:
        made = secrets.token_hex(32)
        try:
            with session.begin_nested():
                session.add(DeploymentSalt(name=SALT_NAME, value=made))
            value = made
        except IntegrityError:  # another node made it at the same moment: take theirs
            value = session.scalar(
                select(DeploymentSalt.value).where(DeploymentSalt.name == SALT_NAME)
            )
    return bytes.fromhex(value) if value is not None else None


def address_hash(salt: bytes, email: str) -> str:
    """What the suppression list keeps of an address: sha256 of the salt and the lower-cased
    address. A random salt of the deployment's own, so the list cannot be matched against
    lists of hashed addresses from elsewhere, nor read back without guessing each address."""
    return hashlib.sha256(salt + b"\0" + email.strip().lower().encode("utf-8")).hexdigest()


def is_suppressed(session: Session, email: str) -> bool:
    """Whether the address asked to be forgotten (and has not subscribed anew since)."""
    salt = _salt(session, create=False)
    if salt is None:
        return False  # no salt yet: nobody was ever suppressed
    wanted = address_hash(salt, email)
    found = session.scalar(select(Suppression.id).where(Suppression.address_hash == wanted))
    return found is not None


def suppress(session: Session, email: str) -> None:
    """Put an address on the suppression list (once), in the caller's transaction."""
    salt = _salt(session, create=True)
    assert salt is not None
    hashed = address_hash(salt, email)
    if session.scalar(select(Suppression.id).where(Suppression.address_hash == hashed)):
        return
    session.add(Suppression(address_hash=hashed, created_at=utcnow()))
    session.flush()


def lift_suppression(session: Session, email: str) -> bool:
    """Take an address off the list because the person asked for mail anew; True if it was on."""
    salt = _salt(session, create=False)
    if salt is None:
        return False
    result = session.execute(
        delete(Suppression).where(Suppression.address_hash == address_hash(salt, email))
    )
    return bool(getattr(result, "rowcount", 0))


class ErasedPeople:
    """The ids of forgotten people, in memory, so the SMTP edge refuses their old tokens at RCPT
    without a query. Erasures are never undone, so their count tells whether to read again."""

    def __init__(self) -> None:
        self._ids: frozenset[int] = frozenset()
        self._count = -1

    def __contains__(self, person_id: object) -> bool:
        return person_id in self._ids

    def add(self, person_id: int) -> None:
        """Note an erasure made in this process, at once (others are seen by `refresh`)."""
        self._ids = self._ids | {person_id}

    def refresh(self, session_factory: sessionmaker[Session]) -> bool:
        """Read the ids again if their number changed (one cheap query when it did not);
        True when they were read."""
        with session_factory() as session:
            session.connection(execution_options={READ_ONLY: True})
            count = session.scalar(select(func.count(Person.erased_at))) or 0
            if count == self._count:
                return False
            ids = session.scalars(select(Person.id).where(Person.erased_at.is_not(None))).all()
        self._ids = frozenset(ids)
        self._count = count
        return True
