"""detached statistics: the statistics of cases already deleted let go of their ids (made
negative), so a new case or request that SQLite gives a reused id does not overwrite them
(casework/retention.py does the same for each case it deletes from now on).

Revision ID: 0022_detached_statistics
Revises: 0021_thread_key
Create Date: 2026-12-01 07:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022_detached_statistics"
down_revision: str | None = "0021_thread_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Once, over the statistics tables: rows whose case is gone.
    op.execute('UPDATE request_stat SET case_id = -case_id, request_id = -request_id '
               'WHERE case_id > 0 AND NOT EXISTS (SELECT 1 FROM "case" c '
               'WHERE c.id = request_stat.case_id)')
    op.execute('UPDATE case_stat SET case_id = -case_id WHERE case_id > 0 AND NOT EXISTS '
               '(SELECT 1 FROM "case" c WHERE c.id = case_stat.case_id)')


def downgrade() -> None:
    pass  # negative ids match nothing; the old code reads them as before
