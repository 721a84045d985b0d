"""pending web comments and follow requests

Revision ID: 0006b
Revises: 0005b
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006b"
down_revision: str | None = "0006c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision: readers' comments and follows from the blog, waiting for their
    address to be confirmed."""
    op.create_table(
        "pending_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("follow", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("comment_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["comment_id"], ["comments.id"], name=op.f("fk_pending_comments_comment_id_comments")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["comments.id"], name=op.f("fk_pending_comments_parent_id_comments")
        ),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_pending_comments_post_id_posts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_comments")),
    )
    with op.batch_alter_table("pending_comments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pending_comments_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_pending_comments_post_id"), ["post_id"], unique=False)
    op.create_table(
        "follow_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("digest", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_follow_requests_post_id_posts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_requests")),
    )
    with op.batch_alter_table("follow_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_follow_requests_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            "ix_follow_requests_post_id_email", ["post_id", "email"], unique=False
        )


def downgrade() -> None:
    """Undo this revision: comments and follows waiting for confirmation are dropped."""
    with op.batch_alter_table("follow_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_follow_requests_post_id_email")
        batch_op.drop_index(batch_op.f("ix_follow_requests_created_at"))
    op.drop_table("follow_requests")
    with op.batch_alter_table("pending_comments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_comments_post_id"))
        batch_op.drop_index(batch_op.f("ix_pending_comments_created_at"))
    op.drop_table("pending_comments")
