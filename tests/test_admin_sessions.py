"""The operator pages over real HTTP: server-side sessions that end, throttled logins, nothing
cached, and ids out of range answered 404 (issue 16)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from service.runtime.settings import Settings
from service.store.models import AdminSession, InboundEmail, InboundStatus, utcnow
from tests.conftest import (
    Blog,
    RunningServer,
    free_port,
    make_settings,
    reply_message,
    send,
    wait_for,
)
from tests.http_fixtures import (
    API_TOKEN,
    HttpClient,
    Reply,
    http,
    login,
    session_cookie,
    settings_overrides,
)
from tests.test_cli import env, run

__all__ = ["env", "http", "settings_overrides"]  # fixtures, imported so this module uses them

READER = "reader@example.org"


def admin_page(http: HttpClient, cookie: str) -> Reply:
    """GET the inbound log as a browser holding `cookie` (no bearer token)."""
    return http.get("/admin/inbound", auth=False, headers={"Cookie": cookie})


def opens(http: HttpClient, cookie: str) -> bool:
    """Whether the cookie opens the operator page (else the login form answers 401)."""
    reply = admin_page(http, cookie)
    assert reply.status in (200, 401), reply.status
    return reply.status == 200


def retryable_row(blog: Blog) -> int | None:
    """The id of the newest inbound row once it was rejected, else None."""
    with blog.parts.session_factory() as session:
        row = session.scalars(select(InboundEmail).order_by(InboundEmail.id.desc())).first()
        return row.id if row is not None and row.status == InboundStatus.REJECTED else None


def stored_message(blog: Blog, server: RunningServer) -> int:
    """Receive one reply over SMTP; its inbound id."""
    address = blog.address(blog.post(), READER)
    send(server.port, READER, [address], reply_message(READER, address, "Hello"))
    with blog.parts.session_factory() as session:
        return int(session.scalars(select(InboundEmail.id)).one())


class TestSessions:
    def test_login_opens_a_random_server_side_session(self, http: HttpClient, blog: Blog) -> None:
        """Each login gets its own random id; the table holds only its hash; the cookie is
        HttpOnly, SameSite=Strict, Secure (the base URL is https), for /admin, a week at most."""
        first, second = login(http), login(http)
        assert first.status == second.status == 303
        cookies = [session_cookie(first), session_cookie(second)]
        assert cookies[0] != cookies[1]
        header = first.headers["set-cookie"]
        for attribute in ("HttpOnly", "SameSite=strict", "Secure", "Path=/admin", "Max-Age=604800"):
            assert attribute in header
        assert all(opens(http, cookie) for cookie in cookies)
        with blog.parts.session_factory() as session:
            rows = session.scalars(select(AdminSession)).all()
        values = [cookie.split("=", 1)[1] for cookie in cookies]
        assert len(rows) == 2
        assert not {row.id_hash for row in rows} & set(values)
        assert not {row.csrf for row in rows} & set(values)

    def test_logout_ends_the_session_on_the_server(self, http: HttpClient) -> None:
        """After logout the same cookie, replayed, opens nothing; another session is untouched."""
        cookie, other = session_cookie(login(http)), session_cookie(login(http))
        assert opens(http, cookie)
        out = http.post("/admin/logout", auth=False, headers={"Cookie": cookie})
        assert out.status == 303 and out.headers["location"] == "/admin/login"
        assert 'replyd_admin=""' in out.headers["set-cookie"]
        assert not opens(http, cookie)
        assert opens(http, other)

    def test_idle_and_old_sessions_expire(self, http: HttpClient, blog: Blog) -> None:
        """A session idle 12 hours, or opened 7 days ago, no longer opens the pages; one used
        11 hours ago does, and counts as used again."""
        idle, old, recent = (session_cookie(login(http)) for _ in range(3))
        now = utcnow()
        with blog.parts.session_factory.begin() as session:
            ids = list(session.scalars(select(AdminSession.id).order_by(AdminSession.id)))
            session.execute(
                update(AdminSession)
                .where(AdminSession.id == ids[0])
                .values(last_seen_at=now - timedelta(hours=12, minutes=1))
            )
            session.execute(
                update(AdminSession)
                .where(AdminSession.id == ids[1])
                .values(created_at=now - timedelta(days=7, minutes=1))
            )
            session.execute(
                update(AdminSession)
                .where(AdminSession.id == ids[2])
                .values(last_seen_at=now - timedelta(hours=11))
            )
        assert not opens(http, idle)
        assert not opens(http, old)
        assert opens(http, recent)
        with blog.parts.session_factory() as session:
            seen = session.scalar(
                select(AdminSession.last_seen_at).where(AdminSession.id == ids[2])
            )
        assert seen is not None and seen > now - timedelta(minutes=1)
        login(http)  # a login clears out the expired sessions
        with blog.parts.session_factory() as session:
            assert set(session.scalars(select(AdminSession.id))) >= {ids[2]}
            assert not set(session.scalars(select(AdminSession.id))) & {ids[0], ids[1]}

    def test_a_new_api_token_ends_older_sessions(
        self, http: HttpClient, settings: Settings
    ) -> None:
        """The same database served with another REPLYD_API_TOKEN: sessions opened with the old
        token open nothing there."""
        cookie = session_cookie(login(http))
        rotated = make_settings(
            settings.var_dir,
            REPLYD_OUTBOUND=f"maildir://{settings.var_dir / 'outbox'}",
            REPLYD_API_TOKEN="another-token-0123456789",
            REPLYD_SMTP_PORT=str(free_port()),
        )
        other = RunningServer(rotated).start()
        try:
            there = HttpClient(f"http://127.0.0.1:{other.server.http_port}")
            assert not opens(there, cookie)
            assert opens(there, session_cookie(login(there, "another-token-0123456789")))
        finally:
            other.stop()

    def test_csrf_value_belongs_to_the_session(
        self, http: HttpClient, blog: Blog, server: RunningServer
    ) -> None:
        """Each session's forms carry a CSRF value of their own: a retry posted with another
        session's value is refused, with its own it goes through."""
        address = blog.address(blog.post(closed=True), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Too late"))
        row = wait_for(lambda: retryable_row(blog), what="the reply to be rejected")
        cookies = [session_cookie(login(http)) for _ in range(2)]
        values = [
            re.findall(r'name="csrf" value="([^"]+)"', admin_page(http, cookie).text)[0]
            for cookie in cookies
        ]
        assert values[0] != values[1]
        retry = f"/admin/inbound/{row}/retry"
        crossed = http.post(
            retry, data=f"csrf={values[1]}".encode(), auth=False, headers={"Cookie": cookies[0]}
        )
        assert crossed.status == 403
        own = http.post(
            retry, data=f"csrf={values[0]}".encode(), auth=False, headers={"Cookie": cookies[0]}
        )
        assert own.status == 303


class TestPlainHttpBaseUrl:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """A deployment whose base URL is plain http (a developer's machine)."""
        return {"REPLYD_API_TOKEN": API_TOKEN, "REPLYD_BASE_URL": "http://127.0.0.1:8025"}

    def test_cookie_is_not_secure_without_https(self, http: HttpClient) -> None:
        """Secure is set only when REPLYD_BASE_URL is https, so plain-http setups still log in."""
        opened = login(http)
        assert opened.status == 303
        assert "Secure" not in opened.headers["set-cookie"]
        assert opens(http, session_cookie(opened))


class TestLoginThrottle:
    def test_wrong_tokens_lock_out_that_client_only(self, http: HttpClient) -> None:
        """Five wrong tokens from one address: then even the right one gets 429 with
        Retry-After and a sentence; another address logs in."""
        attacker, operator = "203.0.113.7", "198.51.100.9"
        for _ in range(5):
            wrong = login(http, "not-the-token-000000", client=attacker)
            assert wrong.status == 401
        locked = login(http, client=attacker)
        assert locked.status == 429
        assert 0 < int(locked.headers["retry-after"]) <= 15 * 60
        assert "Too many wrong tokens from your address" in locked.text
        assert "set-cookie" not in locked.headers
        assert login(http, client=operator).status == 303

    def test_ipv6_neighbours_share_a_limit(self, http: HttpClient) -> None:
        """Addresses of one IPv6 /64 count as one client; another /64 does not."""
        for host in range(1, 6):
            assert login(http, "not-the-token-000000", client=f"2001:db8::{host}").status == 401
        assert login(http, client="2001:db8::99").status == 429
        assert login(http, client="2001:db8:1::1").status == 303


class TestWebLimitsOff:
    @pytest.fixture(params=["REPLYD_WEB_LIMITS", "REPLYD_RATE_LIMITS"])
    def settings_overrides(self, request: pytest.FixtureRequest) -> dict[str, str]:
        """Limits switched off by either setting."""
        return {"REPLYD_API_TOKEN": API_TOKEN, request.param: "off"}

    def test_off_lets_every_attempt_through(self, http: HttpClient) -> None:
        """With limits off, wrong tokens are refused one by one but never lock anyone out."""
        for _ in range(8):
            assert login(http, "not-the-token-000000").status == 401
        assert login(http).status == 303


class TestNoStore:
    def test_operator_and_private_answers_are_not_cached(
        self, http: HttpClient, blog: Blog, server: RunningServer
    ) -> None:
        """Admin pages, raw mail, the login form, unsubscribe pages and every answer to the
        token say Cache-Control: no-store; the public thread page does not."""
        row = stored_message(blog, server)
        cookie = session_cookie(login(http))
        answers = {
            "login form": http.get("/admin/login", auth=False),
            "admin page": admin_page(http, cookie),
            "raw mail": http.get(
                f"/admin/inbound/{row}/raw", auth=False, headers={"Cookie": cookie}
            ),
            "missing raw": http.get("/admin/inbound/424242/raw"),
            "unsubscribe": http.get("/unsubscribe/not-a-token", auth=False),
            "inbound API": http.get("/api/inbound"),
            "comments with token": http.get("/api/posts/hello/comments"),
        }
        for name, reply in answers.items():
            assert reply.headers.get("cache-control") == "no-store", name
        assert answers["raw mail"].status == 200 and "Hello" in answers["raw mail"].text
        public = http.get("/posts/hello", auth=False)
        assert public.status == 200 and public.headers.get("cache-control") is None


class TestIdsOutOfRange:
    @pytest.mark.parametrize(
        "raw_id",
        [
            "99999999999999999999999",
            "9223372036854775808",
            "0",
            "-1",
            "1e3",
            "%D9%A3",  # ARABIC-INDIC DIGIT THREE: a digit to str.isdigit, not to the database
            "9" * 5000,
        ],
    )
    def test_raw_and_retry_answer_404_with_a_sentence(self, http: HttpClient, raw_id: str) -> None:
        """An id no row can have is a 404 page that says so, never a 500."""
        raw = http.get(f"/admin/inbound/{raw_id}/raw")
        assert raw.status == 404, raw.text[:200]
        assert "No such message" in raw.text
        bearer = http.post(f"/admin/inbound/{raw_id}/retry", data=b"")
        assert bearer.status == 404 and "No such message" in bearer.text

    def test_largest_id_is_an_ordinary_missing_message(self, http: HttpClient) -> None:
        """The largest id the database holds is looked up and simply not found."""
        reply = http.get("/admin/inbound/9223372036854775807/raw")
        assert reply.status == 404 and "No such message" in reply.text

    def test_api_ids_out_of_range(self, http: HttpClient, blog: Blog) -> None:
        """A parent_id past the largest id is 404, a number of thousands of digits 400, a
        `before` cursor past the largest id 400: each with a sentence."""
        blog.post()
        huge = http.post(
            "/api/posts/hello/comments",
            json_body={"author_email": READER, "body": "x", "parent_id": 2**70},
        )
        assert huge.status == 404 and "has no comment" in huge.json()["error"]
        endless = http.post(
            "/api/posts/hello/comments",
            data=b'{"author_email": "reader@example.org", "body": "x", "parent_id": '
            + b"9" * 5000
            + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert endless.status == 400 and "too long" in endless.json()["error"]
        before = http.get("/api/inbound?before=99999999999999999999999")
        assert before.status == 400 and "between" in before.json()["error"]
        assert http.get("/admin/inbound?before=" + "9" * 5000).status == 400


class TestCliIdsOutOfRange:
    @pytest.mark.parametrize(
        "args",
        [
            ("inbound", "show", "99999999999999999999999"),
            ("inbound", "retry", "9223372036854775808"),
            ("inbound", "show", "0"),
            ("inbound", "list", "--limit", "99999999999999999999"),
            ("inbound", "purge", "--older-than", "99999999999"),
            ("address", "--post", "hello", "--email", READER, "--comment", "9" * 30),
        ],
    )
    def test_a_sentence_and_exit_2_never_a_traceback(
        self, env: dict[str, str], args: tuple[str, ...]
    ) -> None:
        """Ids and counts the database cannot hold are refused by the real CLI with the range."""
        result = run(env, *args, check=False)
        assert result.returncode == 2
        assert "give a whole number from" in result.stderr
        assert "Traceback" not in result.stderr
