"""message edited_at

Revision ID: 6fe7e2548858
Revises: 15e986d679e8
Create Date: 2026-12-02T22:46:21+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '6fe7e2548858'
down_revision = '15e986d679e8'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('edited_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.drop_column('edited_at')
