"""media: inbound photos and documents stored by us (media_files)

Revision ID: 0006_media
Revises: 0005_send_pacing
Create Date: 2026-12-06 23:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
import db.models


revision = '0006_media'
down_revision = '0005_send_pacing'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('media_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('declared_type', sa.String(length=255), nullable=True),
    sa.Column('content_type', sa.String(length=100), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('storage_key', sa.String(length=300), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('stored_at', db.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_media_files_conversation_id_conversations'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_media_files_message_id_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_media_files_order_id_orders'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_files'))
    )
    with op.batch_alter_table('media_files', schema=None) as batch_op:
        batch_op.create_index('ix_media_files_created', ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_media_files_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_media_files_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_media_files_order_id'), ['order_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('media_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_files_order_id'))
        batch_op.drop_index(batch_op.f('ix_media_files_message_id'))
        batch_op.drop_index(batch_op.f('ix_media_files_conversation_id'))
        batch_op.drop_index('ix_media_files_created')

    op.drop_table('media_files')
