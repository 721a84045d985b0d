"""digest backlog: approved comments the digest watermark already passed

Revision ID: 0007a
Revises: 0006c
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007a"
down_revision: str | None = "0005c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision: a table of comments owed to digest subscriptions because they
    were approved (published) after a digest run moved the watermark past them."""
    op.create_table(
        "digest_backlog",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["comment_id"], ["comments.id"], name=op.f("fk_digest_backlog_comment_id_comments")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_digest_backlog_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_backlog")),
        sa.UniqueConstraint(
            "subscription_id",
            "comment_id",
            name=op.f("uq_digest_backlog_subscription_id"),
        ),
    )


def downgrade() -> None:
    """Undo this revision: comments still owed to digest takers are forgotten."""
    op.drop_table("digest_backlog")
