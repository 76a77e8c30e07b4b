"""holding_resolution: how a holding-pen item was worked, by whom (issue 13)

Revision ID: 0011_holding_resolution
Revises: 0010_audit
Create Date: 2026-12-01 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011_holding_resolution"
down_revision: str | None = "0010_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("holding") as t:
        t.add_column(sa.Column("resolution", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        t.add_column(sa.Column("resolved_by", sqlmodel.sql.sqltypes.AutoString(),
                               nullable=True))
        t.add_column(sa.Column("resolution_note", sqlmodel.sql.sqltypes.AutoString(),
                               nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("holding") as t:
        t.drop_column("resolution_note")
        t.drop_column("resolved_by")
        t.drop_column("resolution")
