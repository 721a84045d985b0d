"""What every `replyd` command shares: user-facing errors, settings, components, lookups."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from service.runtime.components import Components
    from service.runtime.settings import Settings
    from service.store.models import Person, Post

# Imports inside the functions are deliberate: `replyd post list` must not pay for talon,
# aiosmtpd, the HTTP stack or alembic; each command loads only what it needs.


class AddCommand(Protocol):
    """Adds one command to a subparser group (the top level unless `sub` names another)."""

    def __call__(
        self,
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        sub: Any = ...,
    ) -> argparse.ArgumentParser: ...


class CommandError(Exception):
    """A user-facing failure: the message says what went wrong and what to do."""


def read_settings() -> Settings:
    """The settings from the environment and config file, or a CommandError saying what is off."""
    from service.runtime.settings import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        raise CommandError(f"configuration error: {exc}") from None


def components(*, migrated: bool = True) -> Components:
    """The deployment's components; with `migrated`, only on a database at the newest schema."""
    from service.runtime.components import Components
    from service.store.schema import SchemaNotReady, check_schema

    parts = Components.build(read_settings())
    if migrated:
        try:
            check_schema(parts.engine)
        except SchemaNotReady as exc:
            raise CommandError(str(exc)) from None
    return parts


def print_json(value: Any) -> None:
    """One line of JSON on stdout (non-ASCII kept as it is)."""
    print(json.dumps(value, ensure_ascii=False, default=str))
    sys.stdout.flush()


def person_at(session: Session, email: str, name: str = "", *, following: bool = True) -> Person:
    """The person with this address, created on first use; one who is to follow something
    (or is new) needs an address replyd can mail, else a CommandError says why."""
    from service.store.subscriptions import InvalidAddress, person_for

    try:
        return person_for(session, email, name, following=following)
    except InvalidAddress as exc:
        raise CommandError(f"cannot use that address: {exc}") from None


def post_named(session: Session, slug: str) -> Post:
    """The post with the blog's id `slug`, or a CommandError pointing at `replyd post list`."""
    from sqlalchemy import select

    from service.store.models import Post

    post = session.scalar(select(Post).where(Post.slug == slug))
    if post is None:
        raise CommandError(
            f"no post with id {slug!r}; `replyd post list` shows the posts there are."
        )
    return post
