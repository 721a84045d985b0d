"""The pages of mailed moderation links: GET asks to confirm (scanners fetch links), POST acts."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from service.identity.moderation_links import LinkAction
from service.moderation.actions import Change, ModerationError
from service.moderation.links import LinkState, LinkTarget, find_link, use_link
from service.store.models import utcnow
from service.web.context import WebContext, context_of
from service.web.render import error_page, render

NOT_VALID = "This moderation link is not valid (or no longer is)."


def _find(web: WebContext, token: str) -> LinkTarget | None:
    settings = web.parts.settings
    with web.read_sessions() as session:
        return find_link(session, token, web.parts.keyring, settings.moderators, utcnow())


def _refusal(web: WebContext, target: LinkTarget) -> Response | None:
    """The page for a link that may not act (any more), None for one that may."""
    if target.state is LinkState.USED:
        return error_page(
            web,
            410,
            f"This link was used already; comment #{target.comment_id} is "
            f"{target.comment_status} now. Each link works once.",
        )
    if target.state is LinkState.EXPIRED:
        return error_page(
            web,
            410,
            f"This link has expired. Moderate comment #{target.comment_id} on the admin page "
            f"(/admin/comments) or with `replyd comment`.",
        )
    return None


async def moderation_page(request: Request) -> Response:
    """GET /moderate/{token}: the comment and a button to confirm the link's action."""
    web = context_of(request)
    target = await run_in_threadpool(_find, web, request.path_params["token"])
    if target is None:
        return error_page(web, 404, NOT_VALID)
    refusal = _refusal(web, target)
    if refusal is not None:
        return refusal
    return render(
        web,
        "moderate.html",
        target=target,
        approve=target.claim.action is LinkAction.APPROVE,
        done=None,
        trust=web.parts.settings.moderation == "new",
    )


def _act(web: WebContext, token: str) -> tuple[LinkTarget | None, Change | None]:
    """Check the link again in the writing transaction and do what it says once."""
    settings = web.parts.settings
    with web.parts.session_factory.begin() as session:
        target = find_link(session, token, web.parts.keyring, settings.moderators, utcnow())
        if target is None or target.state is not LinkState.READY:
            return target, None
        return target, use_link(session, web.moderation, target)


async def moderation_act(request: Request) -> Response:
    """POST /moderate/{token}: approve or remove the comment, once."""
    web = context_of(request)
    token = request.path_params["token"]
    try:
        target, change = await run_in_threadpool(_act, web, token)
    except IntegrityError:
        # Another request used this link between our check and our write.
        target, change = await run_in_threadpool(_find, web, token), None
    except ModerationError:
        target, change = None, None
    if target is None:
        return error_page(web, 404, NOT_VALID)
    if change is None:
        refusal = _refusal(web, target)
        return refusal or error_page(web, 404, NOT_VALID)
    if change.notified:
        web.wake_outbound()
    return render(
        web,
        "moderate.html",
        target=target,
        approve=target.claim.action is LinkAction.APPROVE,
        done=change,
        trust=web.parts.settings.moderation == "new",
    )
