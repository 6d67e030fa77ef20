"""indexes for history and notifications

Revision ID: 4d907b67d902
Revises: 599db2ecebed
Create Date: 2026-12-02T22:54:46+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '4d907b67d902'
down_revision = '599db2ecebed'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chat_messages_room_id_inserted_at'), ['room_id', 'inserted_at'], unique=False)
    with op.batch_alter_table('chat_notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chat_notifications_user_id_inserted_at'), ['user_id', 'inserted_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('chat_notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chat_notifications_user_id_inserted_at'))
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chat_messages_room_id_inserted_at'))
