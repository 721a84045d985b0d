"""Self-service erasure pages: ask by the footer link, confirm by the link mailed back, erase."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from service.identity.forget_links import CONFIRM_DAYS, confirming_person, requesting_person
from service.outbound.erasure_mail import ALREADY_MAILED, MAILED
from service.store.erasure import COMMENT_CHOICES, KEEP_ANONYMOUS
from service.store.models import Person, utcnow
from service.web.admin_auth import form_fields
from service.web.api_people import erase
from service.web.context import WebContext, context_of
from service.web.public_pages import mask_email
from service.web.render import error_page, render

INVALID = "This link is not valid (or no longer is)."


@dataclass(frozen=True)
class Requester:
    """Whom a link names, as the pages show them (masked), and whether they are still known."""

    person_id: int
    email: str  # masked
    forgotten: bool


def _person(web: WebContext, person_id: int | None) -> tuple[Requester | None, str | None]:
    """The person a token named, and their address (None when the token named nobody)."""
    if person_id is None:
        return None, None
    with web.read_sessions() as session:
        person = session.get(Person, person_id)
        if person is None:
            return None, None
        if person.erased_at is not None:
            return Requester(person_id, "", True), None
        return Requester(person_id, mask_email(person.email), False), person.email


async def request_page(request: Request) -> Response:
    """GET /forget/{token}: the footer link; explains, and offers to mail a confirmation link
    (mail scanners follow GET links, so nothing happens here)."""
    web = context_of(request)
    person_id = requesting_person(request.path_params["token"], web.parts.keyring)
    who, _ = await run_in_threadpool(_person, web, person_id)
    if who is None:
        return error_page(web, 404, INVALID)
    return render(
        web,
        "forget.html",
        step="forgotten" if who.forgotten else "ask",
        who=who,
        retention_days=web.parts.settings.retention_days,
    )


async def request_mail(request: Request) -> Response:
    """POST /forget/{token}: mail the confirmation link to the person's own address."""
    web = context_of(request)
    person_id = requesting_person(request.path_params["token"], web.parts.keyring)
    if person_id is None:
        return error_page(web, 404, INVALID)

    def queue() -> tuple[Requester | None, str]:
        with web.parts.session_factory.begin() as session:
            person = session.get(Person, person_id)
            if person is None:
                return None, ""
            if person.erased_at is not None:
                return Requester(person_id, "", True), ""
            who = Requester(person_id, mask_email(person.email), False)
            return who, web.parts.erasure_mail().queue_confirmation(session, person)

    who, done = await run_in_threadpool(queue)
    if who is None:
        return error_page(web, 404, INVALID)
    if who.forgotten:
        return render(web, "forget.html", step="forgotten", who=who)
    if done == MAILED:
        web.wake_outbound()
    step = "mailed" if done in (MAILED, ALREADY_MAILED) else "not_mailed"
    return render(
        web, "forget.html", step=step, who=who, again=done == ALREADY_MAILED, days=CONFIRM_DAYS
    )


async def confirm_page(request: Request) -> Response:
    """GET /forget/confirm/{token}: the mailed link; asks what becomes of the comments and
    erases only on the button (POST), never on a GET a scanner may make."""
    web = context_of(request)
    person_id = confirming_person(request.path_params["token"], web.parts.keyring, utcnow().date())
    who, _ = await run_in_threadpool(_person, web, person_id)
    if who is None:
        return error_page(web, 404, INVALID + " A confirmation link works for a week.")
    return render(web, "forget.html", step="forgotten" if who.forgotten else "confirm", who=who)


async def confirm_erase(request: Request) -> Response:
    """POST /forget/confirm/{token}: erase everything about the person, as they chose."""
    web = context_of(request)
    person_id = confirming_person(request.path_params["token"], web.parts.keyring, utcnow().date())
    fields = await form_fields(request)
    comments = fields.get("comments", KEEP_ANONYMOUS)
    if comments not in COMMENT_CHOICES:
        return error_page(web, 400, "Choose whether your comments stay without your name or go.")
    who, email = await run_in_threadpool(_person, web, person_id)
    if who is None:
        return error_page(web, 404, INVALID + " A confirmation link works for a week.")
    if who.forgotten or email is None:
        return render(web, "forget.html", step="forgotten", who=who)
    await run_in_threadpool(erase, web, email, comments)
    return render(web, "forget.html", step="done", who=who, deleted=comments != KEEP_ANONYMOUS)
