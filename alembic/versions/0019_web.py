"""web: sign-in links (only their hashes) and signed-in browser sessions

Revision ID: 0019_web
Revises: 0013_reply_kinds
Create Date: 2026-12-01 04:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0019_web"
down_revision: str | None = "0013_reply_kinds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S, T = sqlmodel.sql.sqltypes.AutoString, sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "sign_in_link",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("address", S(), nullable=False),
        sa.Column("client", S(), nullable=False),
        sa.Column("token_hash", S(), nullable=False),
        sa.Column("code_hash", S(), nullable=False),
        sa.Column("created_at", T(), nullable=False),
        sa.Column("expires_at", T(), nullable=False),
        sa.Column("used_at", T(), nullable=True),
        sa.Column("outcome", S(), nullable=True),
        sa.Column("code_failures", sa.Integer(), nullable=False),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_sign_in_link_address", "sign_in_link", ["address"])
    op.create_index("ix_sign_in_link_client", "sign_in_link", ["client"])
    op.create_index("ix_sign_in_link_created_at", "sign_in_link", ["created_at"])
    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_hash", S(), nullable=False),
        sa.Column("actor", S(), nullable=False),
        sa.Column("created_at", T(), nullable=False),
        sa.Column("last_seen", T(), nullable=False),
        sa.Column("ended_at", T(), nullable=True),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_web_session_actor", "web_session", ["actor"])


def downgrade() -> None:
    op.drop_table("web_session")
    op.drop_table("sign_in_link")
