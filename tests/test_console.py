"""The agent console over HTTP: sign-in, throttling, sessions, CSRF, the queue, replies, release, roles."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import func, select

from db.models import Conversation, Handoff, Message, OutboxItem
from tests.conftest import post_twilio, twilio_params
from tests.console_helpers import PASSWORD, agents, csrf_of, post_action, sign_in  # noqa: F401  (agents is a fixture)

ALICE = "+15551230001"
def customer_asks_for_a_person(client, text="I want to talk to a person"):
    assert post_twilio(client, twilio_params(ALICE, text)).status_code == 200


def conversation_id(srv) -> int:
    with srv.db.session() as session:
        return session.scalar(select(Conversation.id).where(Conversation.address == ALICE))


def count(srv, model, *where):
    with srv.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


# --- signing in ------------------------------------------------------------------------------------
def test_sign_in_sets_a_httponly_lax_session_cookie_and_shows_the_queue(client, agents):
    response = sign_in(client)
    assert response.status_code == 302 and response.headers["Location"].endswith("/console/")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/console/")
    assert page.status_code == 200 and "Queue" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"


@pytest.fixture
def default_hashing_cost(app_config):
    """config.yml's argon2 cost (the tests' own is so low that the request around it would hide it)."""
    from bot.core.config import load_config

    app_config["support"]["password_hashing"] = load_config()["support"]["password_hashing"]


def test_wrong_password_and_unknown_user_get_the_same_answer_in_similar_time(default_hashing_cost, client, agents):
    started = time.perf_counter()
    wrong = sign_in(client, "sam", "not the password")
    wrong_time = time.perf_counter() - started
    started = time.perf_counter()
    unknown = sign_in(client, "nobody", "not the password")
    unknown_time = time.perf_counter() - started
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong username or password." in wrong.get_data(as_text=True)
    strip = lambda r: re.sub(r'value="[^"]*"', "", r.get_data(as_text=True))  # noqa: E731
    assert strip(wrong) == strip(unknown)
    assert unknown_time > wrong_time / 3  # the unknown name also pays for an argon2 verification
    assert client.get("/console/").status_code == 302


@pytest.fixture
def raised_hashing_cost(app_config):
    app_config["support"]["password_hashing"] = {"time_cost": 2, "memory_kib": 1024, "parallelism": 2}


def test_a_password_hashed_at_another_cost_is_rehashed_at_the_configured_one_when_it_signs_in(
        raised_hashing_cost, client, srv):
    from argon2 import PasswordHasher

    from db.models import Agent

    with srv.db.session() as session:
        session.add(Agent(username="sam", name="Sam", role="agent", active=True,
                          password_hash=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)))
    assert sign_in(client).status_code == 302
    with srv.db.session() as session:
        stored = session.scalar(select(Agent.password_hash).where(Agent.username == "sam"))
    assert stored.startswith("$argon2id$v=19$m=1024,t=2,p=2$")
    client.post("/console/logout", data={"csrf_token": csrf_of(client, "/console/")})
    assert sign_in(client).status_code == 302  # the new hash verifies


def test_sign_in_is_throttled_per_username_after_repeated_failures(client, agents):
    for attempt in range(5):
        assert sign_in(client, "sam", f"guess {attempt}", ip=f"10.0.1.{attempt}").status_code == 401
    blocked = sign_in(client, "sam", PASSWORD, ip="10.0.2.1")
    assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.get_data(as_text=True)
    assert sign_in(client, "jo", PASSWORD, ip="10.0.2.2").status_code == 302  # other users are not affected


def test_sign_in_is_throttled_per_ip_across_usernames(client, agents):
    for attempt in range(5):
        assert sign_in(client, f"user{attempt}", "guess", ip="10.9.9.9").status_code == 401
    assert sign_in(client, "jo", PASSWORD, ip="10.9.9.9").status_code == 429
    assert sign_in(client, "jo", PASSWORD, ip="10.9.9.10").status_code == 302


def test_pages_without_a_session_redirect_to_login_and_json_gets_401(client, agents):
    response = client.get("/console/")
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    assert client.get("/console/queue.json").status_code == 401


def test_post_without_or_with_a_wrong_csrf_token_is_refused(client, srv, agents):
    customer_asks_for_a_person(client)
    cid = conversation_id(srv)
    assert client.post("/console/login", data={"username": "sam", "password": PASSWORD}).status_code == 400
    sign_in(client)
    assert client.post(f"/console/conversations/{cid}/reply", data={"text": "hi"}).status_code == 400
    response = client.post(f"/console/conversations/{cid}/reply", data={"text": "hi", "csrf_token": "forged"})
    assert response.status_code == 400
    assert count(srv, Message, Message.sender == "agent") == 0


def test_post_without_a_session_is_refused(client, srv, agents):
    customer_asks_for_a_person(client)
    token = csrf_of(client)  # a CSRF token, but nobody signed in
    response = client.post(f"/console/conversations/{conversation_id(srv)}/take", data={"csrf_token": token})
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    assert count(srv, Handoff, Handoff.agent_id.is_not(None)) == 0


def test_sign_out_ends_the_session(client, agents):
    sign_in(client)
    assert post_action(client, "/console/logout").status_code == 302
    assert client.get("/console/").status_code == 302


# --- the queue and a conversation -----------------------------------------------------------------
def test_queue_lists_the_waiting_customer_and_its_json_poll(client, srv, agents, seeded):
    customer_asks_for_a_person(client, "my parcel arrived damaged")
    sign_in(client)
    page = client.get("/console/").get_data(as_text=True)
    assert "Alice Walker" in page and "Reported a problem" in page and "urgent" in page
    data = client.get("/console/queue.json").get_json()
    assert data["count"] == 1 and data["handoffs"][0]["reason"] == "report_problem"
    assert data["handoffs"][0]["last_customer_message"] == "my parcel arrived damaged"
    assert ALICE not in str(data)  # the phone number stays out of the console's JSON


def test_conversation_page_shows_transcript_order_timeline_and_driver(client, srv, agents, seeded):
    post_twilio(client, twilio_params(ALICE, "where is my order"))
    customer_asks_for_a_person(client)
    sign_in(client)
    page = client.get(f"/console/conversations/{conversation_id(srv)}").get_data(as_text=True)
    assert "where is my order" in page and "LM-10001" in page
    assert "out for delivery" in page and "Dave" in page and "Timeline" in page
    assert ALICE not in page and "+1555•••0001" in page


def test_agent_takes_replies_through_the_outbox_and_releases_to_the_bot(client, srv, providers, agents, seeded):
    customer_asks_for_a_person(client)
    cid = conversation_id(srv)
    sign_in(client)
    assert post_action(client, f"/console/conversations/{cid}/take").status_code == 302
    response = post_action(client, f"/console/conversations/{cid}/reply", text="Hi Alice, Sam here.")
    assert response.status_code == 302
    srv.dispatcher.drain()
    assert providers.twilio_messages()[-1].value("Body") == "Hi Alice, Sam here."
    assert providers.twilio_messages()[-1].value("To") == ALICE
    poll = client.get(f"/console/conversations/{cid}/poll.json?after=0").get_json()
    assert [m["text"] for m in poll["messages"] if m["sender"] == "agent"] == ["Hi Alice, Sam here."]
    assert poll["messages"][-1]["agent"] == "Sam Patel"
    assert post_action(client, f"/console/conversations/{cid}/release").status_code == 302
    post_twilio(client, twilio_params(ALICE, "where is my order"))
    srv.dispatcher.drain()
    assert "LM-10001" in providers.twilio_messages()[-1].value("Body")


def test_reply_to_a_conversation_another_agent_holds_is_409(client, srv, agents, seeded, app):
    customer_asks_for_a_person(client)
    cid = conversation_id(srv)
    other = app.test_client()
    sign_in(other, "jo")
    post_action(other, f"/console/conversations/{cid}/take")
    sign_in(client, "sam")
    outbox_before = count(srv, OutboxItem)
    response = post_action(client, f"/console/conversations/{cid}/reply", text="Let me help")
    assert response.status_code == 409
    assert "another agent holds this conversation" in response.get_data(as_text=True)
    assert "Let me help" in response.get_data(as_text=True)  # the draft is kept
    assert count(srv, OutboxItem) == outbox_before
    assert post_action(client, f"/console/conversations/{cid}/release").status_code == 409


def test_release_of_a_conversation_not_in_handoff_is_409(client, srv, agents, seeded):
    post_twilio(client, twilio_params(ALICE, "hello"))
    sign_in(client)
    response = post_action(client, f"/console/conversations/{conversation_id(srv)}/release")
    assert response.status_code == 409 and "not in handoff" in response.get_data(as_text=True)


def test_empty_or_too_long_reply_is_refused(client, srv, agents, seeded):
    customer_asks_for_a_person(client)
    cid = conversation_id(srv)
    sign_in(client)
    assert post_action(client, f"/console/conversations/{cid}/reply", text="  ").status_code == 400
    assert post_action(client, f"/console/conversations/{cid}/reply", text="x" * 1601).status_code == 400
    assert count(srv, Message, Message.sender == "agent") == 0


def test_agent_can_take_over_a_conversation_the_bot_is_handling(client, srv, providers, agents, seeded):
    post_twilio(client, twilio_params(ALICE, "hello"))
    cid = conversation_id(srv)
    sign_in(client)
    assert post_action(client, f"/console/conversations/{cid}/take").status_code == 302
    with srv.db.session() as session:
        handoff = session.scalar(select(Handoff))
        assert handoff.reason == "agent" and handoff.priority == 3 and handoff.status == "assigned"
    post_twilio(client, twilio_params(ALICE, "where is my order"))
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == 1  # only the greeting; the bot is quiet now


def test_only_supervisors_reassign_and_see_analytics(client, srv, agents, seeded, app):
    customer_asks_for_a_person(client)
    cid = conversation_id(srv)
    sign_in(client, "sam")
    post_action(client, f"/console/conversations/{cid}/take")
    with srv.db.session() as session:
        from db.models import Agent

        jo = session.scalar(select(Agent.id).where(Agent.username == "jo"))
    assert post_action(client, f"/console/conversations/{cid}/assign", agent_id=str(jo)).status_code == 403
    assert client.get("/console/analytics").status_code == 403
    supervisor = app.test_client()
    sign_in(supervisor, "maria")
    assert post_action(supervisor, f"/console/conversations/{cid}/assign", agent_id=str(jo)).status_code == 302
    with srv.db.session() as session:
        assert session.scalar(select(Handoff.agent_id)) == jo
    assert supervisor.get("/console/analytics").status_code == 200


def test_poll_with_a_bad_after_is_400(client, srv, agents, seeded):
    customer_asks_for_a_person(client)
    sign_in(client)
    response = client.get(f"/console/conversations/{conversation_id(srv)}/poll.json?after=abc")
    assert response.status_code == 400 and response.get_json()["error"]
    assert client.get("/console/conversations/99999").status_code == 404
