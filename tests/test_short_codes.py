"""A driver's "#4821" names exactly one order: short codes are unique among the orders a driver can still
name (assigned, out for delivery, or closed lately), on every path that assigns a driver."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.domain import orders as order_rules
from db.models import Customer, Order, utcnow


def _codes(session, driver_ref: str) -> Counter:
    orders = session.scalars(select(Order).where(Order.driver.has(ref=driver_ref))).all()
    return Counter(o.short_code for o in orders if o.status != "created")


@pytest.mark.slow
@pytest.mark.parametrize("notify", [True, False], ids=["with-listeners", "like-the-demo-seed"])
def test_codes_stay_unique_against_recently_delivered_orders(app, srv, notify):
    """200 orders delivered a moment ago, then 100 new ones: with 9,000 codes, a rule that looked only at
    open orders would repeat one about 9 times in 10 (the birthday bound). The demo seed applies events
    without listeners: uniqueness must not depend on them."""
    now = utcnow()
    with app.app_context(), srv.db.session() as session:
        customer = Customer(name="Zoe", phone="+15557770009")
        session.add(customer)
        for n in range(300):
            order = Order(ref=f"SC-{n}", customer=customer, tracking_token=order_rules.new_token(), extra={})
            session.add(order)
            session.flush()
            order_rules.apply_event(session, order, "driver_assigned", now, {"driver_ref": "D-1"},
                                    source="carrier", idempotency_key=f"a-{n}", notify=notify)
            if n < 200:
                order_rules.apply_event(session, order, "delivered", now + timedelta(seconds=1), {},
                                        source="carrier", idempotency_key=f"d-{n}", notify=notify)
        codes = _codes(session, "D-1")
    assert sum(codes.values()) == 300
    assert codes.most_common(1)[0][1] == 1


def test_orders_closed_long_ago_free_their_code(app, srv):
    """The rule is bounded in time, so a busy driver never runs out of codes."""
    long_ago = utcnow() - order_rules.SHORT_CODE_HORIZON - timedelta(days=1)
    with app.app_context(), srv.db.session() as session:
        customer = Customer(name="Zoe", phone="+15557770009")
        old = Order(ref="OLD", customer=customer, tracking_token=order_rules.new_token(), extra={})
        session.add(old)
        session.flush()
        order_rules.apply_event(session, old, "driver_assigned", long_ago, {"driver_ref": "D-1"}, source="carrier")
        order_rules.apply_event(session, old, "delivered", long_ago, {}, source="carrier")
        new = Order(ref="NEW", customer=customer, tracking_token=order_rules.new_token(), extra={},
                    short_code=old.short_code)  # as if it had drawn the same number
        session.add(new)
        session.flush()
        order_rules.apply_event(session, new, "driver_assigned", utcnow(), {"driver_ref": "D-1"}, source="carrier")
        assert new.short_code == old.short_code
