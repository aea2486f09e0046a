"""proof of delivery: the recipient's signature (an image) and the parcel's scanned barcode

Revision ID: 0010_proof
Revises: 0009_telegram_ids
Create Date: 2026-12-07 09:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0010_proof'
down_revision = '0009_telegram_ids'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('proof_signature_url', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('proof_barcode', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('proof_barcode')
        batch_op.drop_column('proof_signature_url')
