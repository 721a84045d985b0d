"""new posts by email: blog-wide subscriptions, new posts owed to digests, follow-all requests

Revision ID: 0008n
Revises: 0006d
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008n"
down_revision: str | None = "0008w"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision: people who follow the whole blog, the new posts their next digest
    owes them, and follow requests from the blog that ask for every new post (none so far)."""
    op.create_table(
        "blog_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("digest", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("digest_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_blog_subscriptions_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blog_subscriptions")),
        sa.UniqueConstraint("person_id", name=op.f("uq_blog_subscriptions_person_id")),
    )
    op.create_table(
        "digest_new_posts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_digest_new_posts_person_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_digest_new_posts_post_id_posts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_new_posts")),
        sa.UniqueConstraint("person_id", "post_id", name=op.f("uq_digest_new_posts_person_id")),
    )
    with op.batch_alter_table("follow_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("all_posts", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    """Undo this revision: who followed the whole blog is forgotten, and so are follow-all
    requests waiting for confirmation (they would otherwise start a follow of one post)."""
    op.execute("DELETE FROM follow_requests WHERE all_posts")
    with op.batch_alter_table("follow_requests", schema=None) as batch_op:
        batch_op.drop_column("all_posts")
    op.drop_table("digest_new_posts")
    op.drop_table("blog_subscriptions")
