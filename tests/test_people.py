"""People's data (issue 23): export everything about someone, and forget them for good."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import select

from service.cli.people import COMMENT_CHOICES as CLI_CHOICES
from service.runtime.settings import Settings
from service.store.erasure import COMMENT_CHOICES, REMOVED_COMMENT
from service.store.models import Person, ReasonCode
from service.store.suppression import is_suppressed
from tests.conftest import Blog, RunningServer, SinkHandler, reply_message, send, wait_for
from tests.http_fixtures import HttpClient, http, settings_overrides
from tests.people_helpers import (
    BOB,
    CAROL,
    NAME,
    ZELDA,
    Seeded,
    comment_row,
    mail_settled,
    rcpt_answer,
    seed,
    text_of,
    traces,
)
from tests.reader_helpers import confirm_path, reader_follow, wait_for_confirmation
from tests.test_cli import cli_env, run
from tests.test_reply_flow import comments, delivered, final_row

__all__ = ["http", "settings_overrides"]  # fixtures, imported so this module uses them


def export_by_cli(settings: Settings, *extra: str) -> dict[str, Any]:
    """`replyd person export --email ZELDA` run as an operator runs it."""
    result = run(cli_env(settings), "person", "export", "--email", ZELDA.upper(), *extra)
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def bob_comments_again(server: RunningServer, blog: Blog, seeded: Seeded, body: str) -> None:
    """Bob writes another comment on the thread Zelda followed."""
    message = reply_message(BOB, seeded.bob_address, body)
    send(server.port, BOB, [seeded.bob_address], message)
    wait_for(lambda: any(c.body == body for c in comments(blog)), what="Bob's new comment")


class TestExport:
    def test_export_lists_everything_a_seeded_person_has(
        self,
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        settings: Settings,
        http: HttpClient,
    ) -> None:
        """The CLI's JSON names her, her comments with post ids and states, her follow and her
        weekly digest, her bounce, her raw mail (with --raw), the mail sent to her, the notice
        she got, and what of others' mail names her; the HTTP export says the same."""
        seeded = seed(server, blog, sink)
        document = export_by_cli(settings, "--raw")
        assert document["email"] == ZELDA and document["suppressed"] is False
        assert document["person"]["display_name"] == NAME
        assert [(c["id"], c["post_id"], c["state"]) for c in document["comments"]] == [
            (seeded.zelda_comment, "hello", "published"),
            (seeded.zelda_other_comment, "second", "published"),
        ]
        assert "Zelda Quixotic" in document["comments"][0]["elided"]  # her signature, kept aside
        assert sorted((s["post_id"], s["digest"]) for s in document["subscriptions"]) == [
            ("hello", None),
            ("second", "weekly"),
        ]
        [bounce] = document["bounces"]["messages"]
        assert "soft bounce" in bounce["reason"] and document["bounces"]["score"] > 0
        mine = [m for m in document["inbound"] if m["why"] == "sent by them"]
        assert len(mine) == 3  # two comments and the refused reply
        assert all("raw" in m for m in mine)
        assert "Lovely post" in mine[0]["raw"] and "Hi Bob" in mine[2]["raw"]
        assert sorted(o["kind"] for o in document["outbound"]) == ["notification", "rejection"]
        assert all(o["status"] == "sent" for o in document["outbound"])
        assert [n["reason"] for n in document["rejection_notices"]] == ["closed"]
        assert document["named_in_others_comments"] == [seeded.bob_comment]
        [bobs] = document["named_in_others_messages"]
        assert bobs["sender"] == BOB and "raw" not in bobs  # others' mail is not hers to read

        answer = http.get(f"/api/people/export?email={ZELDA}&raw=true")
        assert answer.status == 200
        over_http = answer.json()
        for exported in (document, over_http):
            del exported["exported_at"]
        assert over_http == document
        assert "raw" not in http.get(f"/api/people/export?email={ZELDA}").json()["inbound"][0]

    def test_export_needs_the_token_and_an_address(self, http: HttpClient) -> None:
        """Without the token the export is refused; a bad address is a 400 with a sentence."""
        assert http.get(f"/api/people/export?email={ZELDA}", auth=False).status == 401
        bad = http.get("/api/people/export?email=nobody")
        assert bad.status == 400 and "email address" in bad.json()["error"]
        assert http.request("DELETE", f"/api/people?email={ZELDA}", auth=False).status == 401
        wrong = http.request("DELETE", f"/api/people?email={ZELDA}&comments=shred")
        assert wrong.status == 400 and "keep-anonymous" in wrong.json()["error"]

    def test_the_cli_offers_what_the_erasure_takes(self) -> None:
        """The CLI's --comments choices (written out, for a light parser) are the erasure's."""
        assert CLI_CHOICES == COMMENT_CHOICES


