"""time: deadlines, holding replies, chasing, escalation, digests

Revision ID: 0004
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0004'
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString
_utc = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table('digest',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('audience', _str(), nullable=False),
    sa.Column('recipient', _str(), nullable=False),
    sa.Column('period', _str(), nullable=False),
    sa.Column('created_at', _utc(), nullable=False),
    sa.Column('items', sa.Integer(), nullable=False),
    sa.Column('sent', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('audience', 'recipient', 'period')
    )
    op.create_table('setting',
    sa.Column('name', _str(), nullable=False),
    sa.Column('value', _str(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('audience', _str(), nullable=False),
    sa.Column('recipient', _str(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('kind', _str(), nullable=False),
    sa.Column('text', _str(), nullable=False),
    sa.Column('created_at', _utc(), nullable=False),
    sa.Column('digest_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], ),
    sa.ForeignKeyConstraint(['digest_id'], ['digest.id'], ),
    sa.ForeignKeyConstraint(['request_id'], ['request.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index('ix_notification_pending', ['audience', 'recipient', 'digest_id'],
                              unique=False)

    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('open_until', sa.Date(), nullable=True))
        batch_op.create_index('ix_case_closing', ['status', 'open_until'], unique=False)

    with op.batch_alter_table('request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('due_from', _utc(), nullable=True))
        batch_op.add_column(sa.Column('due_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('target_due', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('proposed_due', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('ack_due', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('chase_step', _str(), nullable=False,
                                      server_default='none'))
        batch_op.add_column(sa.Column('next_step', _str(), nullable=True))
        batch_op.add_column(sa.Column('next_step_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('stepped_at', _utc(), nullable=True))
        batch_op.create_index('ix_request_next_step', ['state', 'next_step_on'], unique=False)
        batch_op.create_index('ix_request_service_open', ['service_id', 'state', 'due'],
                              unique=False)
        batch_op.create_index('ix_request_case_open', ['case_id', 'state', 'due'], unique=False)
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_request_id'), ['request_id'], unique=False)
    # Requests sent before this migration get their chase plan at the next start, when
    # mailflow first records the calendar (casework/deadlines.py follow_calendar).


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_request_id'))
    with op.batch_alter_table('request', schema=None) as batch_op:
        batch_op.drop_index('ix_request_case_open')
        batch_op.drop_index('ix_request_service_open')
        batch_op.drop_index('ix_request_next_step')
        for c in ('stepped_at', 'next_step_on', 'next_step', 'chase_step', 'ack_due',
                  'proposed_due', 'target_due', 'due_days', 'due_from'):
            batch_op.drop_column(c)
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_index('ix_case_closing')
        batch_op.drop_column('open_until')
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_pending')
    op.drop_table('notification')
    op.drop_table('setting')
    op.drop_table('digest')
