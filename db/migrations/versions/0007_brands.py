"""brands: the shops a carrier delivers for; orders belong to one (refs unique per brand), keys may be scoped

Revision ID: 0007_brands
Revises: 0006_media
Create Date: 2026-12-07 06:00:00.000000

Existing orders move to the default brand (ref "default"), created here; their references stay as they were.
"""

from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa
import db.models


revision = '0007_brands'
down_revision = '0006_media'
branch_labels = None
depends_on = None


def upgrade() -> None:
    brands = op.create_table('brands',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=True),
    sa.Column('default_locale', sa.String(length=16), nullable=True),
    sa.Column('support', sa.JSON(), nullable=False),
    sa.Column('senders', sa.JSON(), nullable=False),
    sa.Column('theme', sa.JSON(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('created_at', db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_brands')),
    sa.UniqueConstraint('ref', name=op.f('uq_brands_ref'))
    )
    now = datetime.now(UTC)
    op.bulk_insert(brands, [{'ref': 'default', 'name': None, 'default_locale': None, 'support': {}, 'senders': {},
                             'theme': {}, 'settings': {}, 'created_at': now, 'updated_at': now}])
    default_id = op.get_bind().scalar(sa.text("SELECT id FROM brands WHERE ref = 'default'"))
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('brand_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_api_keys_brand_id_brands'), 'brands', ['brand_id'], ['id'],
                                    ondelete='CASCADE')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('brand_id', sa.Integer(), nullable=True))
    op.execute(sa.text("UPDATE orders SET brand_id = :id").bindparams(id=default_id))
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.alter_column('brand_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint(batch_op.f('uq_orders_ref'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_orders_brand_id_ref'), ['brand_id', 'ref'])
        batch_op.create_foreign_key(batch_op.f('fk_orders_brand_id_brands'), 'brands', ['brand_id'], ['id'])


def downgrade() -> None:
    # Only possible while every reference is unique across brands again.
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_orders_brand_id_brands'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_orders_brand_id_ref'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_orders_ref'), ['ref'])
        batch_op.drop_column('brand_id')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_api_keys_brand_id_brands'), type_='foreignkey')
        batch_op.drop_column('brand_id')
    op.drop_table('brands')
