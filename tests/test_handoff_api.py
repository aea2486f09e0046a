"""The support JSON API with agent-scoped keys: list, take, reply, release, close; every refusal."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.web.api_keys import create_api_key
from bot.web.console.agents import create_agent
from db.models import Conversation, Handoff, Message, OutboxItem
from tests.conftest import post_twilio, twilio_params

ALICE = "+15551230001"


@pytest.fixture
def keys(srv):
    with srv.db.session() as session:
        sam = create_agent(session, "sam", "password-sam", name="Sam Patel")
        jo = create_agent(session, "jo", "password-jo", name="Jo Kim")
        return {
            "sam": {"Authorization": "Bearer " + create_api_key(session, "sam", "agent", agent_id=sam.id)},
            "jo": {"Authorization": "Bearer " + create_api_key(session, "jo", "agent", agent_id=jo.id)},
            "helpdesk": {"Authorization": "Bearer " + create_api_key(session, "helpdesk", "agent")},
        }


def handoff_waiting(client, srv, text="I want to talk to a person") -> tuple[int, int]:
    assert post_twilio(client, twilio_params(ALICE, text)).status_code == 200
    with srv.db.session() as session:
        handoff = session.scalar(select(Handoff))
        return handoff.id, handoff.conversation_id


def count(srv, model, *where):
    with srv.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_list_take_reply_release_round_trip(client, srv, providers, keys, seeded):
    handoff_id, conversation_id = handoff_waiting(client, srv, "my parcel arrived damaged")
    post_twilio(client, twilio_params(ALICE, "it's the blue box"))
    listed = client.get("/api/v1/handoffs", headers=keys["sam"]).get_json()["handoffs"]
    assert [h["id"] for h in listed] == [handoff_id] and listed[0]["priority"] == 1
    assert listed[0]["order_ref"] == "LM-10001" and listed[0]["last_customer_message"] == "it's the blue box"
    taken = client.post(f"/api/v1/handoffs/{handoff_id}/take", headers=keys["sam"])
    assert taken.status_code == 200 and taken.get_json()["handoff"]["agent"]["username"] == "sam"
    reply = client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=keys["sam"],
                        json={"text": "Sorry about that, a new one is on its way."})
    assert reply.status_code == 201 and reply.get_json()["message"]["sender"] == "agent"
    srv.dispatcher.drain()
    assert providers.twilio_messages()[-1].value("Body") == "Sorry about that, a new one is on its way."
    messages = client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=keys["sam"]).get_json()
    assert [m["text"] for m in messages["messages"] if m["queued_for_agent"]] == ["it's the blue box"]
    released = client.post(f"/api/v1/handoffs/{handoff_id}/release", headers=keys["sam"])
    assert released.status_code == 200 and released.get_json()["handoff"]["status"] == "released"
    assert client.get("/api/v1/handoffs", headers=keys["sam"]).get_json()["handoffs"] == []


def test_a_helpdesk_key_acts_for_the_named_agent(client, srv, keys, seeded):
    handoff_id, conversation_id = handoff_waiting(client, srv)
    response = client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=keys["helpdesk"],
                           json={"text": "Hello from Zendesk", "agent": "jo"})
    assert response.status_code == 201 and response.get_json()["message"]["agent"] == "Jo Kim"
    missing = client.post(f"/api/v1/handoffs/{handoff_id}/close", headers=keys["helpdesk"])
    assert missing.status_code == 422 and "agent" in missing.get_json()["error"]
    unknown = client.post(f"/api/v1/handoffs/{handoff_id}/close", headers=keys["helpdesk"], json={"agent": "zed"})
    assert unknown.status_code == 422
    closed = client.post(f"/api/v1/handoffs/{handoff_id}/close", headers=keys["helpdesk"], json={"agent": "jo"})
    assert closed.status_code == 200 and closed.get_json()["handoff"]["status"] == "closed"


def test_reply_to_a_conversation_another_agent_holds_is_409_and_nothing_is_sent(client, srv, keys, seeded):
    handoff_id, conversation_id = handoff_waiting(client, srv)
    client.post(f"/api/v1/handoffs/{handoff_id}/take", headers=keys["jo"])
    before = count(srv, OutboxItem)
    response = client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=keys["sam"],
                           json={"text": "Me too"})
    assert response.status_code == 409 and "another agent holds" in response.get_json()["error"]
    assert count(srv, OutboxItem) == before and count(srv, Message, Message.sender == "agent") == 0
    assert client.post(f"/api/v1/handoffs/{handoff_id}/take", headers=keys["sam"]).status_code == 409
    assert client.post(f"/api/v1/handoffs/{handoff_id}/release", headers=keys["sam"]).status_code == 409


def test_release_when_not_in_handoff_is_409(client, srv, keys, seeded):
    handoff_id, _ = handoff_waiting(client, srv)
    assert client.post(f"/api/v1/handoffs/{handoff_id}/release", headers=keys["sam"]).status_code == 200
    again = client.post(f"/api/v1/handoffs/{handoff_id}/release", headers=keys["sam"])
    assert again.status_code == 409 and "not in handoff" in again.get_json()["error"]


def test_carrier_keys_and_missing_keys_are_refused(client, srv, keys, auth, seeded):
    handoff_id, conversation_id = handoff_waiting(client, srv)
    assert client.get("/api/v1/handoffs", headers=auth).status_code == 401  # a carrier key
    assert client.get("/api/v1/handoffs").status_code == 401
    assert client.post(f"/api/v1/handoffs/{handoff_id}/take").status_code == 401
    assert client.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": "x"}).status_code == 401
    assert count(srv, Handoff, Handoff.agent_id.is_not(None)) == 0


@pytest.mark.parametrize("query", ["status=everything", "priority=7", "limit=0", "limit=abc"])
def test_bad_list_filters_are_400(client, keys, query):
    response = client.get(f"/api/v1/handoffs?{query}", headers=keys["sam"])
    assert response.status_code == 400 and response.get_json()["error"]


def test_bad_reply_bodies_are_refused_and_nothing_is_stored(client, srv, keys, seeded):
    _, conversation_id = handoff_waiting(client, srv)
    url = f"/api/v1/conversations/{conversation_id}/messages"
    assert client.post(url, headers=keys["sam"], data="text=hi").status_code == 400
    assert client.post(url, headers={**keys["sam"], "Content-Type": "application/json"},
                       data="{not json").status_code == 400
    assert client.post(url, headers=keys["sam"], json={}).status_code == 422
    assert client.post(url, headers=keys["sam"], json={"text": 5}).status_code == 422
    assert client.post(url, headers=keys["sam"], json={"text": "   "}).status_code == 422
    assert client.post(url, headers=keys["sam"], json={"text": "x" * 1601}).status_code == 422
    assert client.post("/api/v1/conversations/9999/messages", headers=keys["sam"], json={"text": "hi"}).status_code == 404
    assert client.post("/api/v1/handoffs/9999/take", headers=keys["sam"]).status_code == 404
    assert count(srv, Message, Message.sender == "agent") == 0


def test_filters_by_status_priority_and_mine(client, srv, keys, seeded):
    handoff_id, _ = handoff_waiting(client, srv)
    client.post(f"/api/v1/handoffs/{handoff_id}/take", headers=keys["sam"])
    assert len(client.get("/api/v1/handoffs?status=assigned&mine=1", headers=keys["sam"]).get_json()["handoffs"]) == 1
    assert client.get("/api/v1/handoffs?mine=1", headers=keys["jo"]).get_json()["handoffs"] == []
    assert client.get("/api/v1/handoffs?status=open", headers=keys["sam"]).get_json()["handoffs"] == []
    assert client.get("/api/v1/handoffs?priority=1", headers=keys["sam"]).get_json()["handoffs"] == []


def test_support_operations_are_in_the_openapi_document(client):
    document = client.get("/api/v1/openapi.json").get_json()
    paths = document["paths"]
    assert paths["/api/v1/handoffs"]["get"]["tags"] == ["support"]
    for path in ("/api/v1/handoffs/{handoff_id}/take", "/api/v1/handoffs/{handoff_id}/release",
                 "/api/v1/handoffs/{handoff_id}/close"):
        assert "409" in paths[path]["post"]["responses"]
    body = paths["/api/v1/conversations/{conversation_id}/messages"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    assert document["components"]["schemas"][ref.rsplit("/", 1)[1]]["required"] == ["text"]


def test_unknown_conversation_messages_is_404(client, keys):
    assert client.get("/api/v1/conversations/424242/messages", headers=keys["sam"]).status_code == 404
    assert client.get("/api/v1/conversations/1/messages?after_id=x", headers=keys["sam"]).status_code == 400


def test_conversation_model_unchanged_by_refused_calls(client, srv, keys, seeded):
    _, conversation_id = handoff_waiting(client, srv)
    client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=keys["helpdesk"], json={"text": "x"})
    with srv.db.session() as session:
        assert session.get(Conversation, conversation_id).handoff_active
        assert session.scalar(select(Handoff.status)) == "open"
