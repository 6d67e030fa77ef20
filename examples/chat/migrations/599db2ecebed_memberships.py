"""memberships

Revision ID: 599db2ecebed
Revises: 6fe7e2548858
Create Date: 2026-12-02T22:49:18+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '599db2ecebed'
down_revision = '6fe7e2548858'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_memberships',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('room_id', sa.Uuid(), nullable=False),
    sa.Column('inserted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['room_id'], ['chat_rooms.id'], name=op.f('fk_chat_memberships_room_id_chat_rooms'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['chat_accounts.id'], name=op.f('fk_chat_memberships_user_id_chat_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_memberships')),
    sa.UniqueConstraint('user_id', 'room_id', name=op.f('uq_chat_memberships_unique_membership'))
    )


def downgrade() -> None:
    op.drop_table('chat_memberships')
