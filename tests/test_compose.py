"""Outgoing header fields and bodies: written as the email package writes them, only cheaper."""

from __future__ import annotations

import random
import re
from email import message_from_bytes, policy
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32

import pytest
from jinja2 import DictLoader, Environment

from service.outbound.compose import (
    Draft,
    PersonalBodies,
    mailbox,
    make_templates,
    render_bodies,
)

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


# --- bodies -------------------------------------------------------------------------------

UTF8_QP = Charset("utf-8")
UTF8_QP.body_encoding = QP


def stock_bodies(text: str, html: str | None, boundary: str) -> bytes:
    """The bodies as the email package's MIMEText and MIMEMultipart write them."""
    plain = MIMEText(text, "plain", UTF8_QP)  # type: ignore[arg-type]
    if html is None:
        return plain.as_bytes(policy=STOCK)
    rich = MIMEText(html, "html", UTF8_QP)  # type: ignore[arg-type]
    del plain["MIME-Version"], rich["MIME-Version"]
    return MIMEMultipart("alternative", boundary, [plain, rich]).as_bytes(policy=STOCK)


def verbatim(with_html: bool) -> Environment:
    """Templates that render the context's text as it is, so any text can be encoded."""
    names = {"t.txt": "{{ text }}"}
    if with_html:
        names["t.html"] = "{{ html }}"
    return Environment(loader=DictLoader(names), keep_trailing_newline=True)


def random_text(rng: random.Random) -> str:
    pool = "ab =.\t\r\n\n\n>-Fromé€…Å\x0c\x85😀"
    words = ["From ", "--", ".", "=_replyd_", "x" * 75, "y" * 76, "z" * 77, " \n", "\t\n"]
    return "".join(
        rng.choice(words) if rng.random() < 0.2 else rng.choice(pool)
        for _ in range(rng.randrange(0, 400))
    )


