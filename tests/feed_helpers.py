"""A blog's feed served over real HTTP on 127.0.0.1: a WordPress-like RSS 2.0 feed and an
Atom feed, answering conditional GETs as a web server does, and recording every request."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

BLOG = "https://blog.example.org"


@dataclass
class Entry:
    """One post as the blog lists it in its feed."""

    guid: str
    title: str  # as it goes into the XML, already escaped as the blog escapes it
    link: str
    creator: str = "Ann Author"
    email: str | None = None  # Atom's <author><email>


def rss(entries: list[Entry]) -> bytes:
    """A feed as WordPress writes it: dc:creator names only, guid isPermaLink=false on
    ?p= ids, content:encoded in CDATA, an XML declaration in UTF-8."""
    items = "".join(
        f"""
	<item>
		<title>{entry.title}</title>
		<link>{escape(entry.link)}</link>
		<comments>{escape(entry.link)}#respond</comments>
		<dc:creator><![CDATA[{entry.creator}]]></dc:creator>
		<pubDate>Thu, 03 Dec 2026 09:15:00 +0000</pubDate>
		<category><![CDATA[Allgemein]]></category>
		<guid isPermaLink="{"false" if "?p=" in entry.guid else "true"}">{escape(entry.guid)}</guid>
		<description><![CDATA[A short summary with <b>markup</b> &#8230;]]></description>
		<content:encoded><![CDATA[<p>Mehr: <a href="/x">hier</a>, Ümläute</p>]]></content:encoded>
		<wfw:commentRss>{escape(entry.link)}feed/</wfw:commentRss>
		<slash:comments>3</slash:comments>
	</item>"""
        for entry in entries
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"
	xmlns:content="http://purl.org/rss/1.0/modules/content/"
	xmlns:wfw="http://wellformedweb.org/CommentAPI/"
	xmlns:dc="http://purl.org/dc/elements/1.1/"
	xmlns:atom="http://www.w3.org/2005/Atom"
	xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"
	xmlns:slash="http://purl.org/rss/1.0/modules/slash/"
	>
<channel>
	<title>Ann&#039;s Blog</title>
	<atom:link href="{BLOG}/feed/" rel="self" type="application/rss+xml" />
	<link>{BLOG}</link>
	<description>Notes from the garden</description>
	<lastBuildDate>Thu, 03 Dec 2026 09:15:00 +0000</lastBuildDate>
	<language>de-DE</language>
	<sy:updatePeriod>hourly</sy:updatePeriod>
	<sy:updateFrequency>1</sy:updateFrequency>
	<generator>https://wordpress.org/?v=6.7.1</generator>{items}
</channel>
</rss>
""".encode()


def atom(entries: list[Entry]) -> bytes:
    """An Atom 1.0 feed: urn:uuid ids, rel=alternate links, authors with addresses, an HTML
    title among them."""
    items = "".join(
        f"""
  <entry>
    <title type="{"html" if "&lt;" in entry.title else "text"}">{entry.title}</title>
    <link rel="alternate" type="text/html" href="{escape(entry.link)}"/>
    <link rel="replies" type="text/html" href="{escape(entry.link)}#comments"/>
    <id>{escape(entry.guid)}</id>
    <published>2026-12-02T08:00:00Z</published>
    <updated>2026-12-03T10:30:00Z</updated>
    <author>
      <name>{escape(entry.creator)}</name>
      {f"<email>{entry.email}</email>" if entry.email else ""}
    </author>
    <summary type="html">&lt;p&gt;Summary&lt;/p&gt;</summary>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Body</p></div></content>
  </entry>"""
        for entry in entries
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title>Bob's Notes</title>
  <subtitle>Things Bob writes</subtitle>
  <link rel="alternate" type="text/html" href="{BLOG}/"/>
  <link rel="self" type="application/atom+xml" href="{BLOG}/atom.xml"/>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2026-12-03T10:30:00Z</updated>
  <generator uri="https://gohugo.io/" version="0.139.0">Hugo</generator>{items}
</feed>
""".encode()


@dataclass
class Served:
    """One request the feed server answered: its conditional headers and the status sent."""

    if_none_match: str | None
    if_modified_since: str | None
    status: int


@dataclass
class FeedServer:
    """Serves `body` at /feed with an ETag and Last-Modified; answers 304 to a request whose
    validators match (as Apache and nginx do), 200 with the body otherwise."""

    body: bytes = b""
    content_type: str = "application/rss+xml; charset=UTF-8"
    etag: str = '"v1"'
    last_modified: str = "Thu, 03 Dec 2026 09:15:00 GMT"
    send_length: bool = True
    requests: list[Served] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/feed"

    def publish(self, body: bytes, version: str) -> None:
        """A new version of the feed: new body, new validators."""
        self.body, self.etag = body, f'"{version}"'
        self.last_modified = f"Fri, 04 Dec 2026 {len(self.requests) % 24:02d}:00:00 GMT"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                match = self.headers.get("If-None-Match")
                since = self.headers.get("If-Modified-Since")
                fresh = (match is not None and match == feed.etag) or (
                    match is None and since is not None and since == feed.last_modified
                )
                feed.requests.append(Served(match, since, 304 if fresh else 200))
                if fresh:
                    self.send_response(304)
                    self.send_header("ETag", feed.etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", feed.content_type)
                self.send_header("ETag", feed.etag)
                self.send_header("Last-Modified", feed.last_modified)
                if feed.send_length:
                    self.send_header("Content-Length", str(len(feed.body)))
                else:
                    self.close_connection = True
                self.end_headers()
                # A client may stop reading (a feed too large for it).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(feed.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def serve_feed(feed: FeedServer) -> Iterator[FeedServer]:
    """Run the feed's HTTP server on a free port of 127.0.0.1 while the caller needs it."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), feed.handler())
    httpd.daemon_threads = True
    feed.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield feed
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
