"""Outgoing webhooks (issue 20): signed as Standard Webhooks says, queued with their cause,
retried after a 500 and a timeout, in order per post, never carrying what is not public."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from service.moderation.log import Actor
from service.outbound.audience import Audience
from service.outbound.webhook_payload import sign
from service.outbound.webhooks import retry_delay
from service.runtime.components import Components
from service.runtime.settings import ConfigError, Settings
from service.runtime.webhook_settings import signing_key
from service.store.models import Comment, Person, Post, WebhookEvent
from tests.conftest import (
    DOMAIN,
    SECRET,
    Blog,
    RunningServer,
    free_port,
    make_settings,
    reply_message,
    send,
    wait_for,
)
from tests.http_fixtures import API_TOKEN, HttpClient
from tests.test_cli import run
from tests.test_crash import Daemon
from tests.webhook_helpers import KEY, WHSEC, Receiver, check_signed

READER = "rita@example.org"
OPERATOR = Actor("operator", "cli")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 taking the webhooks."""
    running = Receiver().start()
    yield running
    running.stop()


@pytest.fixture
def settings_overrides(receiver: Receiver) -> dict[str, str]:
    # A path and query of the receiver's own: logs and listings name only scheme and host.
    return {
        "REPLYD_WEBHOOK_URL": f"http://127.0.0.1:{receiver.port}/hooks/replyd?token=receivers-own",
        "REPLYD_WEBHOOK_SECRET": WHSEC,
        "REPLYD_WEBHOOK_RETRY_SECONDS": "0.2",
        "REPLYD_WEBHOOK_TIMEOUT_SECONDS": "1",
        "REPLYD_RATE_LIMITS": "off",
    }


def publish(parts: Components, post_id: int, email: str, body: str, name: str = "") -> int:
    """Publish a comment as the web and mail doors do (Intake.submit), in one transaction."""
    with parts.session_factory.begin() as session:
        post = session.get(Post, post_id)
        assert post is not None
        person = session.scalar(select(Person).where(Person.email == email))
        if person is None:
            person = Person(email=email, display_name=name)
            session.add(person)
            session.flush()
        comment = Comment(post_id=post.id, author_id=person.id, body=body, source="web")
        parts.intake().submit(session, comment, post, person, Audience(session, [post]))
        return comment.id


def events(parts: Components) -> list[WebhookEvent]:
    with parts.session_factory() as session:
        return list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


