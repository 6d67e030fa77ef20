"""user tokens and admins

Revision ID: ed2753278e3d
Revises: 4d907b67d902
Create Date: 2026-12-03T11:34:07+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = 'ed2753278e3d'
down_revision = '4d907b67d902'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_user_tokens',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('context', sa.String(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('inserted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['chat_accounts.id'], name=op.f('fk_chat_user_tokens_user_id_chat_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_user_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_chat_user_tokens_unique_token_hash'))
    )
    with op.batch_alter_table('chat_user_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chat_user_tokens_user_id'), ['user_id'], unique=False)
    with op.batch_alter_table('chat_accounts', schema=None) as batch_op:
        # Edited by hand: existing accounts are no admins (a NOT NULL column needs a default).
        batch_op.add_column(
            sa.Column('admin', sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table('chat_accounts', schema=None) as batch_op:
        batch_op.drop_column('admin')
    with op.batch_alter_table('chat_user_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chat_user_tokens_user_id'))
    op.drop_table('chat_user_tokens')
