"""message overrides: a brand's own wording of customer messages, per key and language, versioned

Revision ID: 0011_message_overrides
Revises: 0010_proof
Create Date: 2026-12-07 10:00:00
"""

from alembic import op
import sqlalchemy as sa
import db.models


revision = '0011_message_overrides'
down_revision = '0010_proof'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('message_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('brand_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('locale', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', db.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['brand_id'], ['brands.id'], name=op.f('fk_message_overrides_brand_id_brands'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_overrides')),
    sa.UniqueConstraint('brand_id', 'key', 'locale', 'version',
                        name=op.f('uq_message_overrides_brand_id_key_locale_version'))
    )


def downgrade() -> None:
    op.drop_table('message_overrides')
