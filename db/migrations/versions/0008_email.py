"""email: customers.email; conversation addresses and outbox lanes long enough for an email address

Revision ID: 0008_email
Revises: 0007_brands
Create Date: 2026-12-07 05:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008_email'
down_revision = '0007_brands'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Widening a VARCHAR keeps every row (PostgreSQL: no rewrite; SQLite: the batch copy moves them all).
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email', sa.String(length=254), nullable=True))
        batch_op.create_index(batch_op.f('ix_customers_email'), ['email'], unique=False)
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.alter_column('address', existing_type=sa.String(length=64), type_=sa.String(length=254),
                              existing_nullable=False)
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('lane', existing_type=sa.String(length=100), type_=sa.String(length=300),
                              existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('lane', existing_type=sa.String(length=300), type_=sa.String(length=100),
                              existing_nullable=False)
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.alter_column('address', existing_type=sa.String(length=254), type_=sa.String(length=64),
                              existing_nullable=False)
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customers_email'))
        batch_op.drop_column('email')
