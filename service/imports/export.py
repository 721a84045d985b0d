"""What an export file holds once read, whatever system wrote it, and how it is read safely."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from lxml import etree


class ImportInvalid(ValueError):
    """An export replyd cannot import: the message names the file, the line and what is off."""


class Fate(StrEnum):
    """What becomes of one comment of an export."""

    PUBLISHED = "published"  # approved there: shown here at once
    HELD = "held"  # waiting for approval there: in the moderation queue here
    SPAM = "spam"  # skipped
    TRASH = "trash"  # deleted there: skipped
    PINGBACK = "pingback"  # a pingback or trackback, not a person's comment: skipped


@dataclass
class ExportedPost:
    """A post (a WordPress post or page, a Disqus thread) comments hang under."""

    key: str  # its id in the export, as comments name it
    url: str
    title: str
    slug: str  # the blog's id for it, if the export has one that replyd takes ("" if not)
    fallback_slug: str  # an id that is sure to be well formed, e.g. "wp-42"
    author_login: str  # who wrote it there ("" when unknown)
    created_at: datetime | None
    closed: bool
    line: int


@dataclass
class ExportedComment:
    """One comment as the export has it; `body_html` still as the source system stored it."""

    key: str  # unique across exports: stored as the comment's import key
    post_key: str
    parent_key: str | None
    author_name: str
    author_email: str
    created_at: datetime
    body_html: str
    fate: Fate
    line: int
    # WordPress keeps line breaks as typed and adds <p>/<br> only when showing a comment.
    newlines_are_breaks: bool = False


@dataclass
class Export:
    """A whole export: its posts, their comments, and the authors it knows by login."""

    system: str  # wordpress or disqus
    posts: list[ExportedPost] = field(default_factory=list)
    comments: list[ExportedComment] = field(default_factory=list)
    author_emails: dict[str, str] = field(default_factory=dict)  # login -> address
    author_names: dict[str, str] = field(default_factory=dict)  # login -> display name
    skipped_posts: int = 0  # drafts, attachments, menu entries: not imported


_WHERE = re.compile(r",? line \d+, column \d+$")


def read_xml(path: Path) -> etree._ElementTree:
    """Parse an export file with libxml2 told to resolve no entity, fetch nothing from the
    network and keep its size limits; a syntax error or a DOCTYPE becomes ImportInvalid
    naming the line."""
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        tree = etree.parse(str(path), parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or (exc.position[0] if exc.position else 0)
        # libxml2's message ends with its own ", line N, column M": the sentence says it.
        detail = _WHERE.sub("", exc.msg or str(exc))
        raise ImportInvalid(
            f"{path} is not well-formed XML at line {line}: {detail}; nothing was imported."
        ) from None
    except OSError as exc:
        raise ImportInvalid(f"{path} cannot be read ({exc.strerror or exc}).") from None
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        # WordPress and Disqus never write one; a DOCTYPE in an export is there to declare
        # entities (an expansion bomb, a file read through an external entity).
        raise ImportInvalid(
            f"{path} declares a DOCTYPE at line 1, which WordPress and Disqus exports never "
            "have; replyd does not read documents with entity declarations. Nothing was "
            "imported."
        )
    return tree


def text_of(element: etree._Element | None) -> str:
    """An element's text, CDATA included, surrounding spaces removed ("" when absent)."""
    if element is None:
        return ""
    return "".join(element.itertext()).strip()


def required(path: Path, parent: etree._Element, name: str, shown: str) -> etree._Element:
    """The child `name` (Clark notation) of `parent`, or ImportInvalid naming it and the line."""
    found = parent.find(name)
    if found is None or not text_of(found):
        raise ImportInvalid(
            f"{path}, line {parent.sourceline}: the <{parent_name(parent)}> there has no "
            f"<{shown}>, which every one needs; nothing was imported."
        )
    return found


def parent_name(element: etree._Element) -> str:
    """An element's name without its namespace, as a message shows it."""
    return etree.QName(element).localname


_SQL_DATE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def sql_date(path: Path, element: etree._Element, value: str) -> datetime | None:
    """A WordPress date ("2012-05-01 13:45:00", in UTC here) or None for its zero date;
    ImportInvalid naming the line for anything else."""
    if value.startswith("0000-00-00") or not value:
        return None
    if _SQL_DATE.fullmatch(value):
        try:
            return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            pass
    raise ImportInvalid(
        f"{path}, line {element.sourceline}: {value!r} in <{parent_name(element)}> is not a "
        "date like 2012-05-01 13:45:00; nothing was imported."
    )


def iso_date(path: Path, element: etree._Element) -> datetime:
    """An ISO 8601 time such as Disqus writes ("2012-05-01T13:45:00Z"), made UTC; a time
    without a zone is taken as UTC. ImportInvalid naming the line otherwise."""
    value = text_of(element)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ImportInvalid(
            f"{path}, line {element.sourceline}: {value!r} in <{parent_name(element)}> is not "
            "a time like 2012-05-01T13:45:00Z; nothing was imported."
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
