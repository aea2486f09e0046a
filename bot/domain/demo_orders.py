"""Demo data: customers in several languages, a driver, orders in every state. Idempotent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.domain import orders as order_rules
from db.models import Customer, Driver, Order, utcnow

CUSTOMERS: list[dict[str, Any]] = [
    {"name": "Alice Walker", "phone": "+15551230001", "telegram_chat_id": 100001, "locale": "en",
     "timezone": "America/New_York"},
    {"name": "Ana García", "phone": "+15551230002", "telegram_chat_id": 100002, "locale": "es",
     "timezone": "America/New_York", "whatsapp": True},
    {"name": "Ben Carter", "phone": "+15551230003", "locale": "en", "timezone": "America/Chicago"},
    {"name": "Chloé Martin", "phone": "+33612345678", "locale": "fr", "timezone": "Europe/Paris"},
]
DRIVERS: list[dict[str, Any]] = [
    {"ref": "D-7", "name": "Dave", "phone": "+15551239007", "locale": "en", "timezone": "America/New_York",
     "team": "Manhattan"},
]
# (ref, customer phone, status, postcode, address, hours from now to the ETA window)
ORDERS = [
    ("LM-10001", "+15551230001", "out_for_delivery", "10001", "350 5th Ave", 1),
    ("LM-10002", "+15551230002", "delayed", "10002", "12 Orchard St", 5),
    ("LM-10003", "+15551230003", "out_for_delivery", "60601", "233 S Wacker Dr", 2),
    ("LM-10004", "+15551230003", "created", "60601", "233 S Wacker Dr", 26),
    ("LM-10005", "+33612345678", "driver_assigned", "75001", "10 Rue de Rivoli", 3),
]


def seed(session: Session) -> dict[str, int]:
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    created = {"customers": 0, "drivers": 0, "orders": 0}
    customers = {}
    for data in CUSTOMERS:
        customer = session.scalar(select(Customer).where(Customer.phone == data["phone"]))
        if customer is None:
            customer = Customer(**data)
            session.add(customer)
            created["customers"] += 1
        customers[data["phone"]] = customer
    for data in DRIVERS:
        if session.scalar(select(Driver).where(Driver.ref == data["ref"])) is None:
            session.add(Driver(**data))
            created["drivers"] += 1
    session.flush()
    for ref, phone, status, postcode, line1, hours in ORDERS:
        if session.scalar(select(Order).where(Order.ref == ref)) is not None:
            continue
        customer = customers[phone]
        start = now + timedelta(hours=hours)
        order = Order(ref=ref, tracking_number=f"1ZDEMO{ref[-5:]}", customer=customer,
                      tracking_token=order_rules.new_token(), address_line1=line1, postcode=postcode,
                      country="FR" if phone.startswith("+33") else "US", city="Demo City",
                      window_start=start, window_end=start + timedelta(hours=2), team="Manhattan", extra={})
        session.add(order)
        session.flush()
        created["orders"] += 1
        steps = {"created": [], "driver_assigned": ["driver_assigned"],
                 "out_for_delivery": ["driver_assigned", "out_for_delivery"],
                 "delayed": ["driver_assigned", "out_for_delivery", "delayed"]}[status]
        for i, step in enumerate(steps):
            event: dict[str, Any] = {"driver_ref": "D-7"} if step == "driver_assigned" else {}
            if step in ("out_for_delivery", "delayed"):
                event["eta"] = {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}
            if step == "delayed":
                event["reason"] = "heavy traffic"
            order_rules.apply_event(session, order, step, now - timedelta(minutes=30 - i), event,
                                    source="carrier", idempotency_key=f"demo-{ref}-{step}", notify=False)
    return created
