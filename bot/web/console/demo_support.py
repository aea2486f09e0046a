"""Demo support data for the console and its screenshots: agents, ratings, deliveries, handoffs."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.messages import Reply
from bot.delivery.outbox import enqueue_reply
from bot.domain import conversations, handoffs
from bot.domain import orders as order_rules
from bot.web.console.agents import create_agent
from db.models import Agent, Conversation, Customer, Driver, Handoff, Message, Order, Rating, utcnow

DEMO_DRIVERS = [
    {"ref": "D-7", "name": "Dave", "team": "Manhattan"},
    {"ref": "D-8", "name": "Priya", "team": "Manhattan"},
    {"ref": "D-9", "name": "Marco", "team": "Brooklyn"},
    {"ref": "D-10", "name": "Lena", "team": "Brooklyn"},
]
COMMENTS = {1: "Left in the rain, box soaked", 2: "Very late, no call", 3: "OK", 4: "Friendly driver", 5: "Perfect!"}
REASONS = ["report_problem", "human_handoff", "fallback", "low_rating", "human_handoff", "driver_flag"]


def seed_support(session: Session, *, days: int = 28, per_day: int = 14, seed: int = 7) -> dict[str, int]:
    """History for the analytics page: delivered/failed orders, ratings and answered handoffs.

    Deterministic for a given `seed`; orders are named LM-H<n> so that it can run once per database.
    """
    if session.scalar(select(Order.id).where(Order.ref.like("LM-H%")).limit(1)) is not None:
        return {"orders": 0}
    rng = random.Random(seed)
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    drivers = [_driver(session, data) for data in DEMO_DRIVERS]
    agent = session.scalar(select(Agent).order_by(Agent.id).limit(1))
    counts = {"orders": 0, "ratings": 0, "handoffs": 0}
    for day in range(days, 0, -1):
        for n in range(per_day + rng.randint(-3, 4)):
            driver = rng.choice(drivers)
            at = midnight - timedelta(days=day) + timedelta(hours=rng.choice([9, 10, 11, 12, 13, 14, 15, 16, 17, 18]),
                                                       minutes=rng.randint(0, 59))
            failed = rng.random() < (0.14 if driver.team == "Brooklyn" else 0.07)
            order, customer = _order(session, f"LM-H{day:02d}{n:02d}", driver, at, failed, rng)
            counts["orders"] += 1
            conversation = _conversation(session, customer)
            session.add(Message(conversation_id=conversation.id, direction="in", channel=conversation.channel,
                                sender="customer", text="where is my order?", intent="track_order", created_at=at,
                                status="received", data={}))
            conversation.last_inbound_at = at
            if not failed and rng.random() < 0.6:
                score = rng.choices([5, 4, 3, 2, 1], weights=[55, 25, 9, 6, 5])[0]
                session.add(Rating(order_id=order.id, driver_id=driver.id, team=driver.team, score=score,
                                   comment=COMMENTS[score], conversation_id=conversation.id,
                                   created_at=at + timedelta(hours=1)))
                counts["ratings"] += 1
            if failed or rng.random() < 0.12:
                _answered_handoff(session, conversation, order, at + timedelta(minutes=20), agent, rng)
                counts["handoffs"] += 1
    return counts


def seed_agents(session: Session, password: str) -> list[Agent]:
    """A supervisor and two agents (idempotent)."""
    wanted = [("maria", "Maria Lopez", "supervisor"), ("sam", "Sam Patel", "agent"), ("jo", "Jo Kim", "agent")]
    agents = []
    for username, name, role in wanted:
        agent = session.scalar(select(Agent).where(Agent.username == username))
        agents.append(agent or create_agent(session, username, password, role=role, name=name))
    return agents


def _driver(session: Session, data: dict) -> Driver:
    driver = session.scalar(select(Driver).where(Driver.ref == data["ref"]))
    if driver is None:
        driver = Driver(**data, locale="en", timezone="America/New_York")
        session.add(driver)
        session.flush()
    return driver


def _conversation(session: Session, customer: Customer) -> Conversation:
    """The demo customer's conversation: every demo customer has a phone number, so one always exists."""
    conversation = conversations.conversation_with(session, customer)
    if conversation is None:
        raise ValueError(f"demo customer {customer.id} has no phone number nor Telegram chat")
    return conversation


