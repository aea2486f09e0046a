"""What one inbound message writes: the turn's changes to its conversation go out in one UPDATE, not one per query
that happened to autoflush them (the lock-out check, the brand number look-up); through real signed webhooks."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from db.models import Conversation, Message
from tests.conftest import base_config, post_twilio, twilio_params

UNKNOWN = "+15558800042"


@pytest.fixture
def app_config(database_url, providers):
    return base_config(database_url, providers.url, security={"verification_max_failures": 1})


def conversation_updates(srv):
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("UPDATE CONVERSATIONS"):
            seen.append(statement)

    event.listen(srv.db.engine, "before_cursor_execute", record)
    return seen


def test_asking_again_for_a_proof_updates_the_conversation_once(client, srv):
    assert post_twilio(client, twilio_params(UNKNOWN, "where is my order?")).status_code == 200
    updates = conversation_updates(srv)
    assert post_twilio(client, twilio_params(UNKNOWN, "where is my order?")).status_code == 200
    assert len(updates) == 1
    with srv.db.session() as session:
        conversation = session.scalars(select(Conversation).where(Conversation.address == UNKNOWN)).one()
        assert conversation.state == {"awaiting": "proof"}
        replies = session.scalars(select(Message.text).where(Message.conversation_id == conversation.id,
                                                             Message.direction == "out")).all()
    assert len(replies) == 2 and all("order number" in text for text in replies)


def test_a_failed_proof_counts_in_the_lock_out_of_the_same_turn(client, srv):
    """The lock-out check after a wrong proof reads the failed proofs recorded so far, this one included (here
    one is the limit): the answer is the lock-out, not "don't match"."""
    assert post_twilio(client, twilio_params(UNKNOWN, "LM-99999 10001")).status_code == 200
    with srv.db.session() as session:
        replies = session.scalars(select(Message.text).where(Message.direction == "out")).all()
    assert len(replies) == 1 and "Too many attempts" in replies[0]
