"""bounce scores and rejection notices

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "rejection_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("inbound_email_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbound_email_id"],
            ["inbound_emails.id"],
            name=op.f("fk_rejection_notices_inbound_email_id_inbound_emails"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejection_notices")),
        sa.UniqueConstraint(
            "sender", "reason_code", "day", name=op.f("uq_rejection_notices_sender")
        ),
    )
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bounce_score", sa.Float(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("suspended_at")
        batch_op.drop_column("bounce_score")

    op.drop_table("rejection_notices")
