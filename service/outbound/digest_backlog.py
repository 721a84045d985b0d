"""The digest backlog: approved comments owed to digest takers whatever their watermark."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, exists, insert, literal, or_, select
from sqlalchemy.orm import Session

from service.store.models import Comment, DigestBacklog, Subscription
from service.store.visibility import is_published


def owe_to_digest_takers(session: Session, comment: Comment) -> None:
    """Record, in the approving transaction, that every active digest subscription of the
    comment's post (but its writer's) owes them this comment.

    Regardless of the watermark: a digest run may have moved it past the comment's id while
    the comment was held, and the range of a later run would then never hold it. When the
    watermark is still below the id, the range and the backlog both find it and the run
    sends it once (it dedupes by id).
    """
    owed = select(Subscription.id, literal(comment.id)).where(
        Subscription.post_id == comment.post_id,
        Subscription.active.is_(True),
        Subscription.digest.is_not(None),
        Subscription.person_id != comment.author_id,
        ~exists().where(
            DigestBacklog.subscription_id == Subscription.id,
            DigestBacklog.comment_id == comment.id,
        ),
    )
    session.execute(insert(DigestBacklog).from_select(["subscription_id", "comment_id"], owed))


def take_backlog(session: Session, through: dict[int, int], person_id: int) -> Sequence[Comment]:
    """Take the backlog of these subscriptions (id -> the watermark this run moves it to) up
    to each one's new watermark: delete the rows and return their comments still published.

    Rows above the new watermark stay: a later run's range covers them, and that run takes
    them then (and sends each comment once). Only the rows read here are deleted, by id, so
    a row committed by an approval after this read waits for the next run.
    """
    if not through:
        return []
    rows = session.execute(
        select(DigestBacklog.id, Comment)
        .join(Comment, Comment.id == DigestBacklog.comment_id)
        .where(
            or_(
                *(
                    and_(
                        DigestBacklog.subscription_id == subscription_id,
                        DigestBacklog.comment_id <= watermark,
                    )
                    for subscription_id, watermark in through.items()
                )
            )
        )
        # The comment's status as of this read, not as this session loaded it before.
        .execution_options(populate_existing=True)
    ).all()
    if not rows:
        return []
    session.execute(
        delete(DigestBacklog)
        .where(DigestBacklog.id.in_([row_id for row_id, _ in rows]))
        .execution_options(synchronize_session=False)
    )
    return [
        comment for _, comment in rows if is_published(comment) and comment.author_id != person_id
    ]
