"""The webhooks on PostgreSQL, where several nodes share the events: the same tests, and
claims that never hand one event to two senders."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from service.outbound.webhooks import WebhookSender
from service.runtime.components import Components
from service.runtime.settings import Settings
from tests import test_webhooks as webhooks
from tests.conftest import Blog, SinkHandler, postgres_settings

# The SQLite tests' fixtures: the receiver, and settings pointing replyd at it.
receiver = webhooks.receiver
settings_overrides = webhooks.settings_overrides


@pytest.fixture
def settings(
    tmp_path: Path,
    postgres_url: str,
    sink: tuple[SinkHandler, int],
    settings_overrides: dict[str, str],
) -> Settings:
    """Settings whose database is the run's (emptied) PostgreSQL database."""
    return postgres_settings(tmp_path, postgres_url, sink, settings_overrides)


class TestRetriesOnPostgres(webhooks.TestRetries):
    """Retries after a 500 and a timeout, on PostgreSQL."""


class TestOrderPerPostOnPostgres(webhooks.TestOrderPerPost):
    """Order per post, on PostgreSQL."""


class TestModerationOnPostgres(webhooks.TestModeration):
    """Moderation's events, on PostgreSQL."""


class TestSeveralNodes:
    def test_concurrent_senders_never_claim_one_event_twice(
        self, settings: Settings, parts: Components, blog: Blog
    ) -> None:
        """Eight senders claim at once: every due event is claimed by exactly one of them,
        and of one post only its first event."""
        posts = [blog.post(f"p{n}") for n in range(12)]
        for post in posts:
            webhooks.publish(parts, post, webhooks.READER, "First")
            webhooks.publish(parts, post, webhooks.READER, "Second")
        assert settings.webhooks is not None
        claims: list[list[int]] = []
        lock = threading.Lock()
        start = threading.Barrier(8)

        def claim(n: int) -> None:
            sender = WebhookSender(parts.session_factory, settings.webhooks)  # type: ignore[arg-type]
            start.wait()
            got = [event.id for event in sender.claim_due(f"node{n}", limit=4)]
            with lock:
                claims.append(got)

        threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        claimed = [event_id for got in claims for event_id in got]
        assert len(claimed) == len(set(claimed))
        rows = {row.id: row for row in webhooks.events(parts)}
        firsts = {min(r.id for r in rows.values() if r.post_id == post) for post in posts}
        assert set(claimed) == firsts
