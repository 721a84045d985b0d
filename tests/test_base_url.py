"""Links in mail lead to replyd's own HTTP server when REPLYD_BASE_URL is not set."""

from __future__ import annotations

import urllib.request

import pytest

from tests.conftest import Blog, RunningServer, SinkHandler, free_port, reply_message, send
from tests.test_reply_flow import delivered

READER = "reader@example.org"
AUTHOR = "author@example.org"


class TestDefaultBaseUrl:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        """The HTTP server on every interface at a port of its own, and no REPLYD_BASE_URL."""
        return {
            "REPLYD_BASE_URL": "",
            "REPLYD_HTTP_HOST": "0.0.0.0",
            "REPLYD_HTTP_PORT": str(free_port()),
        }

    def test_unsubscribe_link_opens_on_the_configured_port(
        self, server: RunningServer, blog: Blog, sink: tuple[SinkHandler, int]
    ) -> None:
        """A notification's unsubscribe link names localhost and REPLYD_HTTP_PORT, and the
        running server answers it with the confirmation page."""
        port = server.settings.http_port
        assert port and server.server.http_port == port
        address = blog.address(blog.post(), READER)
        send(server.port, READER, [address], reply_message(READER, address, "Hello"))
        [mail] = delivered(sink, AUTHOR)
        link = str(mail["List-Unsubscribe"]).split("<", 1)[1].split(">", 1)[0]
        assert link.startswith(f"http://localhost:{port}/unsubscribe/")
        with urllib.request.urlopen(link, timeout=10) as response:
            page = response.read().decode()
        assert response.status == 200
        assert "Stop mail about this post?" in page