class TestForget:
    def test_cli_forget_leaves_no_trace_and_nobody_mails_her(
        self,
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        settings: Settings,
        http: HttpClient,
    ) -> None:
        """After `replyd person forget`, neither the database file nor its log holds her
        address or name; her comments show as a former reader's, scrubbed; her reply address
        is refused at RCPT; and a new comment in her thread mails Carol, not her."""
        seeded = seed(server, blog, sink)
        assert traces(settings, ZELDA, NAME, "Quixotic")  # the search finds what is there
        result = run(cli_env(settings), "person", "forget", "--email", ZELDA)
        assert "1 other comment(s) scrubbed" in result.stdout
        wait_for(
            lambda: rcpt_answer(server.port, ZELDA, seeded.zelda_address)[0] == 550,
            what="the edge to refuse her old reply address",
        )
        code, text = rcpt_answer(server.port, ZELDA, seeded.zelda_address)
        assert (code, text[:5]) == (550, "5.1.1") and "forget" in text
        shown = http.get("/api/posts/hello/comments", auth=False).json()["comments"]
        assert [(c["author_name"], c["body"]) for c in shown[:2]] == [
            (
                "A former reader",
                "Lovely post, thanks!\nWrite to me at [address removed] any time.",
            ),
            ("", "I agree with [name removed]."),
        ]
        private = http.get("/api/posts/hello/comments").json()["comments"]
        assert private[0]["elided"] == "" and ZELDA not in json.dumps(private).lower()

        before = len(sink[0].to(ZELDA))
        carol_before = len(sink[0].to(CAROL))
        bob_comments_again(server, blog, seeded, "Anyone still here?")
        delivered(sink, CAROL, carol_before + 1)
        mail_settled(blog)  # the barrier: all of the thread's mail went out
        assert len(sink[0].to(ZELDA)) == before
        assert traces(settings, ZELDA, NAME, "Quixotic") == []
        after = export_by_cli(settings, "--raw")
        assert after["person"] is None and after["suppressed"] is True
        assert [after[k] for k in ("comments", "inbound", "outbound", "subscriptions")] == [[]] * 4

    def test_http_forget_deletes_comments_and_keeps_answers_under_a_placeholder(
        self,
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        settings: Settings,
        http: HttpClient,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """DELETE /api/people with comments=delete removes her comment that nobody answered
        and leaves the answered one as a placeholder; the edge refuses her address at once;
        the log says an erasure happened, not whose or what."""
        seeded = seed(server, blog, sink)
        caplog.set_level(logging.INFO)
        start = len(caplog.records)
        answer = http.request("DELETE", f"/api/people?email={ZELDA}&comments=delete")
        assert answer.status == 200
        done = answer.json()
        wait_for(lambda: "DELETE /api/people 200" in caplog.text, what="the access log line")
        logged = [r.getMessage() for r in caplog.records[start:]]
        assert any("erasure done" in line for line in logged)
        assert not [
            line for line in logged if "zelda" in line.lower() or "quixotic" in line.lower()
        ]
        assert (done["comments_deleted"], done["comments_left_as_placeholder"]) == (1, 1)
        assert rcpt_answer(server.port, ZELDA, seeded.zelda_address)[0] == 550  # no wait
        assert comment_row(blog, seeded.zelda_other_comment) is None
        kept = comment_row(blog, seeded.zelda_comment)
        assert kept is not None and kept.body == REMOVED_COMMENT and kept.elided == ""
        shown = http.get("/api/posts/hello/comments", auth=False).json()["comments"]
        assert [(c["id"], c["author_name"]) for c in shown[:2]] == [
            (seeded.zelda_comment, "A former reader"),
            (seeded.bob_comment, ""),
        ]
        assert shown[1]["parent_id"] == seeded.zelda_comment
        bob_comments_again(server, blog, seeded, "Still here.")
        delivered(sink, CAROL, 2)
        mail_settled(blog)
        assert len(sink[0].to(ZELDA)) == 2  # the two mails before the erasure, none after
        assert traces(settings, ZELDA, NAME, "Quixotic") == []

    def test_forgetting_an_unknown_address_still_suppresses_it(
        self, server: RunningServer, http: HttpClient, blog: Blog
    ) -> None:
        """Someone replyd holds nothing about may still ask: their address is suppressed, so a
        later subscription needs their own word."""
        blog.post()
        done = http.request("DELETE", f"/api/people?email={ZELDA}").json()
        assert done["found"] is False
        refused = http.post("/api/subscriptions", json_body={"post_id": "hello", "email": ZELDA})
        assert refused.status == 409 and "asked_by_person" in refused.json()["error"]
        with blog.parts.session_factory() as session:
            assert session.scalar(select(Person).where(Person.email == ZELDA)) is None


class TestSuppression:
    def test_a_forgotten_address_is_never_mailed_unless_she_asks_anew(
        self,
        server: RunningServer,
        blog: Blog,
        sink: tuple[SinkHandler, int],
        settings: Settings,
        http: HttpClient,
    ) -> None:
        """After the erasure: the operator cannot subscribe her (409, CLI exit 2), a comment
        the blog posts in her name mails her nothing, nor does a refusal of her mail; once she
        asks herself (asked_by_person), mail reaches her again."""
        seeded = seed(server, blog, sink)
        assert http.request("DELETE", f"/api/people?email={ZELDA}").status == 200
        mailed = len(sink[0].to(ZELDA))
        body = {"post_id": "hello", "email": ZELDA}
        assert http.post("/api/subscriptions", json_body=body).status == 409
        refused = run(
            cli_env(settings), "subscribe", "--post", "hello", "--email", ZELDA, check=False
        )
        assert refused.returncode == 2 and "--asked-by-person" in refused.stderr
        web = http.post(
            "/api/posts/hello/comments",
            json_body={"author_email": ZELDA, "author_name": "Z", "body": "I am back."},
        )
        assert web.status == 201
        # Her reply to a post closed to comments, by an address of the person the web comment
        # made anew: refused, and she is not told (she would be, were she not suppressed).
        closed = blog.address(seeded.closed_post, ZELDA)
        send(server.port, ZELDA, [closed], reply_message(ZELDA, closed, "Hello?"))
        # The barrier: her message was refused (its notice skipped) by now.
        assert final_row(blog).reason_code == ReasonCode.CLOSED
        bob_comments_again(server, blog, seeded, "Welcome back.")
        delivered(sink, CAROL, 2)
        mail_settled(blog)  # the barrier: every mail of the comment and the refusals is out
        assert len(sink[0].to(ZELDA)) == mailed

        asked = http.post("/api/subscriptions", json_body={**body, "asked_by_person": True})
        assert asked.status == 200
        bob_comments_again(server, blog, seeded, "Now she hears of it.")
        [*_, latest] = delivered(sink, ZELDA, mailed + 1)
        assert "Now she hears of it." in text_of(latest)

    def test_following_from_the_blog_and_confirming_by_mail_is_asking_anew(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int], http: HttpClient
    ) -> None:
        """A follow from the blog, confirmed from her mailbox, is her own request: the address
        comes off the suppression list and the next comment on the thread reaches her."""
        post = blog.post()
        blog.person(ZELDA, NAME)
        assert http.request("DELETE", f"/api/people?email={ZELDA}").status == 200
        assert reader_follow(http, ZELDA).status == 202
        path = confirm_path(wait_for_confirmation(sink[0], ZELDA))
        assert http.post(path, auth=False).status in (200, 303)
        with blog.parts.session_factory() as session:
            assert not is_suppressed(session, ZELDA)
            person = session.scalar(select(Person).where(Person.email == ZELDA))
            assert person is not None and person.suspended_at is None
        address = blog.address(post, BOB)
        send(server.port, BOB, [address], reply_message(BOB, address, "Welcome, newcomer."))
        [*_, note] = delivered(sink, ZELDA, 2)
        assert "Welcome, newcomer." in text_of(note)
