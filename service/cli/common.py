"""What every `replyd` command shares: user-facing errors, settings, components, lookups."""

from __future__ import annotations

import argparse
import gc
import json
import re
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

# The cycle collector's first threshold while a command runs. Loading SQLAlchemy and the
# models allocates a few hundred thousand objects that live until the end; at the default
# (700) the collector walks them again and again, some tenth of a short command's time
# (bench/cli.py). Cycles are still collected, less often.
COMMAND_GC_THRESHOLD = 50_000
_DEFAULT_GC_THRESHOLDS = gc.get_threshold()


class AddCommand(Protocol):
    """Adds one command to a subparser group (the top level unless `sub` names another)."""

    def __call__(
        self,
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        sub: Any = ...,
    ) -> argparse.ArgumentParser: ...


def collect_rarely() -> None:
    """Let the cycle collector run less often, for a command that ends in a moment."""
    gc.set_threshold(COMMAND_GC_THRESHOLD, *_DEFAULT_GC_THRESHOLDS[1:])


def collect_as_usual() -> None:
    """Back to the default collector thresholds, for a process that keeps running (serve)."""
    gc.set_threshold(*_DEFAULT_GC_THRESHOLDS)


class CommandError(Exception):
    """A user-facing failure: the message says what went wrong and what to do."""


MAX_ROW_ID = 2**63 - 1  # the largest id the database holds; past it the driver overflows


def whole_number(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, else an error naming `what`."""

    def parse(text: str) -> int:
        given = text.strip()
        digits = given.removeprefix("-")
        # At most 19 digits: int() of thousands of digits is refused by Python itself.
        if digits.isascii() and digits.isdigit() and len(digits) <= 19:
            value = int(given)
            if low <= value <= high:
                return value
        raise argparse.ArgumentTypeError(
            f"{text!r} is not {what}: give a whole number from {low} to {high}"
        )

    return parse


row_id = whole_number(1, MAX_ROW_ID, "an id")


def read_settings(*, report: bool = True) -> Settings:
    """The settings from the environment and config file, or a CommandError saying what is off.

    With `report`, deprecated settings are warned about now; `serve` leaves that to the daemon,
    which does it once its log format is set up.
    """
    from service.runtime.settings import ConfigError, load_settings, report_deprecations

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise CommandError(f"configuration error: {exc}") from None
    if report:
        report_deprecations(settings)
    return settings


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


# What json.dumps leaves raw with ensure_ascii=False that a terminal may act on: DEL and the
# C1 controls (CSI is U+009B), and the line separators some tools split lines at.
_JSON_RAW_CONTROLS = re.compile(r"[\x7f-\x9f\u2028\u2029]")


def print_json(value: Any) -> None:
    """One line of JSON on stdout (non-ASCII kept as it is, control characters escaped)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    print(_JSON_RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text))
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
