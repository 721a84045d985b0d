"""notifications rendered at delivery

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision: a notification's message is written when it is sent."""
    with op.batch_alter_table("outbound_emails", schema=None) as batch_op:
        batch_op.alter_column("raw", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    """Undo this revision: notifications not yet sent are dropped (the older code could not
    write them); those already sent keep an empty message."""
    op.execute("DELETE FROM outbound_emails WHERE raw IS NULL AND status IN ('queued', 'sending')")
    op.execute("UPDATE outbound_emails SET raw = X'' WHERE raw IS NULL")
    with op.batch_alter_table("outbound_emails", schema=None) as batch_op:
        batch_op.alter_column("raw", existing_type=sa.LargeBinary(), nullable=False)
