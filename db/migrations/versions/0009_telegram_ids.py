"""telegram message ids: sent messages are stored as "<chat>:<message id>"

Telegram counts message ids within each chat, so two customers' first replies share id 1, and an outbound
id could equal an inbound update id (both lived in the `(channel, provider_id)` unique key). Sent messages
recorded before this revision get their chat in front; inbound update ids stay as they are.

Revision ID: 0009_telegram_ids
Revises: 0008_email
Create Date: 2026-12-07 09:00:00
"""

from alembic import op


revision = '0009_telegram_ids'
down_revision = '0008_email'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE messages SET provider_id = (SELECT address FROM conversations "
        "WHERE conversations.id = messages.conversation_id) || ':' || provider_id "
        "WHERE channel = 'telegram' AND direction = 'out' AND provider_id IS NOT NULL "
        "AND provider_id NOT LIKE '%:%'"
    )
    op.execute(
        "UPDATE outbox SET provider_id = to_address || ':' || provider_id "
        "WHERE channel = 'telegram' AND kind = 'message' AND provider_id IS NOT NULL "
        "AND to_address IS NOT NULL AND provider_id NOT LIKE '%:%'"
    )


def downgrade() -> None:
    # The chat in front is dropped again (an older release expects the bare message id).
    find = "instr(provider_id, ':')" if op.get_bind().dialect.name == 'sqlite' else "strpos(provider_id, ':')"
    for table in ('messages', 'outbox'):
        op.execute(
            f"UPDATE {table} SET provider_id = substr(provider_id, {find} + 1) "
            f"WHERE channel = 'telegram' AND provider_id LIKE '%:%'"
            + (" AND direction = 'out'" if table == 'messages' else "")
        )
