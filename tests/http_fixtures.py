"""Fixtures for the HTTP tests: a running replyd with an API token, and a small urllib client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any

import pytest

from tests.conftest import RunningServer

API_TOKEN = "test-api-token-0123456789"


@dataclass
class Reply:
    """One HTTP response: status, headers and body."""

    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report redirects instead of following them, so tests see the 303 itself."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class HttpClient:
    """Talks to the running server over real HTTP on 127.0.0.1."""

    base: str
    token: str | None = API_TOKEN

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        auth: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Send one request; non-2xx answers are returned, not raised."""
        sent = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        if auth and self.token:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=10) as response:
                return Reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, error.headers, error.read())

    def get(self, path: str, **options: Any) -> Reply:
        """GET a path."""
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> Reply:
        """POST to a path."""
        return self.request("POST", path, **options)


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """HTTP tests run with an API token set."""
    return {"REPLYD_API_TOKEN": API_TOKEN}


@pytest.fixture
def http(server: RunningServer) -> HttpClient:
    """A client for the running server's HTTP port."""
    return HttpClient(f"http://127.0.0.1:{server.server.http_port}")


def login(http: HttpClient, token: str = API_TOKEN, client: str | None = None) -> Reply:
    """POST the operator login form (from `client`, as a proxy on 127.0.0.1 names it)."""
    headers = {"X-Forwarded-For": client} if client else {}
    return http.post("/admin/login", data=f"token={token}".encode(), auth=False, headers=headers)


def session_cookie(reply: Reply) -> str:
    """The `name=value` a browser sends back for a login's Set-Cookie."""
    return reply.headers["set-cookie"].split(";", 1)[0]
