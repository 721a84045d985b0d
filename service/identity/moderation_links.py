"""Make and read signed moderation links: one comment, one moderator, one action, an expiry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from service.identity.addresses import Keyring, sign, unsign

PURPOSE = "moderate"
LINK_LIFETIME = timedelta(days=30)


class LinkAction(IntEnum):
    """What a moderation link does when its page's button is pressed."""

    APPROVE = 1
    REMOVE = 2  # hides the comment: kept, and restorable from the CLI, API or admin page

    @property
    def word(self) -> str:
        """The action's name in URLs, pages and the moderation log."""
        return self.name.lower()


@dataclass(frozen=True)
class ModerationClaim:
    """What a verified moderation link names; `expires` in seconds since the epoch (UTC)."""

    comment_id: int
    person_id: int
    action: LinkAction
    expires: int

    def expired(self, now: datetime) -> bool:
        """Whether the link's time is up at `now`."""
        return now.timestamp() >= self.expires


def make_moderation_token(
    comment_id: int, person_id: int, action: LinkAction, now: datetime, keyring: Keyring
) -> str:
    """A token letting `person_id` do `action` to `comment_id` until LINK_LIFETIME from `now`."""
    expires = int((now + LINK_LIFETIME).timestamp())
    return sign((comment_id, person_id, int(action), expires), keyring, PURPOSE)


def read_moderation_token(token: str, keyring: Keyring) -> ModerationClaim | None:
    """The claim a moderation token carries, or None when it is malformed, forged or foreign
    (an expired one is returned: its page says so, rather than calling it invalid)."""
    if len(token) > 200:
        return None
    values = unsign(token, keyring, PURPOSE, 4)
    if values is None:
        return None
    comment_id, person_id, action, expires = values
    if not comment_id or not person_id or action not in set(LinkAction):
        return None
    return ModerationClaim(comment_id, person_id, LinkAction(action), expires)


def moderation_url(base_url: str, token: str) -> str:
    """The address of a moderation link's confirmation page."""
    return f"{base_url}/moderate/{token}"


def strip_moderation_links(text: str, base_url: str) -> str:
    """`text` without any of our moderation links: a reply quoting a moderator's notification
    must not publish the link that removes a comment."""
    if "/moderate/" not in text:
        return text
    pattern = re.escape(base_url) + r"/moderate/[A-Za-z2-7]+"
    return re.sub(pattern, "[link removed]", text)
