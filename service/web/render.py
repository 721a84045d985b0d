"""HTML for the pages: templates from templates/web/, error pages, comment text with links."""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape
from starlette.responses import HTMLResponse

from service.web.context import WebContext

_URL = re.compile(r"\bhttps?://[^\s<>\"'`]+", re.I)
_URL_TRAILING = ".,;:!?)]}'\""


def linkify(text: str) -> Markup:
    """Plain text as HTML: everything escaped, http(s) URLs turned into nofollow links."""
    out: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        url = match.group(0)
        trimmed = url.rstrip(_URL_TRAILING)
        # Keep a closing parenthesis that belongs to the URL (Wikipedia links).
        while (
            trimmed != url and url[len(trimmed)] == ")" and trimmed.count("(") > trimmed.count(")")
        ):
            trimmed = url[: len(trimmed) + 1]
        out.append(str(escape(text[last : match.start()])))
        out.append(
            f'<a href="{escape(trimmed)}" rel="nofollow ugc noopener noreferrer">'
            f"{escape(trimmed)}</a>"
        )
        last = match.start() + len(trimmed)
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def render(web: WebContext, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page from templates/web/, autoescaped."""
    template = web.templates.get_template(name)
    html = template.render(site_name=web.parts.settings.site_name, **context)
    return HTMLResponse(html, status_code=status)


def error_page(web: WebContext, status: int, message: str) -> HTMLResponse:
    """An HTML error page saying what went wrong."""
    return render(web, "error.html", status, title="Not available", message=message)
