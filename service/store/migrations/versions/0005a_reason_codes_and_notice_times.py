"""reason codes of inbound mail, times of rejection notices

Revision ID: 0005a
Revises: 0004
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005a"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rows finished before this revision get the code their reason's wording says; what matches
# none keeps no code (metrics count it as "other").
_BACKFILL = (
    ("rejected", "sender mismatch%", "sender_mismatch"),
    ("rejected", "post % is closed to comments", "closed"),
    ("rejected", "empty reply%", "empty"),
    ("rejected", "the post or person%", "gone"),
    ("rejected", "the comment replied to%", "gone"),
    ("rejected", "no valid reply address%", "no_route"),
    ("rejected", "reply to a digest%", "digest"),
    ("rejected", "DMARC check failed%", "dmarc_fail"),
    ("ignored", "duplicate of%", "duplicate"),
    ("ignored", "null envelope sender%", "null_sender"),
    ("ignored", "sent by a system address%", "system_sender"),
    ("ignored", "sent from one of replyd's own addresses%", "own_address"),
    ("ignored", "Auto-Submitted:%", "auto_submitted"),
    ("ignored", "X-Auto%", "auto_reply"),
    ("ignored", "Precedence:%", "auto_reply"),
    ("ignored", "automatic-reply subject%", "auto_reply"),
    ("ignored", "multipart/report%", "report"),
    ("ignored", "bounce%", "bounce"),
    ("ignored", "unsubscribe request%", "unsubscribe"),
    ("failed", "gave up after%", "gave_up"),
    ("failed", "%", "error"),
)


def upgrade() -> None:
    """Apply this revision: a reason code beside each reason, a time on each notice."""
    with op.batch_alter_table("inbound_emails", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason_code", sa.String(length=32), nullable=True))
    with op.batch_alter_table("rejection_notices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_rejection_notices_created_at"), ["created_at"], unique=False
        )
    statement = sa.text(
        "UPDATE inbound_emails SET reason_code = :code "
        "WHERE reason_code IS NULL AND status = :status AND reason LIKE :pattern"
    )
    for status, pattern, code in _BACKFILL:
        op.execute(statement.bindparams(status=status, pattern=pattern, code=code))


def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table("rejection_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rejection_notices_created_at"))
        batch_op.drop_column("created_at")
    with op.batch_alter_table("inbound_emails", schema=None) as batch_op:
        batch_op.drop_column("reason_code")
