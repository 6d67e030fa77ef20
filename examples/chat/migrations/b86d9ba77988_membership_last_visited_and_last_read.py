"""membership last visited and last read

Revision ID: b86d9ba77988
Revises: ed2753278e3d
Create Date: 2026-12-03T17:48:46+00:00
"""

import sqlalchemy as sa
from alembic import op

revision = 'b86d9ba77988'
down_revision = 'ed2753278e3d'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chat_memberships', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_visited_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_read_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('chat_memberships', schema=None) as batch_op:
        batch_op.drop_column('last_read_at')
        batch_op.drop_column('last_visited_at')
