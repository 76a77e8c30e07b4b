"""requests: follow-ups after #reopen, the last chase, why a request is undeliverable

Revision ID: 0012_requests
Revises: 0011_holding_resolution
Create Date: 2026-12-01 03:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012_requests"
down_revision: str | None = "0011_holding_resolution"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("request") as t:
        t.add_column(sa.Column("follow_up_reason", sqlmodel.sql.sqltypes.AutoString(),
                               nullable=True))
        t.add_column(sa.Column("follow_up_of", sa.Integer(), nullable=True))
        t.add_column(sa.Column("chased_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        t.add_column(sa.Column("undeliverable_reason", sqlmodel.sql.sqltypes.AutoString(),
                               nullable=True))
        t.add_column(sa.Column("undeliverable_at", sqlmodel.sql.sqltypes.UTCDateTime(),
                               nullable=True))
        t.create_foreign_key("fk_request_follow_up_of", "request", ["follow_up_of"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("request") as t:
        t.drop_constraint("fk_request_follow_up_of", type_="foreignkey")
        for name in ("undeliverable_at", "undeliverable_reason", "chased_at", "follow_up_of",
                     "follow_up_reason"):
            t.drop_column(name)
