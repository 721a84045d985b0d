"""Mailed moderation links: what one names, whether it may still act, and acting once."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.identity.addresses import Keyring
from service.identity.moderation_links import LinkAction, ModerationClaim, read_moderation_token
from service.moderation.actions import Change, Moderation
from service.moderation.log import Actor
from service.store.models import Comment, CommentStatus, Person, UsedModerationLink


class LinkState(StrEnum):
    """Whether a moderation link may act now."""

    READY = "ready"
    USED = "used"  # it did its work once already
    EXPIRED = "expired"


@dataclass(frozen=True)
class LinkTarget:
    """A verified moderation link and what it acts on, as its confirmation page shows it."""

    claim: ModerationClaim
    state: LinkState
    moderator: str  # the moderator's address: the page is theirs alone
    comment_id: int
    comment_status: str
    author_name: str
    body: str
    post_title: str
    post_url: str


def _used(session: Session, claim: ModerationClaim) -> bool:
    return (
        session.scalar(
            select(UsedModerationLink.id).where(
                UsedModerationLink.comment_id == claim.comment_id,
                UsedModerationLink.person_id == claim.person_id,
                UsedModerationLink.action == claim.action.word,
                UsedModerationLink.expires == claim.expires,
            )
        )
        is not None
    )


def find_link(
    session: Session,
    token: str,
    keyring: Keyring,
    moderators: Collection[str],
    now: datetime,
) -> LinkTarget | None:
    """What a link names, or None when it is forged, malformed, for a comment deleted since,
    or from someone who no longer moderates the comment's post."""
    claim = read_moderation_token(token, keyring)
    if claim is None:
        return None
    comment = session.get(Comment, claim.comment_id)
    person = session.get(Person, claim.person_id)
    if comment is None or person is None or comment.status == CommentStatus.DELETED:
        return None
    post = comment.post
    # Bound to the moderator: the link dies with their right to moderate the post.
    if person.id != post.author_id and person.email not in moderators:
        return None
    if _used(session, claim):
        state = LinkState.USED
    elif claim.expired(now):
        state = LinkState.EXPIRED
    else:
        state = LinkState.READY
    return LinkTarget(
        claim=claim,
        state=state,
        moderator=person.email,
        comment_id=comment.id,
        comment_status=comment.status,
        author_name=comment.author.display_name or "A reader",
        body=comment.body,
        post_title=post.title,
        post_url=post.url,
    )


def use_link(session: Session, moderation: Moderation, target: LinkTarget) -> Change:
    """Do what a ready link says, and mark it used, in the caller's transaction (a second
    use racing this one fails on the used link's unique key)."""
    assert target.state is LinkState.READY
    claim = target.claim
    session.add(
        UsedModerationLink(
            comment_id=claim.comment_id,
            person_id=claim.person_id,
            action=claim.action.word,
            expires=claim.expires,
        )
    )
    session.flush()
    actor = Actor(target.moderator, "mail")
    if claim.action is LinkAction.APPROVE:
        return moderation.approve(session, claim.comment_id, actor)
    return moderation.hide(session, claim.comment_id, actor)