class TestSignature:
    def test_the_specifications_test_vector(self) -> None:
        """replyd signs the Standard Webhooks specification's published example exactly."""
        key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        signature = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
        assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    def test_a_reply_by_mail_arrives_signed_with_its_fields_and_no_address(
        self, server: RunningServer, blog: Blog, receiver: Receiver
    ) -> None:
        """A reply published through SMTP reaches the receiver as comment.published, signed
        byte for byte over the body received, with the event's fields; no address in it."""
        post = blog.post()
        raw = reply_message(f"Rita Reader <{READER}>", blog.address(post, READER), "Lovely post!")
        send(server.port, READER, [blog.address(post, READER)], raw)
        (arrival,) = wait_for(receiver.got, what="the webhook")
        check_signed(arrival)
        assert arrival.headers["content-type"] == "application/json"
        event = arrival.event
        comment_id = event["comment"]["id"]
        assert event["type"] == "comment.published"
        assert event["id"] == arrival.headers["webhook-id"] and event["id"].startswith("msg_")
        assert event["occurred_at"].endswith("Z")
        assert event["post"] == {
            "id": post,
            "title": "Post hello",
            "url": "https://blog.example.org/hello",
        }
        assert event["comment"]["parent_id"] is None
        assert event["comment"]["author_name"] == "Rita Reader"
        assert event["comment"]["body"] == "Lovely post!"
        assert event["comment"]["url"] == f"https://blog.example.org/hello#comment-{comment_id}"
        assert event["comment"]["created_at"].endswith("Z")
        assert b"@" not in arrival.body  # neither the writer's address nor anyone else's
        row = events(blog.parts)[0]
        wait_for(lambda: events(blog.parts)[0].status == "delivered", what="delivered")
        assert row.event_id == event["id"]

    def test_a_name_that_is_the_address_is_not_sent(
        self, server: RunningServer, blog: Blog, receiver: Receiver
    ) -> None:
        """A writer whose name is their address is sent under a neutral name instead."""
        post = blog.post()
        publish(blog.parts, post, "sam@example.org", "Hi", name="sam@example.org")
        (arrival,) = wait_for(receiver.got, what="the webhook")
        assert b"sam@example.org" not in arrival.body
        assert arrival.event["comment"]["author_name"] == "A reader"

    def test_a_plain_secret_signs_with_its_utf8_bytes(self, tmp_path: Path) -> None:
        """A secret without whsec_ is used as its UTF-8 bytes; whsec_ is base64-decoded."""
        assert signing_key("plain-secret-ünïcode-1234") == "plain-secret-ünïcode-1234".encode()
        assert signing_key(WHSEC) == KEY

    @pytest.mark.parametrize(
        ("extra", "says"),
        [
            ({"REPLYD_WEBHOOK_URL": "ftp://example.org/x"}, "http:// or https://"),
            ({"REPLYD_WEBHOOK_URL": "file:///etc/passwd"}, "http:// or https://"),
            ({"REPLYD_WEBHOOK_URL": "https://example.org/x"}, "REPLYD_WEBHOOK_SECRET is not"),
            (
                {"REPLYD_WEBHOOK_URL": "https://example.org/", "REPLYD_WEBHOOK_SECRET": "whsec_!!"},
                "not base64",
            ),
            (
                {"REPLYD_WEBHOOK_URL": "https://example.org/", "REPLYD_WEBHOOK_SECRET": "short"},
                "at least 16 bytes",
            ),
        ],
    )
    def test_bad_settings_are_refused_at_start(
        self, tmp_path: Path, extra: dict[str, str], says: str
    ) -> None:
        """A URL that is not http(s), or one without a usable secret, stops replyd with a
        sentence naming the setting."""
        with pytest.raises(ConfigError, match=says):
            make_settings(tmp_path, **extra)

    def test_defaults_without_a_url(self, tmp_path: Path) -> None:
        """No REPLYD_WEBHOOK_URL: no webhooks, and nothing queued (the publishing path pays
        nothing); the defaults are 10 s and 30 s."""
        assert make_settings(tmp_path).webhooks is None
        configured = make_settings(
            tmp_path, REPLYD_WEBHOOK_URL="https://example.org/h", REPLYD_WEBHOOK_SECRET=WHSEC
        ).webhooks
        assert configured is not None
        assert (configured.timeout_seconds, configured.retry_seconds) == (10.0, 30.0)
        assert repr(configured).count(WHSEC[6:]) == 0 and "key" not in repr(configured)


class TestFromTheWeb:
    @pytest.fixture
    def settings_overrides(self, receiver: Receiver) -> dict[str, str]:
        return {
            "REPLYD_WEBHOOK_URL": f"http://127.0.0.1:{receiver.port}/",
            "REPLYD_WEBHOOK_SECRET": WHSEC,
            "REPLYD_API_TOKEN": API_TOKEN,
        }

    def test_a_web_comment_and_its_hide_over_the_api(
        self, server: RunningServer, blog: Blog, receiver: Receiver
    ) -> None:
        """POST /api/posts/{id}/comments publishes (comment.published with the words), PATCH
        status=hidden hides (comment.hidden without them), over real HTTP."""
        blog.post()
        http = HttpClient(f"http://127.0.0.1:{server.server.http_port}")
        reply = http.post(
            "/api/posts/hello/comments",
            json_body={"author_email": READER, "author_name": "Rita", "body": "From the web"},
        )
        assert reply.status == 201, reply.text
        comment = reply.json()["id"]
        (published,) = wait_for(lambda: receiver.of_type("comment.published"), what="published")
        assert published.event["comment"]["body"] == "From the web"
        hidden = http.request("PATCH", f"/api/comments/{comment}", json_body={"status": "hidden"})
        assert hidden.status == 200, hidden.text
        (event,) = wait_for(lambda: receiver.of_type("comment.hidden"), what="hidden")
        check_signed(event)
        assert event.comment_id == comment and b"From the web" not in event.body


