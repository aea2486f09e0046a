"""Delivery analytics: the numbers from known data, the filters, the page, CSV exports, bad filters."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update

from bot.domain import analytics
from bot.domain import orders as order_rules
from bot.web.console.agents import create_agent
from db.models import Brand, Conversation, Driver, Handoff, Message, Order, Rating

DAY = date(2026, 3, 2)  # a Monday
PASSWORD = "supervisor-password"


def at(hour: int, day: date = DAY, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@pytest.fixture
def history(srv):
    """Two drivers in two teams; 3 delivered + 1 failed; 3 ratings; 4 conversations, 2 handed off."""
    with srv.db.session() as session:
        dave = Driver(ref="D-1", name="Dave", team="North")
        lena = Driver(ref="D-2", name="Lena", team="South")
        session.add_all([dave, lena])
        session.flush()
        plan = [("A1", dave, "delivered", 9, 5), ("A2", dave, "delivered", 10, 4), ("A3", lena, "delivered", 14, 2),
                ("A4", lena, "failed_attempt", 15, None)]
        for ref, driver, outcome, hour, score in plan:
            order = Order(ref=ref, driver_id=driver.id, team=driver.team, tracking_token=order_rules.new_token(),
                          extra={})
            session.add(order)
            session.flush()
            order_rules.apply_event(session, order, outcome, at(hour), {}, notify=False)
            conversation = Conversation(channel="sms", address=f"+1555000{ref[-1]}", active_order_id=order.id,
                                        state={})
            session.add(conversation)
            session.flush()
            session.add(Message(conversation_id=conversation.id, direction="in", channel="sms", text="hi",
                                created_at=at(hour, minute=5), data={}))
            if score is not None:
                session.add(Rating(order_id=order.id, driver_id=driver.id, team=driver.team, score=score,
                                   created_at=at(hour + 1)))
            if ref in ("A3", "A4"):
                session.add(Handoff(conversation_id=conversation.id, order_id=order.id, reason="report_problem",
                                    priority=1, status="closed", opened_at=at(hour, minute=10),
                                    first_response_at=at(hour, minute=10 + (4 if ref == "A3" else 10)),
                                    details={}))


def report(srv, **args):
    filters, problems = analytics.Filters.parse({"from": DAY.isoformat(), "to": DAY.isoformat(), **args}, "UTC",
                                                DAY)
    assert not problems
    with srv.db.session() as session:
        return analytics.report(session, filters)


def test_the_headline_numbers(srv, history):
    summary = report(srv)["summary"]
    assert summary["ratings"] == 3 and summary["csat_mean"] == pytest.approx(3.67, abs=0.01)
    assert summary["csat_share_4_5"] == pytest.approx(2 / 3, abs=1e-3)
    assert summary["delivered"] == 3 and summary["failed_attempts"] == 1
    assert summary["delivery_success_rate"] == 0.75
    assert summary["conversations"] == 4 and summary["handoffs"] == 2
    assert summary["handoff_rate"] == 0.5 and summary["bot_containment"] == 0.5
    assert summary["first_response_minutes_mean"] == 7 and summary["first_response_minutes_median"] == 7


def test_filters_by_driver_team_hour_and_weekday(srv, history):
    with srv.db.session() as session:
        lena = session.query(Driver).filter_by(ref="D-2").one().id
    by_lena = report(srv, driver=str(lena))["summary"]
    assert by_lena["delivered"] == 1 and by_lena["failed_attempts"] == 1 and by_lena["handoffs"] == 2
    assert by_lena["conversations"] == 2 and by_lena["handoff_rate"] == 1.0
    north = report(srv, team="North")["summary"]
    assert north["delivered"] == 2 and north["csat_mean"] == 4.5 and north["handoffs"] == 0
    nine = report(srv, hour="9")["summary"]
    assert nine["delivered"] == 1 and nine["ratings"] == 0  # the 9:00 delivery was rated at 10:00
    assert report(srv, weekday="0")["summary"]["delivered"] == 3
    assert report(srv, weekday="1")["summary"]["delivered"] == 0


def test_filters_by_brand(srv, history, supervisor):
    """Lena's two orders belong to the shop `bolt`: the report of that brand counts only them."""
    with srv.db.session() as session:
        bolt = Brand(ref="bolt", name="Bolt Bikes")
        session.add(bolt)
        session.flush()
        session.execute(update(Order).where(Order.ref.in_(("A3", "A4"))).values(brand_id=bolt.id))
    bolts = report(srv, brand="bolt")["summary"]
    assert (bolts["delivered"], bolts["failed_attempts"], bolts["ratings"], bolts["handoffs"]) == (1, 1, 1, 2)
    assert bolts["conversations"] == 2
    default = report(srv, brand="default")["summary"]
    assert (default["delivered"], default["ratings"], default["handoffs"]) == (2, 2, 0)
    assert report(srv, brand="nobody")["summary"]["delivered"] == 0
    page = supervisor.get(f"/console/analytics?from={DAY}&to={DAY}&brand=bolt").get_data(as_text=True)
    assert '<option value="bolt" selected>Bolt Bikes</option>' in page


