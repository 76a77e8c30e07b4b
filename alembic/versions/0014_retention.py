"""retention: legal holds, and the indexes that let one case be deleted without a scan

Revision ID: 0014_retention
Revises: 0012_requests
Create Date: 2026-12-01 03:30:00.000000

Deleting a case (casework/retention.py) finds everything that points at it, and whether a
raw message or a constituent is still used by another case, through these indexes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0014_retention"
down_revision: str | None = "0012_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = [
    ("ix_case_closed", "case", ["status", "closed_at"]),
    ("ix_case_constituent_id", "case", ["constituent_id"]),
    ("ix_case_source_message_id", "case", ["source_message_id"]),
    ("ix_case_merged_into_id", "case", ["merged_into_id"]),
    ("ix_event_raw_message_id", "event", ["raw_message_id"]),
    # The database checks these foreign keys when a request or an outbox row is deleted.
    ("ix_event_request_id", "event", ["request_id"]),
    ("ix_sent_report_outbox_id", "sent_report", ["outbox_id"]),
    ("ix_request_follow_up_of", "request", ["follow_up_of"]),  # a follow-up's first request
    ("ix_notification_case_id", "notification", ["case_id"]),
    ("ix_notification_request_id", "notification", ["request_id"]),
    ("ix_holding_raw_message_id", "holding", ["raw_message_id"]),
    ("ix_holding_case_id", "holding", ["case_id"]),
    ("ix_attachment_raw_message_id", "attachment", ["raw_message_id"]),
    ("ix_rawmessage_received_at", "rawmessage", ["received_at"]),
]


def upgrade() -> None:
    op.create_table(
        "legal_hold",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("case.id"), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("placed_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("placed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("released_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("released_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    )
    op.create_index("ix_legal_hold_case_id", "legal_hold", ["case_id"])
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_table("legal_hold")
