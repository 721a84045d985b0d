"""Hostile, broken and machine-made mail: each has a defined outcome and none is lost."""

from __future__ import annotations

import base64
import gzip
import smtplib
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from service.extraction.extract import extract_reply
from service.inbound.classify import auto_generated_reason
from service.inbound.parse import parse_message
from service.inbound.queue import claim_mail
from service.inbound.ratelimit import Limit, RateLimiter, parse_limits
from service.runtime.settings import Settings
from service.store.models import InboundEmail, InboundStatus, OutboundEmail, utcnow
from service.store.retention import purge_raw
from tests.conftest import (
    FIXTURES,
    Blog,
    RunningServer,
    make_settings,
    reply_message,
    send,
    wait_for,
)
from tests.inbound_helpers import record, store_mail
from tests.test_reply_flow import comments, final_row

READER = "reader@example.org"
TERMINAL = (
    InboundStatus.PROCESSED,
    InboundStatus.IGNORED,
    InboundStatus.REJECTED,
    InboundStatus.FAILED,
)


def outbound_count(blog: Blog) -> int:
    with blog.parts.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(OutboundEmail)) or 0)


def all_terminal(blog: Blog, count: int) -> list[InboundEmail]:
    def done() -> list[InboundEmail] | None:
        with blog.parts.session_factory() as session:
            rows = list(session.scalars(select(InboundEmail).order_by(InboundEmail.id)))
        return rows if len(rows) == count and all(r.status in TERMINAL for r in rows) else None

    return wait_for(done, timeout=30, what=f"{count} terminal messages")


class TestRateLimitRules:
    def test_parse(self) -> None:
        """Rules read as count per period; "off" disables every limit."""
        assert parse_limits("sender=30/10m,address=5/h") == {
            "sender": Limit(30, 600),
            "address": Limit(5, 3600),
        }
        assert parse_limits("off") == {}
        with pytest.raises(ValueError, match="not a rate limit"):
            parse_limits("sender=lots")

    def test_default_limits_are_the_documented_ones(self, tmp_path: Path) -> None:
        """Without REPLYD_RATE_LIMITS, 30 messages per sender and 20 per reply address are
        taken in 10 minutes (the README's defaults)."""
        settings = make_settings(tmp_path)
        assert settings.rate_limits == {"sender": Limit(30, 600), "address": Limit(20, 600)}

    def test_bucket_refills_over_time(self) -> None:
        """A limited key gets tokens back as time passes, one per count/period."""
        now = [0.0]
        limiter = RateLimiter({"sender": Limit(2, 60)}, clock=lambda: now[0])
        assert [limiter.allow("sender", "a") for _ in range(3)] == [True, True, False]
        assert limiter.allow("sender", "b")
        now[0] = 30.0
        assert limiter.allow("sender", "a")
        assert not limiter.allow("sender", "a")