def test_hour_of_day_is_local_to_the_reports_time_zone(srv, history):
    hours = report(srv, tz="America/New_York")["tables"]["hours"]
    assert hours[4]["deliveries"] == 1  # 09:00 UTC is 04:00 in New York in March (EST)


def test_tables_by_driver_and_reason(srv, history):
    tables = report(srv)["tables"]
    drivers = {row["name"]: row for row in tables["drivers"]}
    assert drivers["Dave"]["success_rate"] == 1.0 and drivers["Lena"]["success_rate"] == 0.5
    assert tables["reasons"] == [{"reason": "report_problem", "handoffs": 2, "first_response_minutes_mean": 7,
                                  "unanswered": 0}]
    assert [r["ratings"] for r in tables["ratings"]] == [0, 1, 0, 1, 1]


@pytest.mark.parametrize("args, problem", [
    ({"from": "yesterday"}, "from:"), ({"from": "2026-03-05", "to": "2026-03-01"}, "from: must not be after"),
    ({"hour": "24"}, "hour:"), ({"weekday": "x"}, "weekday:"), ({"tz": "Mars/Olympus"}, "tz:"),
    ({"from": "2020-01-01", "to": "2026-01-01"}, "366 days"), ({"driver": "-1"}, "driver:"),
])
def test_bad_filters_are_named(args, problem):
    filters, problems = analytics.Filters.parse(args, "UTC", DAY)
    assert filters is None and any(problem in p for p in problems)


# --- the page and the exports ------------------------------------------------------------------------
@pytest.fixture
def supervisor(client, srv):
    with srv.db.session() as session:
        create_agent(session, "maria", PASSWORD, role="supervisor")
    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/console/login", data={"username": "maria", "password": PASSWORD, "csrf_token": token})
    return client


def test_the_page_shows_numbers_charts_and_export_links(supervisor, history):
    page = supervisor.get(f"/console/analytics?from={DAY}&to={DAY}").get_data(as_text=True)
    assert "75%" in page and "3.7" in page and "50%" in page
    assert page.count("<svg") == 4 and "Dave" in page and "cdn" not in page.lower()
    assert f"/console/analytics.csv?table=drivers&amp;from={DAY}" in page


def test_csv_export_of_a_table(supervisor, history):
    response = supervisor.get(f"/console/analytics.csv?table=drivers&from={DAY}&to={DAY}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {r["name"]: r["delivered"] for r in rows} == {"Dave": "2", "Lena": "1"}
    days = list(csv.DictReader(io.StringIO(supervisor.get(
        f"/console/analytics.csv?table=days&from={DAY}&to={DAY + timedelta(days=1)}").get_data(as_text=True))))
    assert [d["day"] for d in days] == [str(DAY), str(DAY + timedelta(days=1))]


def test_bad_export_and_page_filters_are_400(supervisor):
    assert supervisor.get("/console/analytics.csv?table=secrets").status_code == 400
    assert supervisor.get("/console/analytics.csv?table=days&hour=99").status_code == 400
    page = supervisor.get("/console/analytics?from=nope")
    assert page.status_code == 400 and "expected a date" in page.get_data(as_text=True)


def test_csv_cells_cannot_become_spreadsheet_formulas(supervisor, srv):
    with srv.db.session() as session:
        driver = Driver(ref="D-X", name="=HYPERLINK(\"http://evil\")", team="North")
        session.add(driver)
        session.flush()
        order = Order(ref="X1", driver_id=driver.id, team="North", tracking_token=order_rules.new_token(), extra={})
        session.add(order)
        session.flush()
        order_rules.apply_event(session, order, "delivered", at(9), {}, notify=False)
    body = supervisor.get(f"/console/analytics.csv?table=drivers&from={DAY}&to={DAY}").get_data(as_text=True)
    assert "'=HYPERLINK" in body


def test_demo_history_fills_every_chart(srv, app):
    from bot.web.console.demo_support import seed_agents, seed_support

    with app.app_context(), srv.db.session() as session:
        seed_agents(session, PASSWORD)
        counts = seed_support(session, days=7, per_day=6)
        assert counts["orders"] > 20 and counts["ratings"] > 5 and counts["handoffs"] > 0
        assert seed_support(session) == {"orders": 0}  # once per database
    today = datetime.now(UTC).date()
    filters, _ = analytics.Filters.parse({"from": str(today - timedelta(days=8))}, "UTC", today)
    with srv.db.session() as session:
        summary = analytics.report(session, filters)["summary"]
    assert 0.7 < summary["delivery_success_rate"] < 1 and summary["first_response_minutes_median"] > 0
