"""The operator's pages: the inbound mail log with previews and retry buttons, and the login."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlencode

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from service.inbound.queue import REPLAYABLE, requeue
from service.store.models import InboundEmail, InboundStatus
from service.web.context import (
    ADMIN_COOKIE,
    MAX_FORM_BYTES,
    WebContext,
    admin_session_value,
    context_of,
    csrf_value,
    is_authorized,
    read_limited,
    token_matches,
)
from service.web.inbound_log import inbound_page, int_param, status_param
from service.web.render import error_page, render

ADMIN_PAGE_SIZE = 25
# Extraction of a huge message can take seconds; the page previews only ordinary ones.
PREVIEW_MAX_BYTES = 512 * 1024


@dataclass(frozen=True)
class InboundView:
    """One inbound message as the operator page shows it."""

    id: int
    received_at: datetime
    sender: str
    recipient: str
    status: str
    reason: str | None
    retryable: bool
    subject: str
    preview: str
    elided: str


def extraction_preview(raw: bytes, quotes_only: bool) -> tuple[str, str, str]:
    """Subject, reply and cut text as the pipeline would extract them from `raw`."""
    if len(raw) > PREVIEW_MAX_BYTES:
        return "", f"(not previewed: the message is {len(raw)} bytes)", ""
    # Imported here: talon costs about a second at import, and only this page needs it.
    from service.extraction.extract import extract_reply
    from service.inbound.parse import parse_message

    try:
        message = parse_message(raw)
        extraction = extract_reply(message.text, message.html, quotes_only=quotes_only)
    except Exception as exc:  # a preview must not take the page down with it
        return "", f"(extraction failed: {type(exc).__name__})", ""
    return message.subject, extraction.reply.strip(), extraction.elided


def load_inbound(
    web: WebContext, status: str | None, before: int | None
) -> tuple[list[InboundView], int | None]:
    """A page of inbound messages with their extraction previews."""
    quotes_only = web.parts.settings.quotes_only
    with web.read_sessions() as session:
        rows, next_before = inbound_page(session, status, before, ADMIN_PAGE_SIZE)
        views = []
        for row in rows:
            subject, preview, elided = extraction_preview(row.raw, quotes_only)
            views.append(
                InboundView(
                    id=row.id,
                    received_at=row.received_at,
                    sender=row.sender,
                    recipient=row.recipient,
                    status=row.status,
                    reason=row.reason,
                    retryable=row.status in REPLAYABLE,
                    subject=subject,
                    preview=preview,
                    elided=elided,
                )
            )
    return views, next_before


def admin_login_page(web: WebContext, status: int, message: str = "") -> HTMLResponse:
    """The token form the operator page shows to a browser without the admin cookie."""
    if web.api_token is None:
        message = "The operator pages are disabled: set REPLYD_API_TOKEN and restart replyd."
        status = 503
    return render(web, "login.html", status, message=message)


async def admin_inbound(request: Request) -> Response:
    """GET /admin/inbound: recent inbound mail, what became of it, and retry buttons."""
    web = context_of(request)
    if not is_authorized(request, allow_cookie=True):
        return admin_login_page(web, 401)
    status = status_param(request)
    before = int_param(request, "before", None, 1, 2**63 - 1)
    views, next_before = await run_in_threadpool(load_inbound, web, status, before)
    next_url = None
    if next_before is not None:
        query = {"before": str(next_before), **({"status": status} if status else {})}
        next_url = f"/admin/inbound?{urlencode(query)}"
    assert web.api_token is not None
    return render(
        web,
        "inbound.html",
        rows=views,
        chosen=status,
        statuses=list(InboundStatus),
        next_url=next_url,
        csrf=csrf_value(web.api_token),
    )


async def admin_raw(request: Request) -> Response:
    """GET /admin/inbound/{id}/raw: a message's source exactly as received, as text."""
    web = context_of(request)
    if not is_authorized(request, allow_cookie=True):
        return admin_login_page(web, 401)
    row_id: int = request.path_params["inbound_id"]

    def load() -> bytes | None:
        with web.read_sessions() as session:
            return session.scalar(select(InboundEmail.raw).where(InboundEmail.id == row_id))

    raw = await run_in_threadpool(load)
    if raw is None:
        return error_page(web, 404, "No such message.")
    # Shown, never interpreted: text/plain with nosniff, whatever the message contains.
    return PlainTextResponse(
        raw.decode("utf-8", "replace"), headers={"Content-Disposition": "inline"}
    )


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form body (small), first value of each field."""
    body = await read_limited(request, MAX_FORM_BYTES)
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


async def admin_retry(request: Request) -> Response:
    """POST /admin/inbound/{id}/retry: put a failed (or rejected/ignored) message back in line."""
    web = context_of(request)
    if not is_authorized(request, allow_cookie=True):
        return admin_login_page(web, 401)
    assert web.api_token is not None
    fields = await form_fields(request)
    if not token_matches(fields.get("csrf"), csrf_value(web.api_token)):
        return error_page(web, 403, "This form is stale or came from another site; reload it.")
    row_id: int = request.path_params["inbound_id"]

    def retry() -> int:
        with web.parts.session_factory.begin() as session:
            return requeue(session, [row_id])

    if await run_in_threadpool(retry) == 0:
        return error_page(web, 409, f"Message #{row_id} is not failed, rejected or ignored.")
    web.wake_inbound()
    return RedirectResponse(f"/admin/inbound#inbound-{row_id}", status_code=303)


async def admin_login(request: Request) -> Response:
    """GET shows the token form; POST checks the token and sets the admin cookie."""
    web = context_of(request)
    if request.method == "GET":
        return admin_login_page(web, 200)
    if web.api_token is None:
        return admin_login_page(web, 503)
    fields = await form_fields(request)
    if not token_matches(fields.get("token", "").strip(), web.api_token):
        return admin_login_page(web, 401, "That is not the API token.")
    response = RedirectResponse("/admin/inbound", status_code=303)
    response.set_cookie(
        ADMIN_COOKIE,
        admin_session_value(web.api_token),
        max_age=12 * 3600,
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def admin_logout(request: Request) -> Response:
    """POST /admin/logout: forget the admin cookie."""
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(ADMIN_COOKIE, path="/admin")
    return response
