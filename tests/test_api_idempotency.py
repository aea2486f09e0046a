"""`Idempotency-Key` on POSTs: a retry replays the first answer and does nothing twice; another request with
the same key is refused; keys are per API key, expire, and are purged."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select, update

from bot.domain.privacy import purge
from bot.web.api_keys import create_api_key
from bot.web.console.agents import create_agent
from db.models import ApiKey, Handoff, IdempotencyKey, Message, OrderEvent, OutboxItem, utcnow
from tests.conftest import post_twilio, twilio_params

ORDER = {"customer": {"name": "Ana", "phone": "+15550001111"}, "address": {"postcode": "10001"}}
EVENT = {"type": "out_for_delivery", "occurred_at": "2026-11-28T09:00:00Z",
         "eta": {"start": "2026-11-28T14:00:00Z", "end": "2026-11-28T16:00:00Z"}}


def count(srv, model, *where) -> int:
    with srv.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def post_event(client, auth, key, body=None, ref="A-1"):
    return client.post(f"/api/v1/orders/{ref}/events", json=body or EVENT, headers={**auth, "Idempotency-Key": key})


def test_a_retry_replays_the_first_answer_and_changes_nothing(client, auth, srv):
    client.put("/api/v1/orders/A-1", json=ORDER, headers=auth)
    first = post_event(client, auth, "evt-1")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    rows = count(srv, OutboxItem)
    assert rows >= 1  # the customer is told once
    again = client.post("/api/v1/orders/A-1/events", headers={**auth, "Idempotency-Key": "evt-1"},
                        data=json.dumps(dict(reversed(list(EVENT.items())))), content_type="application/json")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()  # same body, same event id
    assert count(srv, OrderEvent) == 1 and count(srv, OutboxItem) == rows


def test_the_same_key_with_another_body_is_refused(client, auth, srv):
    client.put("/api/v1/orders/A-1", json=ORDER, headers=auth)
    assert post_event(client, auth, "evt-1").status_code == 201
    response = post_event(client, auth, "evt-1", {"type": "delayed", "reason": "traffic"})
    assert response.status_code == 422 and response.get_json()["code"] == "idempotency_key_mismatch"
    assert response.get_json()["details"] == [{"field": "Idempotency-Key",
                                               "message": "reused with a different request"}]
    other_path = post_event(client, auth, "evt-1", ref="A-2")
    assert other_path.status_code == 422 and other_path.get_json()["code"] == "idempotency_key_mismatch"
    assert count(srv, OrderEvent) == 1


def test_keys_are_scoped_per_api_key(client, auth, srv):
    client.put("/api/v1/orders/A-1", json=ORDER, headers=auth)
    with srv.db.session() as session:
        other = {"Authorization": "Bearer " + create_api_key(session, "other carrier system")}
    assert post_event(client, auth, "evt-1").status_code == 201
    assert "Idempotent-Replayed" not in post_event(client, other, "evt-1").headers
    assert count(srv, OrderEvent) == 2


def test_an_error_is_not_kept_so_a_retry_runs_again(client, auth, srv):
    missing = post_event(client, auth, "evt-1")
    assert missing.status_code == 404
    client.put("/api/v1/orders/A-1", json=ORDER, headers=auth)
    assert post_event(client, auth, "evt-1").status_code == 201
    assert count(srv, OrderEvent) == 1


def test_a_bad_key_is_400(client, auth, srv):
    client.put("/api/v1/orders/A-1", json=ORDER, headers=auth)
    for key in ("", " ", "x" * 256, "tab\there"):
        response = post_event(client, auth, key)
        assert response.status_code == 400 and response.get_json()["details"][0]["field"] == "Idempotency-Key"
    assert count(srv, OrderEvent) == 0


def test_a_request_in_progress_is_409(app, client, auth, srv):
    from bot.web.idempotency import fingerprint

    client.put("/api/v1/orders/A-1", json=ORDER, headers=auth)
    with app.test_request_context("/api/v1/orders/A-1/events", method="POST", json=EVENT):
        print_ = fingerprint()
    with srv.db.session() as session:  # the first request, still running
        key_id = session.scalar(select(ApiKey.id).limit(1))
        session.add(IdempotencyKey(api_key_id=key_id, key="evt-1", fingerprint=print_,
                                   expires_at=utcnow() + timedelta(hours=1)))
    response = post_event(client, auth, "evt-1")
    assert response.status_code == 409 and response.get_json()["code"] == "idempotency_key_in_use"
    assert response.headers["Retry-After"] == "1" and count(srv, OrderEvent) == 0


def test_an_expired_key_runs_again_and_the_purge_deletes_expired_keys(client, auth, srv):
    client.put("/api/v1/orders/A-1", json=ORDER, headers=auth)
    assert post_event(client, auth, "evt-1").status_code == 201
    assert post_event(client, auth, "evt-2", {**EVENT, "type": "delayed"}).status_code == 201
    with srv.db.session() as session:
        session.execute(update(IdempotencyKey).where(IdempotencyKey.key == "evt-1")
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    again = post_event(client, auth, "evt-1")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert count(srv, OrderEvent) == 3
    with srv.db.session() as session:
        session.execute(update(IdempotencyKey).where(IdempotencyKey.key == "evt-2")
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
        counts = purge(session, srv.config["retention"], utcnow())
    assert counts["idempotency_keys"] == 1
    assert [k for (k,) in _keys(srv)] == ["evt-1"]


def _keys(srv):
    with srv.db.session() as session:
        return session.execute(select(IdempotencyKey.key)).all()


def test_an_agent_reply_retried_texts_the_customer_once(client, srv, providers, seeded):
    with srv.db.session() as session:
        sam = create_agent(session, "sam", "password-sam", name="Sam Patel")
        headers = {"Authorization": "Bearer " + create_api_key(session, "sam", "agent", agent_id=sam.id),
                   "Idempotency-Key": "reply-1"}
    post_twilio(client, twilio_params("+15551230001", "I want to talk to a person"))
    with srv.db.session() as session:
        handoff_id, conversation_id = session.execute(select(Handoff.id, Handoff.conversation_id)).one()
    path = f"/api/v1/conversations/{conversation_id}/messages"
    first = client.post(path, headers=headers, json={"text": "Looking at it now."})
    again = client.post(path, headers=headers, json={"text": "Looking at it now."})
    assert first.status_code == again.status_code == 201 and again.get_json() == first.get_json()
    srv.dispatcher.drain()
    assert count(srv, Message, Message.sender == "agent") == 1
    assert [m.value("Body") for m in providers.twilio_messages()].count("Looking at it now.") == 1
    reused = client.post(f"/api/v1/handoffs/{handoff_id}/release", headers=headers)  # same key, other request
    assert reused.status_code == 422 and reused.get_json()["code"] == "idempotency_key_mismatch"


def test_erasing_a_person_erases_the_answers_kept_for_replay(client, auth, srv):
    client.put("/api/v1/orders/A-1", json=ORDER, headers=auth)
    assert post_event(client, auth, "evt-1").status_code == 201
    client.put("/api/v1/orders/B-1", json={"customer": {"phone": "+15550002222"}}, headers=auth)
    assert post_event(client, auth, "evt-2", ref="B-1").status_code == 201
    erased = client.delete("/api/v1/customers/%2B15550001111", headers=auth)
    assert erased.status_code == 200 and erased.get_json()["erased"]["idempotency_keys"] == 1
    assert [k for (k,) in _keys(srv)] == ["evt-2"]  # another person's stays
