"""send pacing: each sender's next free send slot, shared by every dispatcher

Revision ID: 0005_send_pacing
Revises: 0004_api
Create Date: 2026-12-06 23:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005_send_pacing'
down_revision = '0004_api'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('send_pacing',
    sa.Column('sender', sa.String(length=200), nullable=False),
    sa.Column('next_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('sender', name=op.f('pk_send_pacing'))
    )


def downgrade() -> None:
    op.drop_table('send_pacing')
