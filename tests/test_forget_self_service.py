"""Self-service erasure: the footer link, the confirmation mailed back, and forget@DOMAIN."""

from __future__ import annotations

import logging
import re
from datetime import date, timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from service.identity.forget_links import (
    CONFIRM_DAYS,
    confirm_token,
    confirming_person,
    request_token,
    requesting_person,
)
from service.store.models import InboundStatus, Person, utcnow
from service.store.subscriptions import set_following
from tests.conftest import Blog, RunningServer, SinkHandler, reply_message, send, wait_for
from tests.http_fixtures import HttpClient, http, settings_overrides
from tests.people_helpers import AUTHOR, BOB, NAME, ZELDA, mail_settled, rcpt_answer, text_of
from tests.test_reply_flow import comments, delivered, final_row

__all__ = ["http", "settings_overrides"]  # fixtures, imported so this module uses them

FOOTER_LINK = re.compile(r"https://blog\.example\.org(/forget/[a-z0-9]+)\b")
CONFIRM_LINK = re.compile(r"https://blog\.example\.org(/forget/confirm/[a-z0-9]+)\b")


def zelda(blog: Blog) -> Person | None:
    """Zelda's person row, None once she is forgotten."""
    with blog.parts.session_factory() as session:
        return session.scalar(select(Person).where(Person.email == ZELDA))


def zelda_follows_and_hears(
    server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
) -> str:
    """Zelda comments by mail, Bob answers: the notification she gets. Returns her reply
    address."""
    post = blog.post()
    address = blog.address(post, ZELDA)
    send(server.port, ZELDA, [address], reply_message(f"{NAME} <{ZELDA}>", address, "Nice."))
    wait_for(lambda: comments(blog), what="Zelda's comment")
    bobs = blog.address(post, BOB)
    send(server.port, BOB, [bobs], reply_message(BOB, bobs, "Indeed."))
    delivered(sink, ZELDA)
    return address


def the_link(pattern: re.Pattern[str], mail: EmailMessage) -> str:
    """The path of the one link matching `pattern` in a message's text (and HTML) part."""
    [path] = set(pattern.findall(text_of(mail)))
    html = mail.get_body(("html",))
    if html is not None:
        assert path in str(html.get_content())
    return path