def deliver_from(
    client_address: str, port: int, sender: str, recipients: list[str], raw: bytes
) -> dict[str, tuple[int, bytes]]:
    """Send over real SMTP from a loopback address of the test's choosing (127.0.0.x)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=(client_address, 0)) as smtp:
        return smtp.sendmail(sender, recipients, raw)


class TestRateLimitsAtRcpt:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """Tight limits so a test reaches them quickly."""
        return {"REPLYD_RATE_LIMITS": "sender=3/h,address=2/h"}

    def test_sender_over_limit_gets_450(self, server: RunningServer, blog: Blog) -> None:
        """The fourth recipient from one sender within the hour is refused with 450 4.7.1."""
        post = blog.post()
        addresses = [blog.address(post, f"r{i}@example.org") for i in range(4)]
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.ehlo()
            client.mail("flooder@example.org")
            codes = [client.rcpt(a) for a in addresses]
        assert [c for c, _ in codes] == [250, 250, 250, 450]
        assert codes[3][1].startswith(b"4.7.1 ")
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.ehlo()
            client.mail("someone-else@example.org")
            assert client.rcpt(addresses[3])[0] == 250

    def test_reply_address_over_limit_gets_450(self, server: RunningServer, blog: Blog) -> None:
        """After two messages to one reply address within the hour (its case changed, as MTAs
        do), the next one is refused at RCPT, whoever sends it."""
        address = blog.address(blog.post(), READER)
        local, domain = address.split("@")
        for n, written in enumerate((address.upper(), f"{local}@{domain.upper()}")):
            raw = reply_message(READER, written, f"Message {n}")
            assert send(server.port, f"s{n}@example.org", [written], raw) == {}
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.ehlo()
            client.mail("s2@example.org")
            code, text = client.rcpt(address)
        assert (code, text[:6]) == (450, b"4.7.1 ")

    def test_a_sender_s_allowance_is_counted_per_client_address(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """Three messages forged in the victim's name (their case changed) from another client
        address use up that address's allowance for the name, not the victim's own."""
        post = blog.post()
        victim = "victim@example.org"
        for n in range(3):
            address = blog.address(post, f"forger{n}@example.org")
            raw = reply_message("Victim <VICTIM@Example.org>", address, f"Forged {n}")
            assert (
                deliver_from("127.0.0.2", server.port, "Victim@EXAMPLE.org", [address], raw) == {}
            )
        mine = blog.address(post, victim)
        with smtplib.SMTP("127.0.0.1", server.port, source_address=("127.0.0.2", 0)) as client:
            client.ehlo()
            client.mail(victim)
            assert client.rcpt(mine)[0] == 450  # the forger's address is over the limit
        raw = reply_message(victim, mine, "My own reply")
        assert deliver_from("127.0.0.1", server.port, victim, [mine], raw) == {}

    def test_a_sender_cannot_escape_its_limit_by_changing_case(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """Addresses are compared without case: the same sender written four ways is still
        one sender, and its fourth recipient within the hour gets 450 4.7.1."""
        post = blog.post()
        addresses = [blog.address(post, f"r{i}@example.org") for i in range(4)]
        spellings = [
            "flooder@example.org",
            "Flooder@example.org",
            "FLOODER@EXAMPLE.ORG",
            "flooder@Example.Org",
        ]
        codes = []
        for sender, address in zip(spellings, addresses, strict=True):
            with smtplib.SMTP("127.0.0.1", server.port) as client:
                client.ehlo()
                client.mail(sender)
                code = client.rcpt(address)
                codes.append(code)
                if code[0] == 250:  # limits count stored mail: each one is sent whole
                    assert client.data(reply_message(sender, address, "Flood"))[0] == 250
        assert [c for c, _ in codes] == [250, 250, 250, 450]
        assert codes[3][1].startswith(b"4.7.1 ")

    def test_a_reply_address_cannot_escape_its_limit_by_changing_case(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """A reply address in other letter cases is the same address: the third message to
        it within the hour is refused, however it is written."""
        address = blog.address(blog.post(), READER)
        local, domain = address.split("@")
        spellings = [address, f"{local.upper()}@{domain}", f"{local}@{domain.upper()}"]
        results = []
        for n, spelling in enumerate(spellings):
            with smtplib.SMTP("127.0.0.1", server.port) as client:
                client.ehlo()
                client.mail(f"s{n}@example.org")
                results.append(client.rcpt(spelling)[0])
                if results[-1] == 250:  # limits count stored mail: each one is sent whole
                    raw = reply_message(f"s{n}@example.org", spelling, f"Message {n}")
                    assert client.data(raw)[0] == 250
        assert results == [250, 250, 450]


class TestRateLimitsCountStoredMail:
    def test_recipients_without_data_use_up_nothing(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """With the default limits (30 per sender in ten minutes), 40 sessions of MAIL FROM the
        victim and RCPT without DATA leave the victim's own reply to be accepted."""
        address = blog.address(blog.post(), READER)
        for _ in range(40):
            with smtplib.SMTP("127.0.0.1", server.port) as client:
                client.ehlo()
                client.mail(READER)
                assert client.rcpt(address)[0] == 250
        raw = reply_message(READER, address, "My real reply")
        assert send(server.port, READER, [address], raw) == {}
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.ehlo()
            client.mail(READER)
            assert client.rcpt(address)[0] == 250

    def test_the_client_limit_counts_per_address(self, settings: Settings, blog: Blog) -> None:
        """REPLYD_RATE_LIMITS=client=2/h: a third stored message from one client address is
        refused at RCPT with 450 4.7.1; another client address is not affected."""
        limited = replace(settings, rate_limits=parse_limits("client=2/h"))
        running = RunningServer(limited).start()
        try:
            post = blog.post()
            for n in range(2):
                address = blog.address(post, f"r{n}@example.org")
                raw = reply_message(f"r{n}@example.org", address, "Hi")
                assert (
                    deliver_from("127.0.0.2", running.port, f"r{n}@example.org", [address], raw)
                    == {}
                )
            address = blog.address(post, "r2@example.org")
            with smtplib.SMTP("127.0.0.1", running.port, source_address=("127.0.0.2", 0)) as client:
                client.ehlo()
                client.mail("r2@example.org")
                code, text = client.rcpt(address)
            assert (code, text) == (
                450,
                b"4.7.1 Too many messages from your address; please try again later",
            )
            raw = reply_message("r2@example.org", address, "Hi")
            assert deliver_from("127.0.0.3", running.port, "r2@example.org", [address], raw) == {}
        finally:
            running.stop()


