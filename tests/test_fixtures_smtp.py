"""Every real-client fixture through the real pipeline: sent over SMTP to a running replyd, it
becomes exactly the comment its .expected holds."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from service.inbound.parse import parse_message
from service.store.models import Comment, InboundEmail, InboundStatus
from tests.conftest import Blog, RunningServer, send, wait_for
from tests.test_fixtures import EMAILS, expected

_REPLY_ADDRESS = re.compile(rb"reply\+[a-z0-9]+@replies\.example\.org")


class TestFixturesOverSmtp:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """Many replies from many people in a few seconds: no rate limits in the way."""
        return {"REPLYD_RATE_LIMITS": "off"}

    def test_every_fixture_becomes_its_comment(self, server: RunningServer, blog: Blog) -> None:
        """Each .eml, addressed to a reply address issued to its sender, is published as
        exactly its .expected comment, with what was cut kept beside it."""
        post_id = blog.post()
        by_message_id: dict[str, str] = {}
        for path in EMAILS:
            raw = path.read_bytes()
            message = parse_message(raw)
            assert message.message_id and message.message_id not in by_message_id, path.name
            by_message_id[message.message_id] = path.stem
            address = blog.address(post_id, message.from_address)
            # The fixture's own token was issued by another server: give it a valid one.
            raw = _REPLY_ADDRESS.sub(address.encode(), raw)
            assert send(server.port, message.from_address, [address], raw) == {}

        def finished() -> list[InboundEmail] | None:
            with blog.parts.session_factory() as session:
                rows = list(session.scalars(select(InboundEmail)))
            done = [
                row
                for row in rows
                if row.status not in (InboundStatus.RECEIVED, InboundStatus.PROCESSING)
            ]
            return rows if len(done) == len(EMAILS) else None

        rows = wait_for(finished, timeout=60, what="every fixture to reach a terminal state")
        with blog.parts.session_factory() as session:
            comments = {c.inbound_email_id: c for c in session.scalars(select(Comment))}
        wrong: list[str] = []
        for row in rows:
            name = by_message_id[row.message_id or ""]
            comment = comments.get(row.id)
            if row.status != InboundStatus.PROCESSED or comment is None:
                wrong.append(f"{name}: {row.status} ({row.reason})")
            elif comment.body != expected(EMAILS[0].with_name(f"{name}.eml")):
                wrong.append(f"{name}: published {comment.body!r}")
            elif not comment.elided.strip():
                wrong.append(f"{name}: nothing kept of what was cut")
        assert not wrong, "\n".join(wrong)
