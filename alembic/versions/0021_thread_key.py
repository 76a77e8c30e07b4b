"""thread key: the case reference a stored message's headers name, so pipeline workers take
the messages of one case one at a time, in the order they were stored (issue 16).

Revision ID: 0021_thread_key
Revises: 0017_audit_reads
Create Date: 2026-12-01 06:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0021_thread_key"
down_revision: str | None = "0017_audit_reads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Messages stored before have no key: they are never held back (as before).
    op.add_column("rawmessage", sa.Column("thread_key", sqlmodel.sql.sqltypes.AutoString(),
                                          nullable=True))
    op.create_index("ix_rawmessage_thread", "rawmessage", ["thread_key", "state", "id"])


def downgrade() -> None:
    op.drop_index("ix_rawmessage_thread", table_name="rawmessage")
    # A plain DROP COLUMN (SQLite 3.35+): a batch copy of the table would trip the foreign
    # keys that point at it.
    op.execute("ALTER TABLE rawmessage DROP COLUMN thread_key")