class TestSeveralUrls:
    @pytest.fixture
    def second(self) -> Iterator[Receiver]:
        running = Receiver().start()
        yield running
        running.stop()

    @pytest.fixture
    def settings_overrides(self, receiver: Receiver, second: Receiver) -> dict[str, str]:
        urls = f"http://127.0.0.1:{receiver.port}/a, http://127.0.0.1:{second.port}/b"
        return {
            "REPLYD_WEBHOOK_URL": urls,
            "REPLYD_WEBHOOK_SECRET": WHSEC,
            "REPLYD_WEBHOOK_RETRY_SECONDS": "0.2",
        }

    def test_each_url_gets_the_event_and_one_failing_holds_up_only_itself(
        self, server: RunningServer, blog: Blog, receiver: Receiver, second: Receiver
    ) -> None:
        """Both URLs get the event under one webhook-id; the second answering 500 twice
        delays only its own copy."""
        second.rule = lambda event, seen: (500, 0.0) if seen < 2 else (200, 0.0)
        publish(blog.parts, blog.post(), READER, "Twice")
        (first,) = wait_for(receiver.got, what="the first URL's copy")
        wait_for(lambda: len(second.got()) == 3, what="the second URL's third attempt")
        assert {a.headers["webhook-id"] for a in second.got()} == {first.headers["webhook-id"]}
        assert first.body == second.got()[-1].body
        assert first.at < second.got()[-1].at
        check_signed(second.got()[-1])


class TestNothingConfigured:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        return {}

    def test_publishing_queues_no_event(self, parts: Components, blog: Blog) -> None:
        """Without a URL, a published comment leaves no webhook row."""
        publish(parts, blog.post(), READER, "Hello")
        assert events(parts) == []


