"""background jobs tables (domain.jobs: Oban's oban_jobs and oban_producers)

Revision ID: c45d29b59bf7
Revises: f4aac29c6fe9
Create Date: 2026-12-03T21:03:47+00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = 'c45d29b59bf7'
down_revision = 'f4aac29c6fe9'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('oban_jobs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), sa.Identity(always=True), nullable=False),
    sa.Column('state', sa.Enum('available', 'scheduled', 'executing', 'retryable', 'completed', 'discarded', 'cancelled', name='oban_job_state'), server_default='available', nullable=False),
    sa.Column('queue', sa.Text(), server_default='default', nullable=False),
    sa.Column('worker', sa.Text(), nullable=False),
    sa.Column('attempt', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('max_attempts', sa.SmallInteger(), server_default='20', nullable=False),
    sa.Column('priority', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('args', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), server_default='{}', nullable=False),
    sa.Column('meta', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), server_default='{}', nullable=False),
    sa.Column('tags', sa.JSON().with_variant(postgresql.ARRAY(Text()), 'postgresql'), server_default='{}', nullable=False),
    sa.Column('errors', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), server_default='[]', nullable=False),
    sa.Column('attempted_by', sa.JSON().with_variant(postgresql.ARRAY(Text()), 'postgresql'), server_default='{}', nullable=False),
    sa.Column('inserted_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('scheduled_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('attempted_at', sa.DateTime(), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(), nullable=True),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.Column('discarded_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint('attempt >= 0 AND attempt <= max_attempts', name=op.f('ck_oban_jobs_attempt_range')),
    sa.CheckConstraint('length(queue) > 0', name=op.f('ck_oban_jobs_queue_length')),
    sa.CheckConstraint('length(worker) > 0', name=op.f('ck_oban_jobs_worker_length')),
    sa.CheckConstraint('max_attempts > 0', name=op.f('ck_oban_jobs_positive_max_attempts')),
    sa.CheckConstraint('priority >= 0', name=op.f('ck_oban_jobs_non_negative_priority')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oban_jobs'))
    )
    with op.batch_alter_table('oban_jobs', schema=None) as batch_op:
        batch_op.create_index('oban_jobs_cancelled_at_index', ['cancelled_at'], unique=False, postgresql_where=sa.text("state = 'cancelled'"), sqlite_where=sa.text("state = 'cancelled'"))
        batch_op.create_index('oban_jobs_completed_at_index', ['completed_at'], unique=False, postgresql_where=sa.text("state = 'completed'"), sqlite_where=sa.text("state = 'completed'"))
        batch_op.create_index('oban_jobs_discarded_at_index', ['discarded_at'], unique=False, postgresql_where=sa.text("state = 'discarded'"), sqlite_where=sa.text("state = 'discarded'"))
        batch_op.create_index('oban_jobs_staging_index', ['scheduled_at', 'id'], unique=False, postgresql_where=sa.text("state IN ('scheduled', 'retryable')"), sqlite_where=sa.text("state IN ('scheduled', 'retryable')"))
        batch_op.create_index('oban_jobs_state_queue_priority_scheduled_at_id_index', ['state', 'queue', 'priority', 'scheduled_at', 'id'], unique=False)
    op.create_table('oban_producers',
    sa.Column('uuid', sa.Uuid(), nullable=False),
    sa.Column('name', sa.Text(), server_default='oban', nullable=False),
    sa.Column('node', sa.Text(), nullable=False),
    sa.Column('queue', sa.Text(), nullable=False),
    sa.Column('meta', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('uuid', name=op.f('pk_oban_producers'))
    )


def downgrade() -> None:
    op.drop_table('oban_producers')
    with op.batch_alter_table('oban_jobs', schema=None) as batch_op:
        batch_op.drop_index('oban_jobs_state_queue_priority_scheduled_at_id_index')
        batch_op.drop_index('oban_jobs_staging_index', postgresql_where=sa.text("state IN ('scheduled', 'retryable')"), sqlite_where=sa.text("state IN ('scheduled', 'retryable')"))
        batch_op.drop_index('oban_jobs_discarded_at_index', postgresql_where=sa.text("state = 'discarded'"), sqlite_where=sa.text("state = 'discarded'"))
        batch_op.drop_index('oban_jobs_completed_at_index', postgresql_where=sa.text("state = 'completed'"), sqlite_where=sa.text("state = 'completed'"))
        batch_op.drop_index('oban_jobs_cancelled_at_index', postgresql_where=sa.text("state = 'cancelled'"), sqlite_where=sa.text("state = 'cancelled'"))
    op.drop_table('oban_jobs')
    sa.Enum(name='oban_job_state').drop(op.get_bind(), checkfirst=True)  # PostgreSQL's type
