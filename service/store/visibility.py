"""What of a thread anyone but a moderator may see: published comments, and placeholders.

Every reader of comments outside moderation (pages, feed, public API, digests, notifications,
who follows a thread) goes through `PUBLISHED` or `shown_comments`, so a held, hidden or
deleted comment reaches nobody (invariant 9).
"""

from __future__ import annotations

from collections.abc import Iterable

from service.store.models import Comment, CommentStatus

# The SQL condition for "anyone may see this comment".
PUBLISHED = Comment.status == CommentStatus.PUBLISHED


def is_published(comment: Comment) -> bool:
    """Whether anyone may see this comment."""
    return comment.status == CommentStatus.PUBLISHED


def shown_comments(comments: Iterable[Comment]) -> tuple[list[Comment], frozenset[int]]:
    """The comments of a thread to show, and which of them stand only as a "comment removed"
    placeholder: a comment that is not published is kept as one when a published answer hangs
    under it (so the answers keep their place); otherwise it is left out."""
    comments = list(comments)
    by_id = {c.id: c for c in comments}
    shown: set[int] = set()
    for comment in comments:
        if not is_published(comment):
            continue
        cursor: Comment | None = comment
        # Up the chain until a comment already shown: its ancestors are shown too.
        while cursor is not None and cursor.id not in shown:
            shown.add(cursor.id)
            cursor = by_id.get(cursor.parent_id) if cursor.parent_id is not None else None
    placeholders = frozenset(i for i in shown if not is_published(by_id[i]))
    return [c for c in comments if c.id in shown], placeholders