class TestModeration:
    @pytest.fixture
    def settings_overrides(self, receiver: Receiver) -> dict[str, str]:
        return {
            "REPLYD_WEBHOOK_URL": f"http://127.0.0.1:{receiver.port}/",
            "REPLYD_WEBHOOK_SECRET": WHSEC,
            "REPLYD_WEBHOOK_RETRY_SECONDS": "0.2",
            "REPLYD_MODERATION": "all",
        }

    def test_held_approved_hidden_restored_deleted_in_order_without_a_body(
        self, server: RunningServer, blog: Blog, receiver: Receiver
    ) -> None:
        """Each moderation step is one event, in order; only comment.published carries the
        author's name and words, held, hidden and deleted events carry null for both."""
        parts = blog.parts
        post = blog.post()
        secret_words = "Words the owner has not published yet"
        comment = publish(parts, post, READER, secret_words, name="Rita Reader")
        moderation = parts.moderation()
        wait_for(lambda: receiver.of_type("comment.held"), what="comment.held")
        # Each step once the last one's event is in: a publication still queued when the
        # comment is deleted is not sent (the next test).
        for step, action in enumerate(("approve", "hide", "restore", "delete"), start=2):
            with parts.session_factory.begin() as session:
                getattr(moderation, action)(session, comment, OPERATOR)
            wait_for(lambda n=step: len(receiver.got()) == n, what=f"the event of {action}")
        got = receiver.got()
        assert [a.event["type"] for a in got] == [
            "comment.held",
            "comment.published",
            "comment.hidden",
            "comment.published",
            "comment.deleted",
        ]
        for arrival in got:
            check_signed(arrival)
            assert arrival.comment_id == comment
            if arrival.event["type"] != "comment.published":
                assert secret_words.encode() not in arrival.body
                assert arrival.event["comment"]["body"] is None
                assert arrival.event["comment"]["author_name"] is None
        assert len({a.headers["webhook-id"] for a in got}) == 5

    def test_a_publication_queued_before_a_hide_is_not_sent(
        self, settings: Settings, parts: Components, blog: Blog, receiver: Receiver
    ) -> None:
        """comment.published queued, then the comment hidden before any delivery: the
        receiver gets comment.hidden and never the words (the publication is cancelled)."""
        post = blog.post()
        secret_words = "Soon to be hidden"
        with parts.session_factory.begin() as session:
            person = Person(email=READER, display_name="Rita")
            session.add(person)
            session.flush()
            comment = Comment(post_id=post, author_id=person.id, body=secret_words)
            loaded = session.get(Post, post)
            assert loaded is not None
            parts.notifier().publish(session, comment, loaded, person, Audience(session, [loaded]))
        with parts.session_factory.begin() as session:
            parts.moderation().hide(session, comment.id, OPERATOR)
        running = RunningServer(settings).start()
        try:
            # The hidden event comes after the published one: once it is here, that one's
            # turn has passed.
            wait_for(lambda: receiver.of_type("comment.hidden"), what="comment.hidden")
        finally:
            running.stop()
        assert [a.event["type"] for a in receiver.got()] == ["comment.hidden"]
        assert all(secret_words.encode() not in a.body for a in receiver.got())
        first = events(parts)[0]
        assert (first.type, first.status) == ("comment.published", "cancelled")
        assert "hidden" in (first.last_error or "")

    def test_forgetting_a_person_deletes_their_comments_for_the_receiver(
        self, server: RunningServer, settings: Settings, blog: Blog, receiver: Receiver
    ) -> None:
        """`replyd person forget --comments delete`: comment.deleted for each comment."""
        post = blog.post()
        first = publish(blog.parts, post, READER, "One", name="Rita")
        second = publish(blog.parts, post, READER, "Two", name="Rita")
        env = {
            "REPLYD_VAR_DIR": str(settings.var_dir),
            "REPLYD_DATABASE_URL": settings.database_url,
            "REPLYD_DOMAIN": DOMAIN,
            "REPLYD_SECRET": SECRET,
            "REPLYD_WEBHOOK_URL": f"http://127.0.0.1:{receiver.port}/",
            "REPLYD_WEBHOOK_SECRET": WHSEC,
        }
        run(env, "person", "forget", "--email", READER, "--comments", "delete")
        wait_for(lambda: len(receiver.of_type("comment.deleted")) == 2, what="two deletions")
        assert {a.comment_id for a in receiver.of_type("comment.deleted")} == {first, second}
        for arrival in receiver.got():
            assert b"@" not in arrival.body and b"One" not in arrival.body


