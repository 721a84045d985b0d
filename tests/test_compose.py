"""Outgoing header fields: written as the email package writes them, only cheaper."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.header import Header
from email.message import Message
from email.policy import compat32

import pytest

from service.compose import Draft, mailbox, make_templates, render_bodies

# The email package's own wire form, which our shortcut for short ASCII fields must match.
STOCK = compat32.clone(linesep="\r\n")
BOUNDARY = re.compile(rb"=_replyd_[0-9a-f]+")

FIELDS = [
    ("Subject", "Re: A short title"),
    # "Subject: " is 9 characters: 69 more make a line of exactly 78, 70 one of 79.
    ("Subject", "x" * 69),
    ("Subject", "x" * 70),
    ("Subject", "word " * 30),
    (
        "List-Unsubscribe",
        "<https://blog.example.org/unsubscribe/" + "a" * 60 + ">, <mailto:u@x.example>",
    ),
    ("From", mailbox("Zoë Example via Blog", "notifications@replies.example.org")),
    ("Subject", "Re: Überraschung: ein ziemlich langer Titel mit Umlauten, der gefaltet wird"),
    ("Reply-To", "Post <r-" + "b" * 70 + "@replies.example.org>"),
]


def stock_bytes(fields: list[tuple[str, str]]) -> bytes:
    """The header block as compat32 writes it, non-ASCII values as UTF-8 encoded words."""
    head: Message = Message()
    for name, value in fields:
        head[name] = value if value.isascii() else Header(value, "utf-8", header_name=name)
    return head.as_bytes(policy=STOCK).removesuffix(b"\r\n")


@pytest.mark.parametrize(("name", "value"), FIELDS)
def test_each_field_is_written_as_the_email_package_writes_it(name: str, value: str) -> None:
    draft = Draft()
    draft[name] = value
    assert draft.as_bytes(b"body") == stock_bytes([(name, value)]) + b"body"


def test_fields_read_back_as_written_after_folding_and_encoding() -> None:
    draft = Draft()
    for name, value in FIELDS:
        draft[name] = value
    raw = draft.as_bytes(b"\r\nbody\r\n")
    head = raw.split(b"\r\n\r\n")[0]
    assert b"\r\n " in head  # long values were folded
    assert b"=?utf-8?" in head  # non-ASCII ones encoded
    parsed = message_from_bytes(raw, policy=policy.default)
    read_back = [(name, " ".join(str(value).split())) for name, value in parsed.items()]
    assert read_back[5] == ("From", "Zoë Example via Blog <notifications@replies.example.org>")
    del read_back[5]
    assert read_back == [(n, " ".join(v.split())) for n, v in FIELDS if n != "From"]


def test_notification_bodies_match_the_stock_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    templates = make_templates()
    context = {
        "marker_id": "replyd-marker",
        "author_name": "Zoë",
        "post_title": "A post",
        "post_url": "https://blog.example.org/posts/1",
        "site_name": "Example Blog",
        "body": "A comment with a long line " + "that goes on " * 12 + "and ends.",
        "parent": False,
        "parent_author_name": "",
        "parent_body": "",
    }
    ours = render_bodies(templates, "notification", context)
    monkeypatch.setattr("service.compose._WIRE", STOCK)
    stock = render_bodies(templates, "notification", context)
    # Each rendering draws its own MIME boundary; everything else must be the same bytes.
    assert BOUNDARY.sub(b"B", ours) == BOUNDARY.sub(b"B", stock)
    assert b"boundary=" in ours and b"=C3=AB" in ours  # multipart, and quoted-printable UTF-8
