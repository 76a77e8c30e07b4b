"""casekey: each case's places and constituent, so the duplicate search is a lookup

Revision ID: 0018_casekey
Revises: 0015_privacy
Create Date: 2026-12-01 04:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0018_casekey"
down_revision: str | None = "0015_privacy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "casekey",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("ward_id", sa.Integer(), sa.ForeignKey("ward.id"), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("opened_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_casekey_case_id", "casekey", ["case_id"])
    op.create_index("ix_casekey_lookup", "casekey", ["ward_id", "key", "opened_at"])
    # A new case counts the constituent's earlier cases with the member: without this index
    # that read every case of the member. (0014_retention on main creates the same index.)
    if "ix_case_constituent_id" not in {i["name"] for i in sa.inspect(op.get_bind())
                                        .get_indexes("case")}:
        op.create_index("ix_case_constituent_id", "case", ["constituent_id"])
    _backfill()


def _backfill() -> None:
    """The keys of the cases already in the database, as casework/duplicates.index stores
    them for a new case."""
    from mailflow.casework.duplicates import hashed, keys
    from mailflow.models import Constituent

    bind = op.get_bind()
    key_table = sa.table("casekey", sa.column("case_id"), sa.column("ward_id"), sa.column("key"),
                         sa.column("opened_at", sqlmodel.sql.sqltypes.UTCDateTime()))
    rows = bind.execute(sa.text(
        "SELECT c.id, c.ward_id, c.subject, c.issue, c.opened_at AS opened_at, k.id AS k_id, "
        "k.email, k.address "
        'FROM "case" c LEFT JOIN constituent k ON k.id = c.constituent_id '
        "WHERE c.ward_id IS NOT NULL ORDER BY c.id"
    ).columns(opened_at=sqlmodel.sql.sqltypes.UTCDateTime())).all()
    batch: list[dict[str, object]] = []
    for case_id, ward_id, subject, issue, opened_at, k_id, email, address in rows:
        who = Constituent(id=k_id, email=email, address=address) if k_id is not None else None
        batch += [{"case_id": case_id, "ward_id": ward_id, "key": key, "opened_at": opened_at}
                  for key in hashed(keys(who, subject or "", issue or ""))]
        if len(batch) >= 5000:
            bind.execute(key_table.insert(), batch)
            batch = []
    if batch:
        bind.execute(key_table.insert(), batch)


def downgrade() -> None:
    op.drop_table("casekey")  # ix_case_constituent_id stays: 0014_retention may own it