class TestRetries:
    def test_a_500_is_retried_with_the_same_id_until_taken(
        self,
        server: RunningServer,
        blog: Blog,
        receiver: Receiver,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Two 500s, then 200: three requests, one webhook-id, each freshly signed; the log
        says why each failed, without the secret, a signature or the URL's own token."""
        caplog.set_level("INFO")
        receiver.rule = lambda event, seen: (500, 0.0) if seen < 2 else (200, 0.0)
        publish(blog.parts, blog.post(), READER, "Retry me")
        wait_for(lambda: len(receiver.got()) == 3, what="three attempts")
        wait_for(lambda: events(blog.parts)[0].status == "delivered", what="delivered")
        got = receiver.got()
        assert len({a.headers["webhook-id"] for a in got}) == 1
        assert len({a.body for a in got}) == 1
        for arrival in got:
            check_signed(arrival)
        assert events(blog.parts)[0].attempts == 3
        said = caplog.text
        assert said.count("answered HTTP 500") == 2 and "delivered to http://127.0.0.1:" in said
        assert "receivers-own" not in said and WHSEC[6:] not in said
        assert not any(a.headers["webhook-signature"][3:] in said for a in got)

    def test_a_receiver_that_does_not_answer_in_time_gets_it_again(
        self, server: RunningServer, blog: Blog, receiver: Receiver
    ) -> None:
        """The first request waits 3 s for an answer (the timeout is 1 s): replyd gives up
        on it and sends the same event again, which is taken."""
        receiver.rule = lambda event, seen: (200, 3.0) if seen == 0 else (200, 0.0)
        publish(blog.parts, blog.post(), READER, "Slow receiver")
        wait_for(lambda: len(receiver.got()) == 2, what="a second attempt")
        row = wait_for(
            lambda: next((e for e in events(blog.parts) if e.status == "delivered"), None),
            what="delivered",
        )
        first, second = receiver.got()
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        # Sent again after the 1 s timeout and the 0.2 s wait, not after the 3 s answer.
        assert 1.0 <= second.at - first.at < 2.9
        assert row.attempts == 2

    def test_the_default_schedule_retries_for_most_of_a_day(self) -> None:
        """From 30 s doubling to a 6 h cap: twelve retries over 20.5 hours, then failed."""
        waits = [retry_delay(n, 30) for n in range(1, 13)]
        seconds = [w.total_seconds() if w else None for w in waits]
        assert seconds == [30, 60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 21600, 21600]
        assert sum(seconds) == 73890  # type: ignore[arg-type]
        assert retry_delay(13, 30) is None

    @pytest.fixture
    def settings_overrides(self, receiver: Receiver) -> dict[str, str]:
        return {
            "REPLYD_WEBHOOK_URL": f"http://127.0.0.1:{receiver.port}/hooks?token=receivers-own",
            "REPLYD_WEBHOOK_SECRET": WHSEC,
            "REPLYD_WEBHOOK_RETRY_SECONDS": "0.2",
            "REPLYD_WEBHOOK_TIMEOUT_SECONDS": "1",
        }


class TestGivingUp:
    @pytest.fixture
    def settings_overrides(self, receiver: Receiver) -> dict[str, str]:
        # Retries from 1 ms: the whole schedule takes 2.5 s.
        return {
            "REPLYD_WEBHOOK_URL": f"http://127.0.0.1:{receiver.port}/hooks?token=receivers-own",
            "REPLYD_WEBHOOK_SECRET": WHSEC,
            "REPLYD_WEBHOOK_RETRY_SECONDS": "0.001",
        }

    def test_failed_after_the_schedule_then_listed_and_retried_by_the_cli(
        self, server: RunningServer, settings: Settings, blog: Blog, receiver: Receiver
    ) -> None:
        """Always 500: 13 attempts, then failed with the reason; `replyd webhooks list
        --status failed` shows it, `replyd webhooks retry ID` sends it again (same id)."""
        receiver.rule = lambda event, seen: (500, 0.0)
        comment = publish(blog.parts, blog.post(), READER, "Never taken")
        row = wait_for(
            lambda: next((e for e in events(blog.parts) if e.status == "failed"), None),
            timeout=30,
            what="failed",
        )
        assert row.attempts == 13 and len(receiver.got()) == 13
        assert row.last_error == f"http://127.0.0.1:{receiver.port} answered HTTP 500"
        env = {
            "REPLYD_VAR_DIR": str(settings.var_dir),
            "REPLYD_DATABASE_URL": settings.database_url,
            "REPLYD_DOMAIN": DOMAIN,
            "REPLYD_SECRET": SECRET,
        }
        listing = run(env, "webhooks", "list", "--status", "failed").stdout
        assert f"{row.id}\tcomment.published\tpost #{row.post_id}\tcomment #{comment}" in listing
        assert "failed\t13\t-\t" in listing and "HTTP 500" in listing
        assert "receivers-own" not in listing  # the URL's own token stays out
        assert run(env, "webhooks", "list", "--status", "delivered").stdout.startswith("no ")
        receiver.rule = lambda event, seen: (200, 0.0)
        said = run(env, "webhooks", "retry", str(row.id)).stdout
        assert f"#{row.id} queued again" in said
        wait_for(lambda: events(blog.parts)[0].status == "delivered", what="delivered again")
        assert len({a.headers["webhook-id"] for a in receiver.got()}) == 1
        unknown = run(env, "webhooks", "retry", "999999", check=False)
        assert unknown.returncode != 0
        assert "there is no webhook event #999999" in unknown.stderr
        assert "replyd webhooks list" in unknown.stderr


class TestOrderPerPost:
    def test_a_later_event_waits_for_an_earlier_one_of_its_post_only(
        self, server: RunningServer, blog: Blog, receiver: Receiver
    ) -> None:
        """The first comment's event fails three times: the second comment of the same post
        arrives only after it was taken; a comment on another post is not held up."""
        first_post, other_post = blog.post("first"), blog.post("other")
        parts = blog.parts
        stuck: list[int] = []
        receiver.rule = lambda event, seen: (
            (500, 0.0) if event["comment"]["id"] in stuck and seen < 3 else (200, 0.0)
        )
        with parts.session_factory() as session:  # the next comment id, before it exists
            last = session.scalar(select(Comment.id).order_by(Comment.id.desc()).limit(1))
        stuck.append((last or 0) + 1)
        first = publish(parts, first_post, READER, "First")
        assert first == stuck[0]
        second = publish(parts, first_post, READER, "Second")
        elsewhere = publish(parts, other_post, READER, "Elsewhere")
        wait_for(lambda: any(a.comment_id == second for a in receiver.got()), what="the second")
        got = receiver.got()
        order = [a.comment_id for a in got]
        taken = max(i for i, a in enumerate(got) if a.comment_id == first)
        assert order.count(first) == 4
        assert order.index(second) > taken
        assert order.index(elsewhere) < taken


class TestCrash:
    def test_an_event_queued_before_kill_9_is_delivered_after_restart(
        self, settings: Settings, blog: Blog, tmp_path: Path
    ) -> None:
        """replyd serve (a real process) publishes a reply while the receiver is down, is
        killed with SIGKILL, and started again once the receiver is up: the event arrives,
        with the webhook-id it was queued with."""
        post = blog.post()
        hook_port = free_port()  # nothing listens there yet
        env = {
            **os.environ,
            "REPLYD_VAR_DIR": str(settings.var_dir),
            "REPLYD_DOMAIN": DOMAIN,
            "REPLYD_SECRET": SECRET,
            "REPLYD_SMTP_PORT": str(free_port()),
            "REPLYD_HTTP_PORT": "0",
            "REPLYD_WORKER_PROCESSES": "0",
            "REPLYD_OUTBOUND": f"maildir://{settings.var_dir / 'outbox'}",
            "REPLYD_WEBHOOK_URL": f"http://127.0.0.1:{hook_port}/hooks",
            "REPLYD_WEBHOOK_SECRET": WHSEC,
            "REPLYD_WEBHOOK_RETRY_SECONDS": "2",
        }
        daemon = Daemon(env, tmp_path / "daemon.log")
        receiver: Receiver | None = None
        try:
            daemon.start()
            address = blog.address(post, READER)
            send(
                int(env["REPLYD_SMTP_PORT"]),
                READER,
                [address],
                reply_message(READER, address, "Survives"),
            )
            row = wait_for(
                lambda: next((e for e in events(blog.parts) if e.last_error), None),
                timeout=20,
                what="a failed first attempt",
            )
            # Killed while it waits for its next attempt (2 s after the first).
            assert row.status == "queued" and "cannot reach" in (row.last_error or "")
            daemon.signal_all(signal.SIGKILL)
            assert daemon.process is not None
            daemon.process.wait(10)
            receiver = Receiver(hook_port).start()
            daemon.start()
            (arrival,) = wait_for(receiver.got, timeout=20, what="the event after the restart")
            check_signed(arrival)
            assert arrival.headers["webhook-id"] == row.event_id
            assert arrival.event["comment"]["body"] == "Survives"
            assert daemon.stop() == 0
        finally:
            daemon.kill_all()
            if receiver is not None:
                receiver.stop()
        (final,) = events(blog.parts)
        assert final.status == "delivered"
