"""The blog side's embed: /embed.js and /embed.css for the blog's own page, and the thread as a
page for an iframe (framable only by REPLYD_EMBED_ORIGINS)."""

from __future__ import annotations

import functools

from starlette.requests import Request
from starlette.responses import Response

from service.resources import templates_dir
from service.web.context import post_slug
from service.web.public_pages import thread_page

# Blogs load these from their pages: cached an hour, and loadable from any site.
_ASSET_HEADERS = {
    "cache-control": "public, max-age=3600",
    "cross-origin-resource-policy": "cross-origin",
}


@functools.cache
def _asset(name: str) -> bytes:
    """A file of templates/web/ as served, read once."""
    return (templates_dir() / "web" / name).read_bytes()


async def embed_script(request: Request) -> Response:
    """GET /embed.js: renders the thread into <div id="replyd-thread" data-post="ID">."""
    return Response(
        _asset("embed.js"), media_type="text/javascript; charset=utf-8", headers=_ASSET_HEADERS
    )


async def embed_style(request: Request) -> Response:
    """GET /embed.css: the embed's default look, every colour and size a custom property."""
    return Response(
        _asset("embed.css"), media_type="text/css; charset=utf-8", headers=_ASSET_HEADERS
    )


async def embed_page(request: Request) -> Response:
    """GET /posts/{id}/embed: the thread and its forms as a page for the blog's iframe."""
    return await thread_page(request, post_slug(request.path_params["post_id"]), embedded=True)