class TestFooterLink:
    def test_the_link_erases_only_after_the_mailed_confirmation_is_used(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int], http: HttpClient
    ) -> None:
        """Opening the footer link, asking for the mail, and opening the mailed link erase
        nothing; only the confirmation page's button does, and then at once."""
        address = zelda_follows_and_hears(server, blog, sink)
        [note] = sink[0].to(ZELDA)
        footer = the_link(FOOTER_LINK, note)
        [authors] = delivered(sink, AUTHOR)[:1]
        assert the_link(FOOTER_LINK, authors) != footer  # each reader's link is their own
        page = http.get(footer, auth=False)
        assert page.status == 200 and "z…@example.net" in page.text and ZELDA not in page.text
        assert page.headers["cache-control"] == "no-store"
        assert zelda(blog) is not None

        mailed = http.post(footer, auth=False)
        assert mailed.status == 200 and "Look in your mailbox" in mailed.text
        confirmation = delivered(sink, ZELDA, 2)[1]
        assert confirmation["Auto-Submitted"] == "auto-replied"
        assert "Confirm: delete what Example Blog keeps about you" in confirmation["Subject"]
        confirm = the_link(CONFIRM_LINK, confirmation)
        again = http.post(footer, auth=False)
        assert "already mailed" in again.text
        mail_settled(blog)
        assert len(sink[0].to(ZELDA)) == 2  # one confirmation a day
        assert zelda(blog) is not None

        token = footer.rsplit("/", 1)[1]
        assert http.get(f"/forget/confirm/{token}", auth=False).status == 404
        assert http.get(f"/forget/{confirm.rsplit('/', 1)[1]}", auth=False).status == 404
        form = http.get(confirm, auth=False)
        assert form.status == 200 and 'value="keep-anonymous" checked' in form.text
        assert zelda(blog) is not None

        done = http.post(confirm, data=b"comments=keep-anonymous", auth=False)
        assert done.status == 200 and "Done" in done.text
        assert zelda(blog) is None
        assert rcpt_answer(server.port, ZELDA, address)[0] == 550
        shown = http.get("/api/posts/hello/comments", auth=False).json()["comments"]
        assert shown[0]["author_name"] == "A former reader"
        assert "Nothing left to delete" in http.get(confirm, auth=False).text
        assert "Nothing left to delete" in http.get(footer, auth=False).text

    def test_digests_carry_the_link_too(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A digest's footer has the reader's own erasure link."""
        post = blog.post()
        reader = blog.person(ZELDA, NAME)
        with blog.parts.session_factory.begin() as session:
            set_following(session, post, reader, active=True, digest="daily")
        address = blog.address(post, BOB)
        send(server.port, BOB, [address], reply_message(BOB, address, "News of the day"))
        final_row(blog)
        assert blog.parts.digests().send(blog.parts.session_factory, "daily") == 1
        server.server._outbound_wakeup.set()
        [digest] = delivered(sink, ZELDA)
        footer = the_link(FOOTER_LINK, digest)
        assert requesting_person(footer.rsplit("/", 1)[1], blog.parts.keyring) == reader

    def test_tokens_stay_out_of_the_access_log(
        self, http: HttpClient, blog: Blog, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The access log names the erasure routes, never the tokens in their paths."""
        reader = blog.person(ZELDA)
        footer = request_token(reader, blog.parts.keyring)
        confirm = confirm_token(reader, blog.parts.keyring, utcnow().date())
        caplog.set_level(logging.INFO)
        assert http.get(f"/forget/{footer}", auth=False).status == 200
        assert http.get(f"/forget/confirm/{confirm}", auth=False).status == 200
        wait_for(lambda: "/forget/confirm/{token}" in caplog.text, what="the access log lines")
        assert "/forget/{token}" in caplog.text
        assert footer not in caplog.text and confirm not in caplog.text


class TestConfirmationTokens:
    def test_a_confirmation_lasts_a_week_and_no_other_token_stands_in(self, blog: Blog) -> None:
        """A confirmation token names its person for CONFIRM_DAYS days, then nothing; a
        footer token is never a confirmation, nor a tampered one anything."""
        keyring = blog.parts.keyring
        mailed = date(2026, 3, 2)
        token = confirm_token(42, keyring, mailed)
        assert confirming_person(token, keyring, mailed + timedelta(days=CONFIRM_DAYS)) == 42
        assert confirming_person(token, keyring, mailed + timedelta(days=CONFIRM_DAYS + 1)) is None
        assert confirming_person(token, keyring, mailed - timedelta(days=1)) is None
        assert confirming_person(request_token(42, keyring), keyring, mailed) is None
        assert requesting_person(token, keyring) is None
        tampered = token[:-1] + ("a" if token[-1] != "a" else "b")
        assert confirming_person(tampered, keyring, mailed) is None


class TestForgetAddress:
    def test_mail_to_forget_gets_a_confirmation_link_known_senders_only(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int], http: HttpClient
    ) -> None:
        """Mail to forget@DOMAIN from a known address is answered with the confirmation link
        (nothing erased yet); from an unknown one, nothing is mailed; the link then erases."""
        zelda_follows_and_hears(server, blog, sink)
        forget = f"forget@{blog.parts.book.domain}"
        stranger = "stranger@example.org"
        send(server.port, stranger, [forget], reply_message(stranger, forget, "forget me"))
        send(server.port, ZELDA, [forget], reply_message(ZELDA, forget, "Please forget me."))
        confirmation = delivered(sink, ZELDA, 2)[1]
        mail_settled(blog)
        assert sink[0].to(stranger) == []
        reasons = [final_row(blog, n).reason for n in range(1, 20) if _exists(blog, n)]
        assert "erasure request from an unknown address" in reasons
        assert "erasure request: a confirmation link was mailed to the address" in reasons
        assert zelda(blog) is not None
        confirm = the_link(CONFIRM_LINK, confirmation)
        assert http.post(confirm, data=b"comments=delete", auth=False).status == 200
        assert zelda(blog) is None
        assert [c.body for c in comments(blog)] == ["Indeed."]  # hers (unanswered) is gone


def _exists(blog: Blog, inbound_id: int) -> bool:
    from service.store.models import InboundEmail

    with blog.parts.session_factory() as session:
        row = session.get(InboundEmail, inbound_id)
        return row is not None and row.status not in (
            InboundStatus.RECEIVED,
            InboundStatus.PROCESSING,
        )


def test_a_page_path_is_private() -> None:
    """Erasure pages are never kept by caches (their paths are capabilities)."""
    from service.web.app import is_private

    assert is_private({"path": "/forget/abc", "headers": []})
    assert urlsplit("https://blog.example.org/forget/confirm/x").path.startswith("/forget/")


class TestOldLinks:
    def test_her_unsubscribe_links_name_nobody_after_the_erasure(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int], http: HttpClient
    ) -> None:
        """Once she is forgotten, her notification's List-Unsubscribe page is a 404 and its
        mailto address is refused at RCPT, like her reply address."""
        zelda_follows_and_hears(server, blog, sink)
        [note] = sink[0].to(ZELDA)
        [url] = re.findall(r"<(https://[^>]+)>", str(note["List-Unsubscribe"]))
        mailto = str(note["List-Unsubscribe"]).split("<mailto:")[1].split("?")[0]
        page = urlsplit(url).path
        assert http.get(page, auth=False).status == 200
        assert rcpt_answer(server.port, ZELDA, mailto)[0] == 250
        assert http.request("DELETE", f"/api/people?email={ZELDA}").status == 200
        assert http.get(page, auth=False).status == 404
        assert http.post(page, auth=False).status == 404
        assert rcpt_answer(server.port, ZELDA, mailto)[0] == 550
