"""ingresses: the entrance of each inbound message, and webhook tokens seen

Revision ID: 0006c
Revises: 0005b
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006c"
down_revision: str | None = "0005d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision: inbound rows say which entrance they came through (all earlier
    ones came through the SMTP/LMTP listener), are indexed by arrival for the rate limits of
    `replyd ingest`, and Mailgun's one-time tokens are remembered while fresh."""
    with op.batch_alter_table("inbound_emails", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("via", sa.String(length=16), server_default="smtp", nullable=False)
        )
        batch_op.create_index(
            batch_op.f("ix_inbound_emails_received_at"), ["received_at"], unique=False
        )
    op.create_table(
        "ingress_tokens",
        sa.Column("token", sa.String(length=200), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_ingress_tokens")),
    )
    with op.batch_alter_table("ingress_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingress_tokens_seen_at"), ["seen_at"], unique=False)


def downgrade() -> None:
    """Undo this revision: the entrance of each message is forgotten."""
    with op.batch_alter_table("ingress_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingress_tokens_seen_at"))
    op.drop_table("ingress_tokens")
    with op.batch_alter_table("inbound_emails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_emails_received_at"))
        batch_op.drop_column("via")
