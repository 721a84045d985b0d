"""the blog's feed: validators of its last answer, for conditional GETs

Revision ID: 0008f
Revises: 0006d
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008f"
down_revision: str | None = "0006d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision: one row per feed URL with the ETag and Last-Modified it sent."""
    op.create_table(
        "feed_states",
        sa.Column("url_hash", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("etag", sa.String(length=1000), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("url_hash", name=op.f("pk_feed_states")),
    )


def downgrade() -> None:
    """Undo this revision: the next poll fetches the whole feed again."""
    op.drop_table("feed_states")