TEXTS = [
    "",
    "one line",
    "one line\n",
    "trailing space \nand tab\t\nend",
    "From the start\n.dot\n--\n-- \n",
    "= signs = everywhere ==\n",
    "a" * 76 + "\n" + "b" * 77 + "\n" + "c" * 200,
    "Zoë … Å € 😀\r\nCRLF\rCR only\n",
    "form\x0cfeed and next\x85line",
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("with_html", [True, False])
def test_bodies_are_the_bytes_the_email_package_writes(text: str, with_html: bool) -> None:
    html = f"<p>{text}</p>" if with_html else None
    ours = render_bodies(verbatim(with_html), "t", {"text": text, "html": html})
    drawn = BOUNDARY.search(ours)
    boundary = drawn.group().decode() if drawn else ""
    assert ours == stock_bodies(text, html, boundary)
    assert bool(drawn) is with_html


def test_random_bodies_are_the_bytes_the_email_package_writes() -> None:
    rng = random.Random(3676)
    templates = verbatim(True)
    for _ in range(300):
        text, html = random_text(rng), random_text(rng)
        ours = render_bodies(templates, "t", {"text": text, "html": html})
        drawn = BOUNDARY.search(ours)
        assert drawn is not None
        assert ours == stock_bodies(text, html, drawn.group().decode()), (text, html)


def test_each_rendering_draws_its_own_boundary() -> None:
    templates = verbatim(True)
    first, second = (render_bodies(templates, "t", {"text": "a", "html": "b"}) for _ in "12")
    assert BOUNDARY.findall(first) != BOUNDARY.findall(second)


def test_notification_bodies_are_the_bytes_the_email_package_writes() -> None:
    templates = make_templates()
    context = {
        "marker_id": "replyd-marker",
        "author_name": "Zoë",
        "post_title": "A post",
        "post_url": "https://blog.example.org/posts/1",
        "site_name": "Example Blog",
        "body": "A comment with a long line " + "that goes on " * 12 + "and ends.",
        "parent": False,
        "parent_removed": False,
        "parent_author_name": "",
        "parent_body": "",
        "remove_url": "",
        "unsubscribe_url": "https://blog.example.org/unsubscribe/t0ken",
        "forget_url": "https://blog.example.org/forget/abc",
    }
    ours = render_bodies(templates, "notification", context)
    text = templates.get_template("notification.txt").render(context)
    html = templates.get_template("notification.html").render(context)
    drawn = BOUNDARY.search(ours)
    assert drawn is not None
    assert ours == stock_bodies(text, html, drawn.group().decode())
    assert b"=C3=AB" in ours  # quoted-printable UTF-8


@pytest.mark.parametrize("language", ["en", "de"])
def test_a_readers_own_link_makes_the_bytes_rendering_with_it_would(language: str) -> None:
    """Bodies rendered once and given each reader's link are the bytes the email package
    writes for the templates rendered with that link (escaped in the HTML)."""
    templates = make_templates(language=language)
    context = {
        "marker_id": "replyd-marker",
        "author_name": "Zoë",
        "post_title": "A post",
        "post_url": "https://blog.example.org/posts/1",
        "site_name": "Example Blog",
        "body": "A comment that mentions replydslot0123 and goes on " * 3,
        "parent": True,
        "parent_removed": False,
        "parent_author_name": "Ann",
        "parent_body": "Earlier words",
        "remove_url": "",
    }
    personal = PersonalBodies(
        templates, "notification", context, personal=("unsubscribe_url", "forget_url")
    )
    for link, forget in (
        ("https://blog.example.org/unsubscribe/" + "t" * 70, "https://blog.example.org/forget/f"),
        ("https://b.example/u?a=1&b=<2>", "https://b.example/forget/" + "x" * 150),
    ):
        ours = personal.for_reader(unsubscribe_url=link, forget_url=forget)
        full = {**context, "unsubscribe_url": link, "forget_url": forget}
        text = templates.get_template("notification.txt").render(full)
        html = templates.get_template("notification.html").render(full)
        drawn = BOUNDARY.search(ours)
        assert drawn is not None
        assert ours == stock_bodies(text, html, drawn.group().decode())
        assert "&amp;b=&lt;2&gt;" in html or "t" * 70 in html
        # Filled in, not rendered again (that would draw another boundary).
        assert BOUNDARY.findall(ours) == BOUNDARY.findall(personal.encoded)


def slotted(with_html: bool) -> Environment:
    """Templates with a per-recipient slot in the middle of a line, in both parts."""
    names = {"t.txt": "{{ text }}\nYour link: {{ slot }} (yours only)\n{{ text }}"}
    if with_html:
        names["t.html"] = '{{ html }}<a href="{{ slot }}">x</a>{{ html }}'
    return Environment(loader=DictLoader(names), keep_trailing_newline=True)


class TestPersonalBodies:
    @pytest.mark.parametrize(
        "value", ["https://b.example/forget/abc", "https://b.example/" + "x" * 150]
    )
    @pytest.mark.parametrize("with_html", [True, False])
    def test_a_filled_slot_gives_the_bytes_of_rendering_with_the_value(
        self, value: str, with_html: bool
    ) -> None:
        """Filling one recipient's value into bodies rendered once gives exactly what the
        email package writes for the text with that value, long values soft-broken too."""
        rng = random.Random(2045)
        for _ in range(60):
            text, html = random_text(rng), random_text(rng)
            context = {"text": text, "html": html}
            shared = PersonalBodies(slotted(with_html), "t", context, personal=("slot",))
            ours = shared.for_reader(slot=value)
            drawn = BOUNDARY.search(ours)
            boundary = drawn.group().decode() if drawn else ""
            env = slotted(with_html)
            filled = {**context, "slot": value}
            expected_html = env.get_template("t.html").render(filled) if with_html else None
            expected = stock_bodies(
                env.get_template("t.txt").render(filled), expected_html, boundary
            )
            assert ours == expected, (text, html)
            assert shared.placeholders["slot"].encode() not in ours
            # Filled in, not rendered again (that would draw another boundary).
            assert BOUNDARY.findall(ours) == BOUNDARY.findall(shared.encoded)

    def test_each_recipient_gets_their_own_value(self) -> None:
        """Two fills of the same bodies differ only where the values do."""
        shared = PersonalBodies(slotted(True), "t", {"text": "a", "html": "b"}, personal=("slot",))
        first, second = shared.for_reader(slot="one"), shared.for_reader(slot="two")
        assert first.count(b"one") == 2 and b"two" not in first
        assert second == first.replace(b"one", b"two")
