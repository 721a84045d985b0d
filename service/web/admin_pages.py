"""The operator's pages: the inbound mail log with previews and retry buttons, and the login."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from service.inbound.queue import REPLAYABLE, requeue
from service.store.models import InboundEmail, InboundStatus
from service.web.admin_auth import admin_login_page, csrf_ok, form_fields, operator_of
from service.web.context import MAX_ROW_ID, WebContext, context_of
from service.web.inbound_log import (
    inbound_page,
    int_param,
    row_id_param,
    status_param,
)
from service.web.render import error_page, render

ADMIN_PAGE_SIZE = 25
NO_SUCH_ID = "No such message: ids are the whole numbers /admin/inbound lists."
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


async def admin_inbound(request: Request) -> Response:
    """GET /admin/inbound: recent inbound mail, what became of it, and retry buttons."""
    web = context_of(request)
    operator = await operator_of(request)
    if operator is None:
        return admin_login_page(web, 401)
    status = status_param(request)
    before = int_param(request, "before", None, 1, MAX_ROW_ID)
    views, next_before = await run_in_threadpool(load_inbound, web, status, before)
    next_url = None
    if next_before is not None:
        query = {"before": str(next_before), **({"status": status} if status else {})}
        next_url = f"/admin/inbound?{urlencode(query)}"
    return render(
        web,
        "inbound.html",
        rows=views,
        chosen=status,
        statuses=list(InboundStatus),
        next_url=next_url,
        csrf=operator.csrf or "",
    )


async def admin_raw(request: Request) -> Response:
    """GET /admin/inbound/{id}/raw: a message's source exactly as received, as text."""
    web = context_of(request)
    if await operator_of(request) is None:
        return admin_login_page(web, 401)
    row_id = row_id_param(request, "inbound_id")
    if row_id is None:
        return error_page(web, 404, NO_SUCH_ID)

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


async def admin_retry(request: Request) -> Response:
    """POST /admin/inbound/{id}/retry: put a failed (or rejected/ignored) message back in line."""
    web = context_of(request)
    operator = await operator_of(request)
    if operator is None:
        return admin_login_page(web, 401)
    fields = await form_fields(request)
    if not csrf_ok(operator, fields):
        return error_page(web, 403, "This form is stale or came from another site; reload it.")
    row_id = row_id_param(request, "inbound_id")
    if row_id is None:
        return error_page(web, 404, NO_SUCH_ID)

    def retry() -> int:
        with web.parts.session_factory.begin() as session:
            return requeue(session, [row_id])

    if await run_in_threadpool(retry) == 0:
        return error_page(web, 409, f"Message #{row_id} is not failed, rejected or ignored.")
    web.wake_inbound()
    return RedirectResponse(f"/admin/inbound#inbound-{row_id}", status_code=303)
