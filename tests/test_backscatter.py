"""Rejection notices go only to a proven sender, never echo unproven mail, and are capped."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.outbound.notices import RejectionNotices
from service.runtime.settings import ConfigError
from service.store.models import InboundEmail, InboundStatus, OutboundEmail, RejectionNotice
from tests.conftest import (
    DOMAIN,
    Blog,
    RunningServer,
    SinkHandler,
    make_settings,
    reply_message,
    send,
)
from tests.test_reply_flow import comments, delivered, final_row

AUTHOR = "author@example.org"
READER = "reader@example.org"
VICTIM = "victim@third-party.example"
SPAM = "CHEAP PILLS at pills.example, buy now"


def notices_to(sink: tuple[SinkHandler, int], address: str) -> list[str]:
    """Subjects of the automatic replies delivered to `address`."""
    return [str(m["Subject"]) for m in sink[0].to(address) if m["Auto-Submitted"] == "auto-replied"]


def rejection_rows(blog: Blog) -> list[OutboundEmail]:
    with blog.parts.session_factory() as session:
        return list(session.scalars(select(OutboundEmail).where(OutboundEmail.kind == "rejection")))


def honest_reply_arrives(
    server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int], post: int
) -> None:
    """A later honest reply, whose notification to the author arrives: mail queued before it
    (a notice, had there been one) has been written and sent by then."""
    address = blog.address(post, READER)
    send(server.port, READER, [address], reply_message(READER, address, "Honest and later"))
    delivered(sink, AUTHOR)


class TestBackscatter:
    def test_forged_from_to_the_bare_address_gets_the_victim_nothing(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Spam to reply@ with From: a stranger is refused in silence; the stranger is not
        mailed, and the spam subject goes nowhere."""
        post = blog.post()
        bare = f"reply@{DOMAIN}"
        send(server.port, VICTIM, [bare], reply_message(VICTIM, bare, "spam", subject=SPAM))
        row = final_row(blog)
        assert row.status == InboundStatus.REJECTED and row.reason_code == "no_route"
        honest_reply_arrives(server, blog, sink, post)
        assert sink[0].to(VICTIM) == []
        assert rejection_rows(blog) == []
        assert all(SPAM not in str(m[2]) for m in sink[0].messages)

    def test_forged_from_to_someones_reply_address_gets_the_victim_nothing(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Mail to a reader's address with a stranger's From is refused without telling the
        stranger (who never wrote it) or the reader (who did not either)."""
        post = blog.post()
        address = blog.address(post, READER)
        send(server.port, VICTIM, [address], reply_message(VICTIM, address, "x", subject=SPAM))
        row = final_row(blog)
        assert row.status == InboundStatus.REJECTED and row.reason_code == "sender_mismatch"
        honest_reply_arrives(server, blog, sink, post)
        assert sink[0].to(VICTIM) == [] and notices_to(sink, READER) == []
        assert rejection_rows(blog) == []

    def test_proven_sender_is_still_told(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """The person a reply address was issued to, writing from their address, hears why."""
        address = blog.address(blog.post(closed=True), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Late", subject="Hi"))
        assert final_row(blog).reason_code == "closed"
        [notice] = delivered(sink, READER)
        assert notice["Auto-Submitted"] == "auto-replied"
        assert "closed" in notice.get_body(("plain",)).get_content()


class TestAuthenticatedSender:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """Our MTA's DMARC results are trusted."""
        return {"REPLYD_TRUST_AUTHSERV_ID": "mx.example.org"}

    def test_a_from_our_mta_authenticated_is_told(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """With DMARC passed for its domain, the From is proven: it hears why nothing was
        published, even without a token; with dmarc=none it hears nothing."""
        blog.post()
        bare = f"reply@{DOMAIN}"
        for result, sender in (("none", "ann@example.net"), ("pass", "bob@example.net")):
            raw = reply_message(
                sender,
                bare,
                "Where does this go?",
                headers={
                    "Authentication-Results": (
                        f"mx.example.org; dmarc={result} header.from=example.net"
                    )
                },
            )
            send(server.port, sender, [bare], raw)
            assert final_row(blog).reason_code == "no_route"
        [notice] = delivered(sink, "bob@example.net")
        assert "could not tell which post" in notice.get_body(("plain",)).get_content()
        assert sink[0].to("ann@example.net") == []


class TestHourlyCap:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """At most two notices an hour, whoever they are for."""
        return {"REPLYD_NOTICES_PER_HOUR": "2"}

    def test_notices_stop_at_the_hourly_cap(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """Three proven senders refused within the hour: two are told, the third is not."""
        post = blog.post(closed=True)
        senders = [f"reader{n}@example.org" for n in range(3)]
        for sender in senders:
            address = blog.address(post, sender)
            send(server.port, sender, [address], reply_message(sender, address, "Too late"))
            assert final_row(blog).status == InboundStatus.REJECTED
        # The notice, or its absence, is written in the same transaction as the refusal.
        with blog.parts.session_factory() as session:
            told = session.scalars(select(RejectionNotice.sender).order_by(RejectionNotice.id))
            assert list(told) == senders[:2]
            assert session.scalar(select(func.count()).select_from(InboundEmail)) == 3
        delivered(sink, senders[1])
        assert comments(blog) == []


class TestNoticeAddresses:
    def test_never_to_our_own_domain_or_sender(self, blog: Blog) -> None:
        """Notices are never addressed to replyd itself, its domain or a subdomain of it."""
        notices = RejectionNotices(
            from_address="notifications@blog.example.org", site_name="Blog", domain=DOMAIN
        )
        with blog.parts.session_factory.begin() as session:
            row = InboundEmail(raw=b"", sha256="0" * 64, sender="", recipient=f"reply@{DOMAIN}")
            session.add(row)
            session.flush()
            for to in (
                f"anyone@{DOMAIN}",
                f"someone@mx.{DOMAIN}",
                "notifications@blog.example.org",
            ):
                assert not notices.queue(
                    session, inbound_id=row.id, to=to, code="closed", subject="", in_reply_to=None
                )
            assert notices.queue(
                session,
                inbound_id=row.id,
                to=READER,
                code="closed",
                subject="",
                in_reply_to=None,
            )

    def test_cap_setting(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        """REPLYD_NOTICES_PER_HOUR takes a number or off; off with the other limits too."""
        assert make_settings(tmp_path).notices_per_hour == 100
        assert make_settings(tmp_path, REPLYD_NOTICES_PER_HOUR="off").notices_per_hour is None
        assert make_settings(tmp_path, REPLYD_RATE_LIMITS="off").notices_per_hour is None
        assert (
            make_settings(
                tmp_path, REPLYD_RATE_LIMITS="off", REPLYD_NOTICES_PER_HOUR="5"
            ).notices_per_hour
            == 5
        )
        with pytest.raises(ConfigError, match="REPLYD_NOTICES_PER_HOUR"):
            make_settings(tmp_path, REPLYD_NOTICES_PER_HOUR="lots")
