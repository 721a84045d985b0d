"""Why a message ended is stored as a code from a fixed set, and metrics label by that code."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text, update

from service.store.engine import make_engine
from service.store.models import InboundEmail, ReasonCode
from service.store.schema import alembic_config
from tests.conftest import DOMAIN, Blog, RunningServer, send
from tests.http_fixtures import HttpClient, http, settings_overrides
from tests.test_abuse import all_terminal

__all__ = ["http", "settings_overrides"]  # fixtures, imported so this module uses them

# What a sender controls, dressed up to become label values under the old labelling.
HOSTILE = [
    # The example: an encoded word that decodes to a system address and more.
    ("MAILER-DAEMON@evil.example", "From: =?utf-8?q?mailer-daemon=40x=29_attacker_label?=\r\n"),
    # A quoted local part whose ")" ended the parenthesis the old labels cut away.
    ("mailer-daemon@evil.example", 'From: <"mailer-daemon@x)attacker_label2"@evil.example>\r\n'),
    ("postmaster@evil.example", 'From: <"postmaster@y)attacker_label3"@evil.example>\r\n'),
]


def inbound_series(http: HttpClient) -> set[tuple[str, str]]:
    """The (status, reason) label pairs of replyd_inbound_messages."""
    reply = http.get("/metrics", auth=False)
    assert reply.status == 200
    return {
        (sample.labels["status"], sample.labels["reason"])
        for family in text_string_to_metric_families(reply.text)
        if family.name == "replyd_inbound_messages"
        for sample in family.samples
    }


class TestMetricsLabels:
    def test_message_text_never_becomes_a_label(
        self, server: RunningServer, blog: Blog, http: HttpClient
    ) -> None:
        """Mail whose addresses carry label-like text adds no series: every reason label is
        one of the fixed codes, whatever the senders wrote."""
        blog.post()
        before = inbound_series(http)
        to = f"reply@{DOMAIN}"
        for sender, from_line in HOSTILE:
            raw = f"{from_line}To: {to}\r\nSubject: hello\r\n\r\nbody\r\n".encode()
            send(server.port, sender, [to], raw)
        all_terminal(blog, len(HOSTILE))
        after = inbound_series(http)
        allowed = {str(code) for code in ReasonCode} | {""}
        assert {reason for _, reason in after} <= allowed, after
        assert not any("attacker" in reason for _, reason in after)
        # Three different hostile senders, no more than the codes they ended with.
        assert len(after - before) <= 2

        # A row finished before reasons had codes (its wording matched none when they were
        # given): its text is still no label, only "other".
        with blog.parts.session_factory.begin() as session:
            session.execute(update(InboundEmail).values(reason_code=None))
        old = inbound_series(http)
        assert {reason for _, reason in old} <= {"", "other"}, old
        assert any(reason == "other" for _, reason in old)


class TestBackfill:
    def test_rows_from_before_reason_codes_get_theirs(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        """Migrating to 0005a gives finished rows the code their reason's words name."""
        from alembic import command

        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        try:
            config = alembic_config(engine)
            command.upgrade(config, "0004")
            rows = {
                1: ("rejected", "sender mismatch: From <a@b.example> is not the person"),
                2: ("ignored", "duplicate of the reply published as comment #3"),
                3: ("failed", "ValueError: boom"),
                4: ("rejected", "post 'x' is closed to comments"),
                5: ("ignored", "sent by a system address (mailer-daemon@x) label)"),
                6: ("rejected", "something nobody ever wrote"),
                7: ("processed", None),
            }
            with engine.begin() as connection:
                for row_id, (status, reason) in rows.items():
                    connection.execute(
                        text(
                            "INSERT INTO inbound_emails (id, received_at, raw, sha256, sender, "
                            "recipient, status, reason, attempts, updated_at) VALUES (:id, "
                            "'2026-01-01', x'', '', '', '', :status, :reason, 1, '2026-01-01')"
                        ),
                        {"id": row_id, "status": status, "reason": reason},
                    )
            command.upgrade(config, "0005a")
            with engine.connect() as connection:
                codes = dict(
                    connection.execute(text("SELECT id, reason_code FROM inbound_emails")).all()
                )
        finally:
            engine.dispose()
        assert codes == {
            1: "sender_mismatch",
            2: "duplicate",
            3: "error",
            4: "closed",
            5: "system_sender",
            6: None,
            7: None,
        }
