"""message attachments

Revision ID: f4aac29c6fe9
Revises: b86d9ba77988
Create Date: 2026-12-03T21:06:50+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = 'f4aac29c6fe9'
down_revision = 'b86d9ba77988'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attachments', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.drop_column('attachments')
