"""digest watermarks and decaying bounce scores

Revision ID: 0005d
Revises: 0004
Create Date: 2026-12-02
"""

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0005d"
down_revision: str | None = "0006a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# How the digests of the older code were named: one per person, kind and period start.
_OLD_DIGEST_ID = re.compile(r"^<digest-(daily|weekly)-(\d{8})\.to-(\d+)@")
_PERIOD_LENGTH = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}

_when = sa.DateTime(timezone=True)
_people = sa.table(
    "people",
    sa.column("bounce_score", sa.Float()),
    sa.column("bounce_scored_at", _when),
)
_subscriptions = sa.table(
    "subscriptions",
    sa.column("id", sa.Integer()),
    sa.column("post_id", sa.Integer()),
    sa.column("person_id", sa.Integer()),
    sa.column("active", sa.Boolean()),
    sa.column("digest", sa.String()),
    sa.column("created_at", _when),
    sa.column("digest_through", sa.Integer()),
    sa.column("digest_sent_at", _when),
)
_comments = sa.table(
    "comments", sa.column("id", sa.Integer()), sa.column("post_id", sa.Integer()),
    sa.column("created_at", _when),
)  # fmt: skip
_outbound = sa.table(
    "outbound_emails",
    sa.column("kind", sa.String()),
    sa.column("message_id", sa.String()),
    sa.column("created_at", _when),
)


def upgrade() -> None:
    """Apply this revision: bounce scores remember when they were last raised (they halve
    with time); digest subscriptions get a watermark, so a digest holds what is new."""
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bounce_scored_at", _when, nullable=True))
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest_through", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("digest_sent_at", _when, nullable=True))
    now = datetime.now(UTC)
    # A score already there starts decaying now.
    op.execute(_people.update().where(_people.c.bounce_score > 0).values(bounce_scored_at=now))
    _watermark_existing_digests()


def _watermark_existing_digests() -> None:
    """Each digest subscription continues after the last period its person got a digest for
    (from when they subscribed if none): what a digest of the older code already held is not
    sent again, and what it missed (a period the daemon was down for) is sent now."""
    connection = op.get_bind()
    # (person, kind) -> end of the last period digested, and when that digest was queued.
    done: dict[tuple[int, str], tuple[datetime, datetime]] = {}
    rows = connection.execute(
        sa.select(_outbound.c.message_id, _outbound.c.created_at).where(
            _outbound.c.kind == "digest"
        )
    )
    for message_id, queued_at in rows:
        match = _OLD_DIGEST_ID.match(message_id or "")
        if match is None:
            continue
        kind, start, person = match.group(1), match.group(2), int(match.group(3))
        end = datetime.strptime(start, "%Y%m%d").replace(tzinfo=UTC) + _PERIOD_LENGTH[kind]
        if queued_at is not None and queued_at.tzinfo is None:
            queued_at = queued_at.replace(tzinfo=UTC)
        if (person, kind) not in done or done[person, kind][0] < end:
            done[person, kind] = (end, queued_at or end)
    subscriptions = connection.execute(
        sa.select(
            _subscriptions.c.id,
            _subscriptions.c.post_id,
            _subscriptions.c.person_id,
            _subscriptions.c.digest,
            _subscriptions.c.created_at,
        ).where(_subscriptions.c.digest.is_not(None))
    ).all()
    for sub_id, post_id, person_id, kind, created_at in subscriptions:
        end, sent_at = done.get((person_id, kind), (created_at, None))
        through = connection.execute(
            sa.select(sa.func.max(_comments.c.id)).where(
                _comments.c.post_id == post_id, _comments.c.created_at < end
            )
        ).scalar()
        connection.execute(
            _subscriptions.update()
            .where(_subscriptions.c.id == sub_id)
            .values(digest_through=through or 0, digest_sent_at=sent_at)
        )


def downgrade() -> None:
    """Undo this revision (the older code sends digests by calendar period again)."""
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("digest_sent_at")
        batch_op.drop_column("digest_through")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("bounce_scored_at")
