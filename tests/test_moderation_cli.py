"""Moderating from the command line, and blocking senders, against a running replyd: the
commands have the effects the API and mailed links have; a blocked sender hears nothing."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys

import pytest

from service.runtime.settings import Settings
from service.store.models import CommentStatus, InboundStatus, Subscription
from tests.conftest import DOMAIN, SECRET, Blog, RunningServer, SinkHandler, reply_message, send
from tests.http_fixtures import API_TOKEN, HttpClient, http
from tests.moderation_helpers import (
    AUTHOR,
    FOLLOWER,
    READER,
    about,
    comment_row,
    events,
    finished,
    mail_to,
    moderation_mail,
    moderators_asked,
    reply_by_mail,
)

__all__ = ["http"]  # a fixture, imported so this module uses it

Sink = tuple[SinkHandler, int]
MALLORY = "mallory@evil.example"
HONEST = "honest@example.org"


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """First comments wait for approval; the API is on (for the checks over HTTP)."""
    return {"REPLYD_API_TOKEN": API_TOKEN, "REPLYD_MODERATION": "new"}


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """The environment that points the replyd command at the test's database."""
    return {
        "REPLYD_VAR_DIR": str(settings.var_dir),
        "REPLYD_DOMAIN": DOMAIN,
        "REPLYD_SECRET": SECRET,
        "REPLYD_BASE_URL": "https://blog.example.org",
        "REPLYD_MODERATION": "new",
        "REPLYD_OUTBOUND": f"maildir://{settings.var_dir / 'outbox'}",
    }


