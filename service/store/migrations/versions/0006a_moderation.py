"""moderation: comment status, moderation log, blocked senders, used moderation links

Revision ID: 0006a
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006a"
down_revision: str | None = "0005b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision: every existing comment is published, as of when it was made."""
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), server_default="published", nullable=False)
        )
        batch_op.add_column(sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_comments_author_id_status", ["author_id", "status"], unique=False)
    op.execute("UPDATE comments SET published_at = created_at")
    op.create_table(
        "moderation_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["comments.id"],
            name=op.f("fk_moderation_events_comment_id_comments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_events")),
    )
    with op.batch_alter_table("moderation_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_moderation_events_comment_id"), ["comment_id"], unique=False
        )
    op.create_table(
        "blocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocks")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_blocks_kind")),
    )
    op.create_table(
        "used_moderation_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["comments.id"],
            name=op.f("fk_used_moderation_links_comment_id_comments"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_used_moderation_links_person_id_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_used_moderation_links")),
        sa.UniqueConstraint(
            "comment_id",
            "person_id",
            "action",
            "expires",
            name=op.f("uq_used_moderation_links_comment_id"),
        ),
    )


def downgrade() -> None:
    """Undo this revision: comments that are not published are dropped with their mail (the
    older code would show them to everyone)."""
    op.drop_table("used_moderation_links")
    op.drop_table("blocks")
    with op.batch_alter_table("moderation_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_moderation_events_comment_id"))
    op.drop_table("moderation_events")
    hidden = "SELECT id FROM comments WHERE status <> 'published'"
    op.execute(f"UPDATE comments SET parent_id = NULL WHERE parent_id IN ({hidden})")
    op.execute(f"DELETE FROM outbound_emails WHERE comment_id IN ({hidden})")
    op.execute(f"DELETE FROM comments WHERE id IN ({hidden})")
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.drop_index("ix_comments_author_id_status")
        batch_op.drop_column("published_at")
        batch_op.drop_column("status")