def _order(session: Session, ref: str, driver: Driver, at, failed: bool,
           rng: random.Random) -> tuple[Order, Customer]:
    """A past order of a new customer, with its events; the order and that customer."""
    phone = f"+1555{rng.randint(2000000, 2999999)}"
    customer = Customer(name=rng.choice(["Kim", "Lee", "Ada", "Tom", "Eva", "Raj", "Mia", "Noah"]) + " " +
                        rng.choice(["Ng", "Diaz", "Olsen", "Khan", "Rossi", "Brown"]), phone=phone, locale="en",
                        timezone="America/New_York")
    order = Order(ref=ref, customer=customer, driver_id=driver.id, team=driver.team, postcode="10001",
                  tracking_token=order_rules.new_token(), address_line1="1 Demo St", city="New York", extra={},
                  window_start=at - timedelta(hours=1), window_end=at + timedelta(hours=1))
    session.add(order)
    session.flush()
    steps = [("driver_assigned", {"driver_ref": driver.ref}), ("out_for_delivery", {}),
             ("failed_attempt", {"reason": "no one at home"}) if failed else ("delivered", {})]
    for i, (kind, data) in enumerate(steps):
        order_rules.apply_event(session, order, kind, at - timedelta(hours=2 - i), data,
                                idempotency_key=f"demo-{ref}-{kind}", notify=False)
    return order, customer


def _answered_handoff(session: Session, conversation: Conversation, order: Order, at, agent: Agent | None,
                      rng: random.Random) -> None:
    reason = "report_problem" if order.status == "failed_attempt" else rng.choice(REASONS)
    handoff = handoffs.open_handoff(session, conversation, reason, order_id=order.id, notify_customer=False, now=at)
    if agent is not None:
        answer_at = at + timedelta(minutes=rng.choice([2, 4, 6, 8, 11, 15, 22, 35]))
        reply = enqueue_reply(session, conversation, Reply(text="Hi, I'm looking at your order now."),
                              sender="agent", agent_id=agent.id, order_id=order.id)
        reply.created_at, reply.status = answer_at, "sent"
        handoff.agent_id, handoff.status, handoff.first_response_at = agent.id, "assigned", answer_at
    handoffs.close(session, handoff, now=at + timedelta(minutes=40))


def open_demo_handoffs(session: Session) -> list[Handoff]:
    """Three customers waiting in the queue, from the demo orders of `bot.demo.seed`."""
    opened = []
    plan = [("+15551230001", "report_problem", "The driver left my parcel at the wrong door, it's gone", 14),
            ("+15551230002", "human_handoff", "Quiero hablar con una persona, por favor", 6),
            ("+33612345678", "fallback", "le livreur peut passer par la cour ?", 2)]
    for phone, reason, text, minutes_ago in plan:
        customer = session.scalar(select(Customer).where(Customer.phone == phone))
        if customer is None:
            continue
        conversation = _conversation(session, customer)
        at = utcnow() - timedelta(minutes=minutes_ago)
        order = session.scalar(select(Order).where(Order.customer_id == customer.id).order_by(Order.id).limit(1))
        conversation.active_order_id = order.id if order else None
        session.add(Message(conversation_id=conversation.id, direction="in", channel=conversation.channel,
                            sender="customer", text=text, created_at=at, status="received",
                            data={"queued_for_agent": True}))
        conversation.last_inbound_at = at
        opened.append(handoffs.open_handoff(session, conversation, reason, now=at))
    return opened