def replyd(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """Run the replyd command as operators do; check its exit code."""
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == code, (result.stdout, result.stderr)
    return result


def listed(env: dict[str, str], status: str) -> list[dict[str, object]]:
    """`replyd comments --post hello --status S --json`."""
    out = replyd(env, "comments", "--post", "hello", "--status", status, "--json").stdout
    return list(json.loads(out))


class TestCommentCommands:
    def test_approve_hide_restore_delete_with_their_effects(
        self, server: RunningServer, blog: Blog, sink: Sink, env: dict[str, str]
    ) -> None:
        """Each command says what it did and logs it under the user's name; approve mails the
        followers, restore mails nobody, and a comment that was never approved goes back to
        waiting when restored."""
        post = blog.post()
        follower = blog.person(FOLLOWER)
        with blog.parts.session_factory.begin() as session:
            session.add(Subscription(post_id=post, person_id=follower))
        reply_by_mail(blog, server.port, post, READER, "Held by default")
        [held] = listed(env, "held")
        assert held["status"] == "held" and held["body"] == "Held by default"
        assert {"id", "parent_id", "author_email", "author_name", "elided", "source"} <= set(held)
        assert "#1 [held]" in replyd(env, "comments", "--post", "hello").stdout
        assert listed(env, "published") == []

        approved = replyd(env, "comment", "approve", str(held["id"])).stdout
        assert "held -> published" in approved and "2 notification(s) queued" in approved
        assert about(mail_to(sink, FOLLOWER), int(str(held["id"])))
        again = replyd(env, "comment", "approve", str(held["id"])).stdout
        assert "published already; nothing to do" in again

        assert "published -> hidden" in replyd(env, "comment", "hide", str(held["id"])).stdout
        assert listed(env, "hidden")[0]["id"] == held["id"]
        assert "hidden -> published" in replyd(env, "comment", "restore", str(held["id"])).stdout
        refused = replyd(env, "comment", "restore", str(held["id"]), code=2)
        assert "only hidden comments can be restored" in refused.stderr
        assert "Traceback" not in refused.stderr

        # Never approved: hidden, then restored, it waits again.
        reply_by_mail(blog, server.port, post, "second@example.org", "Another first")
        [waiting] = listed(env, "held")
        replyd(env, "comment", "hide", str(waiting["id"]))
        assert "hidden -> held" in replyd(env, "comment", "restore", str(waiting["id"])).stdout

        assert "-> deleted" in replyd(env, "comment", "delete", str(held["id"])).stdout
        assert comment_row(blog, int(str(held["id"]))).body == ""
        missing = replyd(env, "comment", "delete", str(held["id"]), code=2)
        assert f"there is no comment #{held['id']}" in missing.stderr
        assert "replyd comments" in missing.stderr

        log = events(blog, int(str(held["id"])))
        assert [e.action for e in log] == ["hold", "approve", "hide", "restore", "delete"]
        assert {(e.actor, e.via) for e in log[1:]} == {(getpass.getuser(), "cli")}
        shown = json.loads(replyd(env, "comment", "log", str(held["id"]), "--json").stdout)
        assert [(e["action"], e["to_status"], e["via"]) for e in shown][:2] == [
            ("delete", "deleted", "cli"),
            ("restore", "published", "cli"),
        ]
        assert shown[-1]["by"] == "replyd" and "first comment" in shown[-1]["note"]
        assert "hidden->published" in replyd(env, "comment", "log").stdout
        # Mail to the follower: only the approval's; the restore sent nothing again.
        assert len(about(sink[0].to(FOLLOWER), int(str(held["id"])))) == 1

    def test_moderation_commands_do_not_import_talon(self, env: dict[str, str]) -> None:
        """`replyd comment` and `replyd blocks` stay fast: no talon, no HTTP stack."""
        code = (
            "import sys; from service.cli import main; main(['blocks', 'list']); "
            "main(['comment', 'approve', '1']) if False else None; "
            "print(sorted(m for m in ('talon', 'starlette', 'aiosmtpd', 'alembic') "
            "if m in sys.modules))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr
        approve = replyd(env, "comment", "approve", "7", code=2)
        assert "there is no comment #7" in approve.stderr

    def test_bad_moderation_settings_are_named(self, env: dict[str, str]) -> None:
        """REPLYD_MODERATION and REPLYD_MODERATORS are checked, and named when wrong."""
        bad_mode = replyd({**env, "REPLYD_MODERATION": "maybe"}, "blocks", "list", code=2)
        assert "REPLYD_MODERATION must be one of off, new, all" in bad_mode.stderr
        bad_list = replyd(
            {**env, "REPLYD_MODERATORS": "ann@example.org, bob"}, "blocks", "list", code=2
        )
        assert "REPLYD_MODERATORS" in bad_list.stderr and "'bob'" in bad_list.stderr


class TestBlocking:
    def test_blocked_sender_is_refused_silently_and_their_held_comments_removed(
        self, server: RunningServer, blog: Blog, sink: Sink, env: dict[str, str], http: HttpClient
    ) -> None:
        """Blocking an address removes its held comment; its later mail is rejected without a
        notice and without a moderator asked, as is mail from a blocked domain's subdomain,
        while an unblocked sender making the same mistake is told."""
        post = blog.post()
        closed = blog.post("closed", closed=True)
        reply_by_mail(blog, server.port, post, MALLORY, "First, harmless")
        [held] = listed(env, "held")
        out = replyd(env, "block", "--email", "Mallory@Evil.example").stdout
        assert out.strip() == "blocked email mallory@evil.example; 1 held comment(s) removed"
        assert comment_row(blog, int(str(held["id"]))).status == CommentStatus.HIDDEN
        assert [e.note for e in events(blog, int(str(held["id"])))][-1].startswith("sender blocked")
        replyd(env, "block", "--domain", "spam.example")
        asked = len(moderators_asked(sink, AUTHOR))

        for sender, post_id in ((MALLORY, post), (MALLORY, closed), ("x@mail.spam.example", post)):
            row = reply_by_mail(blog, server.port, post_id, sender, "Let me in")
            assert row.status == InboundStatus.REJECTED and (row.reason or "").startswith(
                "blocked sender"
            )
        made = http.post(
            "/api/posts/hello/comments", json_body={"author_email": MALLORY, "body": "web"}
        )
        assert made.status == 403 and "blocked" in made.json()["error"]

        # The same mistake from someone not blocked is answered: its notice proves the
        # outbox would have sent one to Mallory by now.
        address = blog.address(closed, HONEST)
        send(server.port, HONEST, [address], reply_message(HONEST, address, "Hello?"))
        assert finished(blog).status == InboundStatus.REJECTED
        mail_to(sink, HONEST)
        assert sink[0].to(MALLORY) == [] and sink[0].to("x@mail.spam.example") == []
        assert len(moderators_asked(sink, AUTHOR)) == asked
        assert [row.comment_id for row in moderation_mail(blog)] == [held["id"]]

        blocks = json.loads(replyd(env, "blocks", "list", "--json").stdout)
        assert [(b["kind"], b["value"]) for b in blocks] == [
            ("email", MALLORY),
            ("domain", "spam.example"),
        ]
        assert replyd(env, "unblock", "--email", MALLORY).stdout.strip() == (
            f"unblocked email {MALLORY}"
        )
        assert "is not blocked" in replyd(env, "unblock", "--email", MALLORY, code=2).stderr
        assert "not an email address" in replyd(env, "block", "--email", "nobody", code=2).stderr
        assert comment_row(blog, int(str(held["id"]))).status == CommentStatus.HIDDEN
        allowed = reply_by_mail(blog, server.port, post, MALLORY, "Reformed")
        assert allowed.status == InboundStatus.PROCESSED
