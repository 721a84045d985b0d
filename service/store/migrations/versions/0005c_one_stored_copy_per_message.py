"""one stored copy per message

Revision ID: 0005c
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005c"
down_revision: str | None = "0006b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision: raw bytes move to inbound_sources, which the rows of a message's
    recipients share; each row stored before keeps a copy of its own, under its own id."""
    op.create_table(
        "inbound_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_sources")),
    )
    op.execute("INSERT INTO inbound_sources (id, raw) SELECT id, raw FROM inbound_emails")
    if op.get_bind().dialect.name == "postgresql":
        # The ids were given: the sequence must go on after them.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('inbound_sources', 'id'), "
            "COALESCE((SELECT MAX(id) FROM inbound_sources), 0) + 1, false)"
        )
    with op.batch_alter_table("inbound_emails", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_id", sa.Integer(), nullable=True))
    op.execute("UPDATE inbound_emails SET source_id = id")
    with op.batch_alter_table("inbound_emails", schema=None) as batch_op:
        batch_op.alter_column("source_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_index(batch_op.f("ix_inbound_emails_source_id"), ["source_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_inbound_emails_source_id_inbound_sources"),
            "inbound_sources",
            ["source_id"],
            ["id"],
        )
        batch_op.drop_column("raw")


def downgrade() -> None:
    """Undo this revision: every row gets its own copy of its message again."""
    with op.batch_alter_table("inbound_emails", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE inbound_emails SET raw = "
        "(SELECT raw FROM inbound_sources WHERE inbound_sources.id = inbound_emails.source_id)"
    )
    with op.batch_alter_table("inbound_emails", schema=None) as batch_op:
        batch_op.alter_column("raw", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_constraint(
            batch_op.f("fk_inbound_emails_source_id_inbound_sources"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_inbound_emails_source_id"))
        batch_op.drop_column("source_id")
    op.drop_table("inbound_sources")
