"""audit reads: one trail. Case reads move from `caseread` into `auditentry` (the table is
dropped), and `auditcase` names each case a listing showed, so "who saw this case" is an
index lookup.

Revision ID: 0017_audit_reads
Revises: 0018_casekey
Create Date: 2026-12-01 03:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0017_audit_reads"
down_revision: str | None = "0018_casekey"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sqlmodel.sql.sqltypes.UTCDateTime
TEXT = sqlmodel.sql.sqltypes.AutoString

caseread = sa.table("caseread", sa.column("id", sa.Integer()), sa.column("case_id", sa.Integer()),
                    sa.column("at", UTC()), sa.column("reader", TEXT()),
                    sa.column("via", TEXT()), sa.column("what", TEXT()))
case = sa.table("case", sa.column("id", sa.Integer()), sa.column("reference", TEXT()))
auditentry = sa.table("auditentry", sa.column("at", UTC()), sa.column("actor", TEXT()),
                      sa.column("action", TEXT()), sa.column("what", TEXT()),
                      sa.column("case_ref", TEXT()), sa.column("via", TEXT()),
                      sa.column("detail", sa.JSON()))


def upgrade() -> None:
    op.create_table(
        "auditcase",
        sa.Column("audit_id", sa.Integer(), nullable=False),
        sa.Column("case_ref", TEXT(), nullable=False),
        sa.ForeignKeyConstraint(["audit_id"], ["auditentry.id"]),
        sa.PrimaryKeyConstraint("audit_id", "case_ref"),
    )
    # "who saw this case": the reference first, covering the entry's id
    op.create_index("ix_auditcase_case_ref", "auditcase", ["case_ref", "audit_id"])
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(caseread.c.at, caseread.c.reader, caseread.c.via, caseread.c.what,
                  case.c.reference).join(case, case.c.id == caseread.c.case_id)
        .order_by(caseread.c.id)).all()
    # `case --json` was its own `what`; in the one trail the command is `case` and the JSON
    # flag is detail, as for every other read.
    entries = [{"at": at, "actor": reader, "action": "read",
                "what": "case" if what.startswith("case") else what, "case_ref": ref,
                "via": via, "detail": {"json": True} if what == "case --json" else None}
               for at, reader, via, what, ref in rows]
    for i in range(0, len(entries), 1000):
        op.bulk_insert(auditentry, entries[i:i + 1000])
    with op.batch_alter_table("caseread", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_caseread_case_id"))
    op.drop_table("caseread")


def downgrade() -> None:
    op.create_table(
        "caseread",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", UTC(), nullable=False),
        sa.Column("reader", TEXT(), nullable=False),
        sa.Column("via", TEXT(), nullable=False),
        sa.Column("what", TEXT(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("caseread", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caseread_case_id"), ["case_id"], unique=False)
    op.drop_table("auditcase")
