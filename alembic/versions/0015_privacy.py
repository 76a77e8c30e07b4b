"""privacy: the subject access register and members' end of term

Revision ID: 0015_privacy
Revises: 0019_web
Create Date: 2026-12-01 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0015_privacy"
down_revision: str | None = "0019_web"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = sqlmodel.sql.sqltypes.AutoString
T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    # A subject access request finds the cases a person wrote to (as sender) by an index.
    op.create_index("ix_event_sender", "event", ["sender"])
    op.create_table(
        "sar_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", S(), nullable=False),
        sa.Column("name", S(), nullable=True),
        sa.Column("phone", S(), nullable=True),
        sa.Column("received_at", T(), nullable=False),
        sa.Column("due", sa.Date(), nullable=False),
        sa.Column("extended_months", sa.Integer(), nullable=False),
        sa.Column("extend_reason", S(), nullable=True),
        sa.Column("answered_at", T(), nullable=True),
        sa.Column("requested_by", S(), nullable=False),
        sa.Column("scope", S(), nullable=True),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
    )
    op.create_index("ix_sar_request_email", "sar_request", ["email"])
    op.create_table(
        "end_of_term",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("member_email", S(), nullable=False, unique=True),
        sa.Column("successor", S(), nullable=True),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("declared_at", T(), nullable=False),
        sa.Column("declared_by", S(), nullable=False),
        sa.Column("done_at", T(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("end_of_term")
    op.drop_index("ix_sar_request_email", table_name="sar_request")
    op.drop_table("sar_request")
    op.drop_index("ix_event_sender", table_name="event")
