"""audit: one trail of reads and actions that outlives the cases it names

Revision ID: 0010_audit
Revises: 0009_relay
Create Date: 2026-12-01 03:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010_audit"
down_revision: str | None = "0009_relay"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auditentry",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("what", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("case_ref", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("via", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
    )
    op.create_index("ix_auditentry_at", "auditentry", ["at"])
    op.create_index("ix_auditentry_actor", "auditentry", ["actor"])
    op.create_index("ix_auditentry_case_ref", "auditentry", ["case_ref"])


def downgrade() -> None:
    op.drop_table("auditentry")
