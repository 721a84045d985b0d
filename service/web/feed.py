"""The Atom feed of a post's comments."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from service.store.models import Post
from service.store.posts import is_http_url
from service.web.context import context_of, post_slug
from service.web.public_pages import ShownComment, load_thread
from service.web.render import error_page

ATOM = "http://www.w3.org/2005/Atom"
ET.register_namespace("", ATOM)  # feeds use Atom as the default namespace, not "ns0:"
FEED_ENTRIES = 100
# Characters XML 1.0 cannot carry at all, not even as references: C0 controls but tab, LF and
# CR, surrogates, U+FFFE and U+FFFF. DEL and C1 controls are legal XML but only ever noise.
_NOT_XML = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """Text fit for an XML document: characters XML cannot carry (and DEL, C1) left out.

    The ways in already refuse or strip control characters; this is the last line, so one
    stored row from elsewhere can never make every reader's feed unparseable.
    """
    return _NOT_XML.sub("", text)


def _text(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(
        parent, f"{{{ATOM}}}{tag}", {k: xml_text(v) for k, v in attributes.items()}
    )
    element.text = xml_text(text)
    return element


def _link(parent: ET.Element, rel: str, href: str) -> None:
    ET.SubElement(parent, f"{{{ATOM}}}link", {"rel": rel, "href": xml_text(href)})


def atom_feed(base_url: str, post: Post, comments: list[ShownComment]) -> bytes:
    """The Atom (RFC 4287) feed of a post's comments, newest first."""
    page = f"{base_url}/posts/{quote(post.slug, safe='')}"
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "id", f"{page}/comments.atom")
    _text(feed, "title", f"Comments on {post.title}")
    published = [c for c in comments if not c.removed]  # a placeholder is no entry
    newest = sorted(published, key=lambda c: c.id, reverse=True)[:FEED_ENTRIES]
    updated = newest[0].created_at if newest else post.created_at
    _text(feed, "updated", updated.isoformat())
    _link(feed, "self", f"{page}/comments.atom")
    _link(feed, "alternate", page)
    if is_http_url(post.url):  # a post saved before URLs were checked may hold javascript:
        _link(feed, "related", post.url)
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    _text(author, "name", post.title)
    for comment in newest:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(entry, "id", f"{page}#comment-{comment.id}")
        _text(entry, "title", f"Comment by {comment.author_name}")
        _text(entry, "updated", comment.created_at.isoformat())
        _text(entry, "published", comment.created_at.isoformat())
        entry_author = ET.SubElement(entry, f"{{{ATOM}}}author")
        _text(entry_author, "name", comment.author_name)
        _link(entry, "alternate", f"{page}#comment-{comment.id}")
        _text(entry, "content", comment.body, type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


async def comments_feed(request: Request) -> Response:
    """GET /posts/{id}/comments.atom: the comment feed readers subscribe to."""
    web = context_of(request)
    slug = post_slug(request.path_params["post_id"])
    loaded = await run_in_threadpool(load_thread, web, slug)
    if loaded is None:
        return error_page(web, 404, "There is no post with this id.")
    post, comments = loaded
    body = atom_feed(web.parts.settings.base_url, post, comments)
    return Response(body, media_type="application/atom+xml; charset=utf-8")
