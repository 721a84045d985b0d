"""The Atom feed of a post's comments."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from service.store.models import Post
from service.web.context import context_of, post_slug
from service.web.public_pages import ShownComment, load_thread
from service.web.render import error_page

ATOM = "http://www.w3.org/2005/Atom"
ET.register_namespace("", ATOM)  # feeds use Atom as the default namespace, not "ns0:"
FEED_ENTRIES = 100


def _text(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
    element.text = text
    return element


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
    ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "self", "href": f"{page}/comments.atom"})
    ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "alternate", "href": page})
    ET.SubElement(feed, f"{{{ATOM}}}link", {"rel": "related", "href": post.url})
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
        ET.SubElement(
            entry, f"{{{ATOM}}}link", {"rel": "alternate", "href": f"{page}#comment-{comment.id}"}
        )
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
