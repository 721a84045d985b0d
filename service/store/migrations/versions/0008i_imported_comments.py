"""comments imported from WordPress or Disqus remember where they came from

Revision ID: 0008i
Revises: 0006d
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008i"
down_revision: str | None = "0008f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision: an import key on comments, unique, so a re-run adds nothing."""
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("import_key", sa.String(length=300), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_comments_import_key"), ["import_key"])


def downgrade() -> None:
    """Undo this revision: the import keys go (imported comments stay, as ordinary ones)."""
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_comments_import_key"), type_="unique")
        batch_op.drop_column("import_key")
