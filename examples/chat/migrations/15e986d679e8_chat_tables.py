"""chat tables

Revision ID: 15e986d679e8
Revises: None
Create Date: 2026-12-02T22:41:50+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '15e986d679e8'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_accounts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('username', sa.String(length=20), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('inserted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_accounts')),
    sa.UniqueConstraint('username', name=op.f('uq_chat_accounts_unique_username'))
    )
    op.create_table('chat_rooms',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('inserted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_rooms')),
    sa.UniqueConstraint('name', name=op.f('uq_chat_rooms_unique_room_name'))
    )
    op.create_table('chat_messages',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('content', sa.String(length=2000), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('room_id', sa.Uuid(), nullable=False),
    sa.Column('author_id', sa.Uuid(), nullable=False),
    sa.Column('author_name', sa.String(length=20), nullable=False),
    sa.Column('inserted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['chat_accounts.id'], name=op.f('fk_chat_messages_author_id_chat_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['room_id'], ['chat_rooms.id'], name=op.f('fk_chat_messages_room_id_chat_rooms'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_messages')),
    sa.UniqueConstraint('author_id', 'client_id', name=op.f('uq_chat_messages_unique_client_id'))
    )
    op.create_table('chat_notifications',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.String(length=2000), nullable=False),
    sa.Column('action_url', sa.String(length=500), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('is_read', sa.Boolean(), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('inserted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['chat_accounts.id'], name=op.f('fk_chat_notifications_user_id_chat_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_notifications')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_chat_notifications_unique_idempotency_key'))
    )


def downgrade() -> None:
    op.drop_table('chat_notifications')
    op.drop_table('chat_messages')
    op.drop_table('chat_rooms')
    op.drop_table('chat_accounts')