class TestRateLimitsOff:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """REPLYD_RATE_LIMITS=off, as load tests and benchmarks use."""
        return {"REPLYD_RATE_LIMITS": "off"}

    def test_off_means_no_limit(self, server: RunningServer, blog: Blog) -> None:
        """With limits off, a sender can address one reply address 60 times in a row."""
        address = blog.address(blog.post(), READER)
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            client.ehlo()
            for _ in range(60):
                client.mail(READER)
                assert client.rcpt(address)[0] == 250
                client.rset()


class TestDmarc:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """Trust Authentication-Results written by our own MTA, mx.example.org."""
        return {"REPLYD_TRUST_AUTHSERV_ID": "mx.example.org"}

    def test_dmarc_fail_from_trusted_mta_is_rejected_silently(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """dmarc=fail from our MTA rejects the reply; no notice goes to the forged From."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(
            READER,
            address,
            "I am totally Rita",
            headers={
                "Authentication-Results": (
                    "mx.example.org; spf=fail; dmarc=fail (p=reject) header.from=example.org"
                )
            },
        )
        send(server.port, "attacker@evil.example", [address], raw)
        row = final_row(blog)
        assert row.status == InboundStatus.REJECTED and "DMARC" in (row.reason or "")
        assert comments(blog) == [] and outbound_count(blog) == 0

    def test_results_from_other_servers_are_not_trusted(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """An Authentication-Results header from someone else's server is ignored."""
        address = blog.address(blog.post(), READER)
        raw = reply_message(
            READER,
            address,
            "Real reply",
            headers={"Authentication-Results": "other.example; dmarc=fail"},
        )
        send(server.port, READER, [address], raw)
        assert final_row(blog).status == InboundStatus.PROCESSED


LOOPS = {
    "rfc3834_auto_replied": ({"Auto-Submitted": "auto-replied"}, "Re: Post hello", READER, READER),
    "ooo_subject_german": ({}, "Abwesenheitsnotiz: Re: Post hello", READER, READER),
    "ooo_subject_french": ({}, "Réponse automatique : Re: Post hello", READER, READER),
    "precedence_bulk": ({"Precedence": "bulk"}, "Re: Post hello", READER, READER),
    "precedence_junk": ({"Precedence": "junk"}, "Re: Post hello", READER, READER),
    "precedence_list": ({"Precedence": "list"}, "Re: Post hello", READER, READER),
    "x_autoreply": ({"X-Autoreply": "yes"}, "Re: Post hello", READER, READER),
    "mailer_daemon": (
        {},
        "Delivery failure",
        "MAILER-DAEMON@mx.example.net",
        "MAILER-DAEMON@mx.example.net",
    ),
    "postmaster": ({}, "Re: Post hello", "postmaster@example.org", "postmaster@example.org"),
    "our_own_address": (
        {},
        "Re: Post hello",
        "notifications@replies.example.org",
        "notifications@replies.example.org",
    ),
    "null_sender": ({}, "Re: Post hello", READER, ""),
}


class TestLoops:
    @pytest.mark.parametrize("case", sorted(LOOPS))
    def test_machine_mail_is_never_published_nor_answered(
        self, server: RunningServer, blog: Blog, case: str
    ) -> None:
        """Each kind of automatic mail is ignored with a reason: no comment, no mail at all."""
        headers, subject, from_header, envelope = LOOPS[case]
        address = blog.address(blog.post(), READER)
        send(
            server.port,
            envelope,
            [address],
            reply_message(from_header, address, "I am away.", subject=subject, headers=headers),
        )
        row = final_row(blog)
        assert row.status == InboundStatus.IGNORED, row.reason
        assert row.reason
        assert comments(blog) == [] and outbound_count(blog) == 0


def nested_multipart(depth: int) -> bytes:
    """A message whose parts nest `depth` levels deep, with the reply at the bottom."""
    body = b"Content-Type: text/plain\r\n\r\nDeep reply\r\n"
    for level in range(depth):
        boundary = f"b{level}".encode()
        body = (
            b"Content-Type: multipart/mixed; boundary="
            + boundary
            + b"\r\n\r\n--"
            + boundary
            + b"\r\n"
            + body
            + b"\r\n--"
            + boundary
            + b"--\r\n"
        )
    return body


def crlf(*lines: str | bytes) -> bytes:
    """Join header and body lines the way they travel over SMTP."""
    return b"\r\n".join(x if isinstance(x, bytes) else x.encode("latin-1") for x in lines)


def hostile_cases(address: str) -> dict[str, bytes]:
    """Broken and hostile messages, each to the same reply address."""
    head = crlf(f"From: {READER}", f"To: {address}", "Subject: Re: Post hello", "")
    bomb = base64.encodebytes(gzip.compress(b"\0" * 20_000_000))
    attribution = "On Mon, Jan 5, 2026 at 9:00 AM, Ann <ann@example.org> wrote:"
    html = (
        "<p>Nice <b>post</b></p><script>alert(1)</script>"
        '<img src="https://track.example/p.gif" width=1 height=1>'
    )
    return {
        "missing_message_id": head + crlf("", "No id here", ""),
        "duplicate_message_id": head
        + crlf("Message-ID: <a@x>", "Message-ID: <b@x>", "", "Two", ""),
        "malformed_mime": head
        + crlf("Message-ID: <m1@x>", "MIME-Version: 1.0", "Content-Type: multipart/alternative")
        + crlf("", "", "no boundary at all", ""),
        "unknown_charset": head
        + crlf("Message-ID: <m2@x>", "Content-Type: text/plain; charset=x-klingon", "")
        + crlf("", "Caf\xe9 au lait", ""),
        "eight_bit_headers": crlf(
            f"From: J\xf6rg <{READER}>",
            f"To: {address}",
            "Subject: Re: \xdcber",
            "Message-ID: <m3@x>",
            "",
            "Gr\xfc\xdfe",
            "",
        ),
        "deep_multipart": head
        + crlf("Message-ID: <m4@x>", "MIME-Version: 1.0", "")
        + nested_multipart(300),
        "compressed_bomb": head
        + crlf(
            "Message-ID: <m5@x>", "MIME-Version: 1.0", "Content-Type: multipart/mixed; boundary=z"
        )
        + crlf("", "", "--z", "Content-Type: text/plain", "", "See attachment", "--z")
        + crlf("", "Content-Type: application/gzip", "Content-Transfer-Encoding: base64", "", "")
        + bomb
        + crlf("", "--z--", ""),
        "nul_bytes": head + crlf("Message-ID: <m6@x>", "", "NUL\0here", ""),
        "long_line": head + crlf("Message-ID: <m7@x>", "", "word " * 20_000, ""),
        "ten_thousand_line_quote": head
        + crlf("Message-ID: <m8@x>", "", "Top reply", "", attribution, "")
        + b"> quoted line of an old thread\r\n" * 10_000,
        "html_with_script_and_pixel": head
        + crlf("Message-ID: <m9@x>", "Content-Type: text/html", "", html, ""),
    }


class TestHostileInput:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """Limits off: this test sends many messages to one address on purpose."""
        return {"REPLYD_RATE_LIMITS": "off", "REPLYD_MAX_MESSAGE_BYTES": str(30 * 1024 * 1024)}

    def test_every_hostile_message_ends_terminal_and_listener_survives(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """Broken mail is stored, processed to a terminal state, and never kills anything."""
        address = blog.address(blog.post(), READER)
        cases = hostile_cases(address)
        for raw in cases.values():
            assert send(server.port, READER, [address], raw) == {}
        rows = all_terminal(blog, len(cases))
        by_case = dict(zip(cases, rows, strict=True))
        assert all(r.status != InboundStatus.FAILED for r in rows), [
            (c, r.reason) for c, r in by_case.items()
        ]
        bodies = {c.inbound_email_id: c.body for c in comments(blog)}
        assert bodies[by_case["deep_multipart"].id] == "Deep reply"
        assert bodies[by_case["ten_thousand_line_quote"].id] == "Top reply"
        assert bodies[by_case["compressed_bomb"].id] == "See attachment"
        assert "Grüße" in bodies[by_case["eight_bit_headers"].id]
        html_comment = bodies[by_case["html_with_script_and_pixel"].id]
        assert (
            "Nice post" in html_comment and "alert" not in html_comment and "<" not in html_comment
        )
        # The listener still answers after all of it.
        assert (
            send(server.port, READER, [address], reply_message(READER, address, "Still here")) == {}
        )

    def test_line_over_128k_is_refused_with_enhanced_code(
        self, server: RunningServer, blog: Blog
    ) -> None:
        """A single line past 128 KiB is refused at DATA with 500 5.5.2, never a bare 500."""
        address = blog.address(blog.post(), READER)
        raw = f"From: {READER}\r\nTo: {address}\r\n\r\n".encode() + b"x" * 200_000 + b"\r\n"
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(server.port, READER, [address], raw)
        assert refused.value.smtp_code == 500
        assert refused.value.smtp_error.startswith(b"5.5.2 ")

    def test_protocol_errors_carry_enhanced_codes(self, server: RunningServer) -> None:
        """aiosmtpd's own refusals get enhanced status codes, and EHLO advertises them."""
        with smtplib.SMTP("127.0.0.1", server.port) as client:
            code, _ = client.ehlo()
            assert client.has_extn("enhancedstatuscodes")
            code, text = client.docmd("RCPT", "TO:<x@replies.example.org>")
        assert code == 503 and text.startswith(b"5.5.1 ")


class TestRetention:
    def test_purge_keeps_failed_and_recent(self, blog: Blog) -> None:
        """Old finished mail loses its raw source; failed and recent mail keep theirs."""
        address = blog.address(blog.post(), READER)
        ids = [store_mail(blog.parts, b"old", READER, [address])[0] for _ in range(3)]
        long_ago = utcnow() - timedelta(days=40)
        finish(
            blog,
            ids,
            (InboundStatus.PROCESSED, InboundStatus.FAILED, InboundStatus.REJECTED),
            (long_ago, long_ago, utcnow()),
        )
        with blog.parts.session_factory.begin() as session:
            assert purge_raw(session, utcnow() - timedelta(days=30)) == 1
        assert raws(blog, ids) == [b"", b"old", b"old"]

    def test_a_message_to_several_recipients_is_purged_once_none_needs_it(self, blog: Blog) -> None:
        """The one stored copy of a message to two reply addresses is kept while one of its
        rows failed, and emptied (for both rows) once both are finished long ago."""
        post = blog.post()
        recipients = [blog.address(post, READER), blog.address(post, "other@example.org")]
        kept = store_mail(blog.parts, b"kept", READER, recipients)
        gone = store_mail(blog.parts, b"gone", READER, recipients)
        long_ago = utcnow() - timedelta(days=40)
        finish(blog, kept, (InboundStatus.PROCESSED, InboundStatus.FAILED), (long_ago, long_ago))
        finish(blog, gone, (InboundStatus.PROCESSED, InboundStatus.IGNORED), (long_ago, long_ago))
        with blog.parts.session_factory.begin() as session:
            assert purge_raw(session, utcnow() - timedelta(days=30)) == 2
        assert raws(blog, kept + gone) == [b"kept", b"kept", b"", b""]
        with blog.parts.session_factory() as session:
            purged = [session.get(InboundEmail, i).raw_purged_at for i in kept + gone]  # type: ignore[union-attr]
        assert [when is not None for when in purged] == [False, False, True, True]


def finish(
    blog: Blog, ids: list[int], statuses: tuple[str, ...], when: tuple[datetime, ...]
) -> None:
    """Put stored rows into final states, finished at the given times."""
    with blog.parts.session_factory.begin() as session:
        for row_id, status, finished in zip(ids, statuses, when, strict=True):
            row = session.get(InboundEmail, row_id)
            assert row is not None
            row.status, row.finished_at = status, finished


def raws(blog: Blog, ids: list[int]) -> list[bytes]:
    """The raw bytes each row reads, in order."""
    with blog.parts.session_factory() as session:
        return [session.get(InboundEmail, i).raw for i in ids]  # type: ignore[union-attr]


FIXTURE_MESSAGES = sorted(FIXTURES.glob("*.eml"))


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    """A real client's message with random bytes flipped, cut, or spliced in."""
    raw = bytearray(draw(st.sampled_from(FIXTURE_MESSAGES)).read_bytes())
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, max(len(raw) - 1, 0)))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and raw:
            raw[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del raw[position : position + draw(st.integers(1, 400))]
        else:
            raw[position:position] = draw(st.binary(max_size=200))
    return bytes(raw)


class TestPropertyBased:
    @hypothesis_settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(raw=st.one_of(mutated_messages(), st.binary(max_size=3000)))
    def test_parse_classify_extract_never_raise(self, raw: bytes) -> None:
        """Random and mutated mail goes through parse, classify and extract without an exception."""
        message = parse_message(raw)
        auto_generated_reason(message, "sender@example.org", {"notifications@replies.example.org"})
        result = extract_reply(message.text, message.html)
        assert isinstance(result.reply, str) and isinstance(result.elided, str)

    def test_pipeline_always_reaches_a_terminal_state(self, blog: Blog) -> None:
        """Through the real pipeline and database, every mutated message ends terminal: its
        row holds a terminal status (not failed) with the outcome's reason, and no claim."""
        address = blog.address(blog.post(), READER)
        pipeline = blog.parts.pipeline()

        @hypothesis_settings(
            max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
        )
        @given(raw=mutated_messages())
        def check(raw: bytes) -> None:
            [row_id] = store_mail(blog.parts, raw, READER, [address])
            [claimed] = claim_mail(blog.parts.session_factory, "fuzz", 1)
            assert claimed.id == row_id
            [outcome] = record(pipeline, [claimed], "fuzz")
            assert outcome is not None
            with blog.parts.session_factory() as session:
                row = session.get(InboundEmail, row_id)
                assert row is not None
                assert row.status in TERMINAL and row.status != InboundStatus.FAILED, row.reason
                assert (row.status, row.reason) == (outcome.status, outcome.reason)
                assert row.claimed_by is None and row.finished_at is not None

        check()
